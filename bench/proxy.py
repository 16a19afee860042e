#!/usr/bin/env python3
"""Benchmark einlass against nginx and HAProxy in front of the same backend.

    python3 bench/proxy.py [--rounds 3] [--duration 10] [--connections 50] [--write]

Installs nginx, haproxy and wrk from Debian if missing, builds einlass
(Release, in build-bench/) and bench/backend.c, starts one static backend and
every proxy in front of it on its own port, then runs wrk against them in
turn (A B C ... A B C ...), so that slow drifts of the shared machine hit
every proxy alike. For each run it records requests/s, the 99th percentile
latency, and the CPU time the proxy's processes spent (utime + stime from
/proc/PID/stat) divided by the requests served. It prints the medians over
the rounds. With --write it also puts the table into bench/README.md.

Rows: "direct" is wrk against the backend itself (no proxy, the ceiling);
"haproxy-tcp" is HAProxy as a plain L4 relay (the cost of any extra hop);
nginx and haproxy are HTTP proxies with upstream keep-alive; einlass runs
with mode = off (a plain proxy) and mode = auto (memory store; every
response gets a signed pass cookie, since wrk sends none back); einlass-limit
adds max_concurrency = auto, einlass-rooms two [room NAME] sections that no
request matches (the room is chosen past both).
"""
import argparse
import os
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TICK = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_ticks(pid):
    """utime + stime of pid and its direct children (nginx's workers)."""
    pids = [pid] + [int(d) for d in os.listdir("/proc") if d.isdigit() and ppid(int(d)) == pid]
    total = 0
    for p in pids:
        try:
            with open("/proc/%d/stat" % p) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # fields 14 and 15 of stat
        except (OSError, IndexError):
            pass
    return total


def ppid(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return -1


UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def run_wrk(port, args):
    out = subprocess.run(
        ["wrk", "-t%d" % args.threads, "-c%d" % args.connections, "-d%ds" % args.duration,
         "--latency", "http://127.0.0.1:%d/" % port],
        capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    m = re.search(r"^\s*99%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.M)
    p99 = float(m.group(1)) * UNITS[m.group(2)]
    errors = sum(int(x) for x in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors += int(m.group(1)) if m else 0
    return rps, total, p99, errors


class Target:
    def __init__(self, name, argv, port, workdir):
        self.name, self.argv, self.port = name, argv, port
        self.log = open(os.path.join(workdir, name + ".log"), "w")
        self.proc = None
        self.runs = []  # (req/s, p99 ms, cpu us per request or None, errors)

    def start(self):
        self.proc = subprocess.Popen(self.argv, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + 10
        while self.proc.poll() is None and time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        with open(self.log.name) as f:
            sys.exit("%s does not listen on %d:\n%s" % (self.name, self.port, f.read()[-2000:]))

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()

    def measure(self, args, cpu_pid):
        """One wrk run; cpu_pid is the process whose CPU counts (None: none)."""
        before = cpu_ticks(cpu_pid) if cpu_pid else 0
        rps, total, p99, errors = run_wrk(self.port, args)
        cpu = None
        if cpu_pid and total:
            cpu = (cpu_ticks(cpu_pid) - before) / TICK * 1e6 / total
        self.runs.append((rps, p99, cpu, errors))


def ensure_tools():
    if not all(shutil.which(t) for t in ("nginx", "haproxy", "wrk", "gcc", "cmake")):
        subprocess.run(["bash", os.path.join(ROOT, "tests", "install-deps.sh"), "build", "bench"],
                       check=True)


def build(args, bindir):
    os.makedirs(bindir, exist_ok=True)
    backend = os.path.join(bindir, "backend")
    subprocess.run(["gcc", "-O2", "-std=c11", "-o", backend,
                    os.path.join(ROOT, "bench", "backend.c")], check=True)
    if args.einlass:
        return backend, args.einlass
    try:
        for cmd in (["cmake", "-S", ROOT, "-B", bindir, "-DCMAKE_BUILD_TYPE=Release",
                     "-DEINLASS_TESTS=OFF"],
                    ["cmake", "--build", bindir, "-j2", "--target", "einlass"]):
            subprocess.run(cmd, check=True, capture_output=True, text=True)
    except subprocess.CalledProcessError as e:
        print("%s\nwarning: einlass does not build (above); benchmarking the others only"
              % (e.stdout + e.stderr)[-1500:], file=sys.stderr)
        return backend, None
    return backend, os.path.join(bindir, "einlass")


NGINX = """worker_processes 1;
daemon off;
pid %(dir)s/nginx.pid;
error_log %(dir)s/nginx-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path %(dir)s/nginx-body;
  proxy_temp_path %(dir)s/nginx-proxy;
  upstream backend { server 127.0.0.1:%(backend)d; keepalive 64; }
  server {
    listen 127.0.0.1:%(port)d;
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
    }
  }
}
"""

HAPROXY = """global
  nbthread 1
  maxconn 4096
defaults
  timeout connect 2s
  timeout client 60s
  timeout server 30s
frontend http
  mode http
  bind 127.0.0.1:%(port)d
  option http-keep-alive
  option forwardfor
  default_backend http
backend http
  mode http
  http-reuse always
  server s1 127.0.0.1:%(backend)d
frontend tcp
  mode tcp
  bind 127.0.0.1:%(tcp_port)d
  default_backend tcp
backend tcp
  mode tcp
  server s1 127.0.0.1:%(backend)d
"""

EINLASS = """[server]
listen = 127.0.0.1:%(port)d
workers = 1
admin_listen = 127.0.0.1:%(admin)d
[backend]
address = 127.0.0.1:%(backend)d
keepalive = 64
max_concurrency = %(limit)s
[room]
mode = %(mode)s
store = memory
secret = %(secret)s
%(rooms)s"""

# einlass-rooms: two named rooms that wrk's requests (Host 127.0.0.1:PORT,
# path /) do not match, so every request is chosen into [room] past both.
ROOMS = """
[room campaign]
path = /impfkampagne/**
[room kiosk]
host = kiosk.example.org, *.kiosk.example.org
path = /termine/**
"""


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


def table(targets):
    med = {}
    for t in targets:
        if not t.runs:
            continue
        rps = statistics.median(r[0] for r in t.runs)
        p99 = statistics.median(r[1] for r in t.runs)
        cpus = [r[2] for r in t.runs if r[2] is not None]
        cpu = statistics.median(cpus) if cpus else None
        med[t.name] = (rps, p99, cpu, sum(r[3] for r in t.runs))
    base = med.get("nginx", (None,))[0]
    lines = ["| proxy | req/s | vs nginx | p99 ms | CPU us/req | errors |",
             "|---|---:|---:|---:|---:|---:|"]
    for name, (rps, p99, cpu, errors) in med.items():
        lines.append("| %s | %.0f | %s | %.2f | %s | %d |" % (
            name, rps, "%.2f" % (rps / base) if base else "-", p99,
            "%.1f" % cpu if cpu is not None else "-", errors))
    return "\n".join(lines)


def machine():
    model = "unknown"
    with open("/proc/cpuinfo") as f:
        m = re.search(r"^model name\s*:\s*(.*)$", f.read(), re.M)
        model = m.group(1) if m else model
    return "%d x %s, %s" % (os.cpu_count(), model, os.uname().release)


def write_readme(text):
    path = os.path.join(ROOT, "bench", "README.md")
    with open(path) as f:
        old = f.read()
    new = re.sub(r"(<!-- bench:begin -->\n).*?(<!-- bench:end -->)",
                 lambda m: m.group(1) + text + "\n" + m.group(2), old, flags=re.S)
    if new == old and "<!-- bench:begin -->" not in old:
        sys.exit("bench/README.md has no <!-- bench:begin --> marker")
    with open(path, "w") as f:
        f.write(new)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    ap.add_argument("--connections", type=int, default=50)
    ap.add_argument("--threads", type=int, default=1, help="wrk threads")
    ap.add_argument("--warmup", type=int, default=2, help="seconds of untimed load first")
    ap.add_argument("--only", help="comma-separated subset of: direct,haproxy-tcp,nginx,"
                    "haproxy,einlass-off,einlass-auto,einlass-limit,einlass-rooms")
    ap.add_argument("--einlass", help="use this einlass binary instead of building one")
    ap.add_argument("--write", action="store_true", help="put the table into bench/README.md")
    args = ap.parse_args()

    ensure_tools()
    bindir = os.path.join(ROOT, "build-bench")
    backend_bin, einlass_bin = build(args, bindir)
    work = tempfile.mkdtemp(prefix="einlass-bench-")
    p = {name: free_port() for name in ("backend", "nginx", "haproxy", "tcp_port",
                                        "einlass-off", "einlass-auto", "einlass-limit",
                                        "einlass-rooms", "admin1", "admin2", "admin3",
                                        "admin4")}
    backend = Target("backend", [backend_bin, str(p["backend"])], p["backend"], work)
    direct = Target("direct", [], p["backend"], work)
    nginx = Target("nginx", ["nginx", "-p", work, "-e", os.path.join(work, "nginx-error.log"),
                             "-c", write(os.path.join(work, "nginx.conf"), NGINX % {
                                 "dir": work, "backend": p["backend"], "port": p["nginx"]})],
                   p["nginx"], work)
    haproxy = Target("haproxy", ["haproxy", "-db", "-f", write(
        os.path.join(work, "haproxy.cfg"), HAPROXY % {
            "port": p["haproxy"], "tcp_port": p["tcp_port"], "backend": p["backend"]})],
        p["haproxy"], work)
    tcp = Target("haproxy-tcp", [], p["tcp_port"], work)
    targets = [direct, tcp, nginx, haproxy]
    if einlass_bin:
        secret = secrets.token_hex(32)
        for name, mode, limit, admin in (("einlass-off", "off", "0", "admin1"),
                                         ("einlass-auto", "auto", "0", "admin2"),
                                         ("einlass-limit", "auto", "auto", "admin3"),
                                         ("einlass-rooms", "auto", "0", "admin4")):
            conf = write(os.path.join(work, name + ".conf"), EINLASS % {
                "port": p[name], "admin": p[admin], "backend": p["backend"], "mode": mode,
                "limit": limit, "secret": secret,
                "rooms": ROOMS if name == "einlass-rooms" else ""})
            targets.append(Target(name, [einlass_bin, "-c", conf], p[name], work))
    if args.only:
        wanted = args.only.split(",")
        targets = [t for t in targets if t.name in wanted]
    servers = [backend] + [t for t in targets if t.argv] + ([haproxy] if tcp in targets else [])
    try:
        for s in dict.fromkeys(servers):  # each server once, in order
            s.start()
        cpu_pid = {t.name: t.proc.pid for t in targets if t.proc}
        cpu_pid["haproxy-tcp"] = haproxy.proc.pid if haproxy.proc else None
        if args.warmup:
            warm = argparse.Namespace(**{**vars(args), "duration": args.warmup})
            for t in targets:
                run_wrk(t.port, warm)
        for r in range(args.rounds):
            for t in targets:
                t.measure(args, cpu_pid.get(t.name))
                rps, p99, cpu, err = t.runs[-1]
                print("round %d %-12s %9.0f req/s  p99 %7.2f ms  cpu %s us/req  errors %d" % (
                    r + 1, t.name, rps, p99, "%.1f" % cpu if cpu is not None else "-", err),
                    flush=True)
    finally:
        for s in reversed(servers):
            s.stop()
        shutil.rmtree(work, ignore_errors=True)
    text = ("%s\n\nMedians of %d rounds; `wrk -t%d -c%d -d%ds --latency`; %s; %s.\n" % (
        table(targets), args.rounds, args.threads, args.connections, args.duration,
        machine(), time.strftime("%Y-%m-%d")))
    print()
    print(text)
    if args.write:
        write_readme(text)
        print("bench/README.md updated")


if __name__ == "__main__":
    main()
