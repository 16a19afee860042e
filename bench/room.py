#!/usr/bin/env python3
"""Waiting-room benchmark: einlass with store = redis and mode = on, measured
with wrk against the same einlass switched to mode = off (passthrough).

Cases, each run right after its own passthrough run (A B A B ...), median of
--rounds runs:
  (a) pass holders while the room queues: GET / with a valid einlass_pass
      cookie (checked locally, HMAC only) - goal >= 0.9x passthrough;
  (b) waiting clients polling GET /_einlass/status with a ticket cookie (one
      Redis check script per request) - goal >= 0.5x passthrough;
  (c) new arrivals, GET / without cookies (one Redis join script each, a
      503 waiting answer and a fresh ticket).
Passthrough is the same request proxied to the backend with mode = off; for
(b) its path is "/" (with mode = off /_einlass/status is answered locally).
Then Redis memory for 1 and 10 million joins through the real join script
(bench/redis_memory.sh). --write puts the table into bench/README.md under
"Waiting room".
"""
import argparse
import os
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from proxy import ROOT, TICK, UNITS, Target, build, cpu_ticks, free_port, machine, write  # noqa: E402

CONF = """[server]
listen = 127.0.0.1:%(port)d
workers = 1
admin_listen = 127.0.0.1:%(admin)d
[backend]
address = 127.0.0.1:%(backend)d
keepalive = 64
[room]
mode = on
store = redis
redis = 127.0.0.1:%(redis)d
name = %(room)s
secret = %(secret)s
adapt = off
admit_per_s = 0.01          ; nobody is let in while we measure
min_admit_per_s = 0.01
poll_s = 60                 ; tickets stay live for minutes without polling
session_s = 3600            ; the pass outlives the run
"""

CASES = [  # name, what, path, goal
    ("c", "new arrivals joining (no cookie)", "/", None),
    ("a", "pass holders while queueing", "/", 0.9),
    ("b", "waiting clients polling /_einlass/status", "/_einlass/status", 0.5),
]


def wrk(port, path, cookie, args):
    cmd = ["wrk", "-t%d" % args.threads, "-c%d" % args.connections, "-d%ds" % args.duration,
           "--latency"]
    if cookie:
        cmd += ["-H", "Cookie: " + cookie]
    out = subprocess.run(cmd + ["http://127.0.0.1:%d%s" % (port, path)], capture_output=True,
                         text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    m = re.search(r"^\s*99%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.M)
    p99 = float(m.group(1)) * UNITS[m.group(2)]
    errors = sum(int(x) for x in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rps, total, p99, errors, int(m.group(1)) if m else 0


def http(port, method, path, body=None, cookie=None):
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), method=method,
                                 data=body.encode() if body is not None else None)
    if cookie:
        req.add_header("Cookie", cookie)
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, r.headers, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode()


def set_mode(admin, mode):
    status = http(admin, "POST", "/mode", mode)[0]
    if status != 204:
        sys.exit("POST /mode %s: %d" % (mode, status))


def cookie_of(headers, name):
    for v in headers.get_all("Set-Cookie") or []:
        if v.startswith(name + "="):
            return v.split(";")[0]
    sys.exit("no %s cookie in %s" % (name, headers))


def redis_cli(port, *args):
    return subprocess.run(["redis-cli", "-p", str(port)] + list(args), capture_output=True,
                          text=True).stdout


def start_redis(port, work):
    proc = Target("redis", ["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                            "--save", "", "--appendonly", "no", "--dir", work], port, work)
    proc.start()
    return proc


def memory_rows(joins):
    """bench/redis_memory.sh's rows: (tickets, bytes, MB, bytes/ticket, throughput)."""
    out = subprocess.run(["sh", os.path.join(ROOT, "bench", "redis_memory.sh")] + joins,
                         capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit("redis_memory.sh failed:\n" + out.stdout + out.stderr)
    rows = []
    for line in out.stdout.splitlines():
        f = line.split(None, 4)
        if len(f) == 5 and f[0].isdigit():
            rows.append(f)
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    ap.add_argument("--connections", type=int, default=50)
    ap.add_argument("--threads", type=int, default=1, help="wrk threads")
    ap.add_argument("--joins", default="1000000,10000000",
                    help="ticket counts for the Redis memory figures ('' to skip)")
    ap.add_argument("--einlass", help="use this einlass binary instead of building one")
    ap.add_argument("--write", action="store_true", help="put the table into bench/README.md")
    args = ap.parse_args()

    for tool in ("wrk", "redis-server", "redis-cli"):
        if not shutil.which(tool):
            subprocess.run(["sudo", "apt-get", "install", "-y", "wrk", "redis-server"], check=True)
    backend_bin, einlass_bin = build(args, os.path.join(ROOT, "build-bench"))
    if not einlass_bin:
        sys.exit("einlass does not build")
    work = tempfile.mkdtemp(prefix="einlass-room-bench-")
    p = {k: free_port() for k in ("backend", "einlass", "admin", "redis")}
    room = "bench-" + secrets.token_hex(4)
    conf = write(os.path.join(work, "room.conf"), CONF % {
        "port": p["einlass"], "admin": p["admin"], "backend": p["backend"], "redis": p["redis"],
        "room": room, "secret": secrets.token_hex(32)})
    backend = Target("backend", [backend_bin, str(p["backend"])], p["backend"], work)
    redis = start_redis(p["redis"], work)
    einlass = Target("einlass", [einlass_bin, "-c", conf], p["einlass"], work)
    runs = {c[0]: [] for c in CASES}  # (rps, p99, einlass us/req, redis us/req, errors, non2xx)
    base = {c[0]: [] for c in CASES}
    mem_before = mem_after = None
    try:
        backend.start()
        einlass.start()
        deadline = time.time() + 10
        while '"store":"redis"' not in http(p["admin"], "GET", "/status")[2]:
            if time.time() > deadline:
                sys.exit("einlass never reached Redis")
            time.sleep(0.1)
        mem_before = int(re.search(r"used_memory:(\d+)", redis_cli(p["redis"], "info",
                                                                      "memory")).group(1))
        # a pass: mode auto (the room does not queue), one proxied request
        set_mode(p["admin"], "auto")
        status, headers, _ = http(p["einlass"], "GET", "/")
        pass_cookie = cookie_of(headers, "einlass_pass")
        set_mode(p["admin"], "on")
        wrk(p["einlass"], "/", None, argparse.Namespace(**{**vars(args), "duration": 2}))
        for rnd in range(args.rounds):
            for name, what, path, goal in CASES:
                cookie = None
                if name == "a":
                    cookie = pass_cookie
                elif name == "b":  # a fresh ticket, behind everyone who joined so far
                    status, headers, body = http(p["einlass"], "GET", "/")
                    cookie = cookie_of(headers, "einlass_ticket")
                for mode in ("off", "on"):
                    set_mode(p["admin"], mode)
                    pid_e, pid_r = einlass.proc.pid, redis.proc.pid
                    ce, cr = cpu_ticks(pid_e), cpu_ticks(pid_r)
                    rps, total, p99, err, non2xx = wrk(p["einlass"], path if mode == "on" else "/",
                                                       cookie, args)
                    ue = (cpu_ticks(pid_e) - ce) / TICK * 1e6 / max(total, 1)
                    ur = (cpu_ticks(pid_r) - cr) / TICK * 1e6 / max(total, 1)
                    (runs if mode == "on" else base)[name].append((rps, p99, ue, ur, err, non2xx))
                    print("round %d (%s) %-3s %9.0f req/s  p99 %7.2f ms  einlass %5.1f us/req  "
                          "redis %5.1f us/req  errors %d  non-2xx %d" % (
                              rnd + 1, name, mode, rps, p99, ue, ur, err, non2xx), flush=True)
                if name == "b":  # the ticket must still be waiting: we measured polls
                    body = http(p["einlass"], "GET", "/_einlass/status", cookie=cookie)[2]
                    if '"waiting"' not in body:
                        sys.exit("the polling ticket left the queue: %s" % body)
        if http(p["einlass"], "GET", "/", cookie=pass_cookie)[0] != 200:
            sys.exit("the pass stopped passing")
        mem_after = int(re.search(r"used_memory:(\d+)", redis_cli(p["redis"], "info",
                                                                     "memory")).group(1))
        joined = int(redis_cli(p["redis"], "hget", "einlass:{%s}:meter" % room, "t0") or 0)
    finally:
        for s in (einlass, backend, redis):
            s.stop()
        shutil.rmtree(work, ignore_errors=True)

    def med(rows, i):
        return statistics.median(r[i] for r in rows)

    lines = ["| case | req/s | passthrough req/s | ratio | goal | p99 ms | einlass us/req | "
             "redis us/req | errors |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, what, path, goal in CASES:
        r, b = runs[name], base[name]
        ratio = med(r, 0) / med(b, 0)
        lines.append("| (%s) %s | %.0f | %.0f | %.2f | %s | %.2f | %.1f | %.1f | %d |" % (
            name, what, med(r, 0), med(b, 0), ratio,
            (">= %.1f %s" % (goal, "met" if ratio >= goal else "MISSED")) if goal else "-",
            med(r, 1), med(r, 2), med(r, 3), sum(x[4] for x in r)))
    text = "\n".join(lines)
    text += ("\n\nMedians of %d rounds; `wrk -t%d -c%d -d%ds`, einlass `workers = 1`, "
             "`store = redis`, `mode = on`; %s; %s. Redis used_memory grew by %.1f MB over "
             "the run (%d tickets joined).\n" % (
                 args.rounds, args.threads, args.connections, args.duration, machine(),
                 time.strftime("%Y-%m-%d"), (mem_after - mem_before) / 1048576.0, joined))
    joins = [j for j in args.joins.split(",") if j]
    if joins:
        rows = memory_rows(joins)
        text += ("\n| waiting tickets | Redis used_memory delta | bytes/ticket | join throughput |\n"
                 "|---:|---:|---:|---|\n")
        for n, delta, mb, per, thr in rows:
            text += "| %s | %s MB | %s | %s |\n" % ("{:,}".format(int(n)), mb, per, thr)
    print()
    print(text)
    if args.write:
        write_readme(text)
        print("bench/README.md updated")


def write_readme(text):
    """Only the "Waiting room" section at the end is ours: replace or append it."""
    path = os.path.join(ROOT, "bench", "README.md")
    with open(path) as f:
        old = f.read()
    block = "<!-- room:begin -->\n%s<!-- room:end -->" % text
    if "<!-- room:begin -->" in old:
        new = re.sub(r"<!-- room:begin -->.*?<!-- room:end -->", lambda m: block, old, flags=re.S)
    else:
        new = old.rstrip("\n") + "\n\n" + SECTION + block + "\n"
    with open(path, "w") as f:
        f.write(new)


SECTION = """## Waiting room

    python3 bench/room.py                  # 3 rounds of 5 s per case, then 1 and 10 million joins
    python3 bench/room.py --write          # and put the table below

One einlass (`workers = 1`, `store = redis`, `mode = on`, `admit_per_s = 0.01`
so nobody is let in while measuring) in front of `backend.c`, one private
`redis-server`. Each case runs right after its passthrough run (the same
einlass switched to `mode = off` with `POST /mode`), and the ratio is the
median of the case over the median of its passthrough:

- **(a)** pass holders while the room queues: `GET /` with a valid
  `einlass_pass` cookie. The pass is checked locally (one HMAC), no Redis
  round trip: goal >= 0.9x passthrough.
- **(b)** waiting clients polling `GET /_einlass/status` with a ticket cookie:
  one Redis check script each, answered by einlass (no backend): goal
  >= 0.5x. Its passthrough is `GET /` with the same cookie (with `mode = off`
  the status path is answered locally and would not be a proxy figure).
- **(c)** new arrivals without cookies: one Redis join script each, a 503
  waiting answer with a fresh ticket.

The memory rows come from `bench/redis_memory.sh`: that many joins through the
real join script into a fresh room, `INFO memory` used_memory before and after.

"""


if __name__ == "__main__":
    main()
