#!/usr/bin/env python3
"""Redis as operators run it (issue 12, items 4 and 6), against the real
binary, a real backend and real redis-server / redis-sentinel / stunnel4
processes on free ports of 127.0.0.1: AUTH with a password file (and an
ACL user), SELECT db, host names, the state lines in the log (one per change,
never a flood), einlass_store_state in /metrics, a Sentinel failover under
load (einlass follows the new master; pass holders see no 5xx) and TLS to
Redis through a stunnel sidecar. Timing is only asserted within generous
bounds; conditions are polled."""
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time

from einlass_test import (Einlass, Proc, SocketServer, conf_text, free_port, run, start_backend,
                          wait_until, write_conf)
from test_room import join, poll, request

B = None


class RedisProc:
    """redis-server with extra arguments (requirepass, replicaof, ...)."""

    def __init__(self, *extra, port=None):
        self.port = port or free_port()
        self.dir = tempfile.mkdtemp(prefix="el-redis-")
        self.extra = list(extra)
        self.proc = Proc(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                          "--save", "", "--appendonly", "no", "--dir", self.dir] + self.extra)
        self.proc.wait_line(r"Ready to accept connections")

    def cli(self, *args, password=None, user=None):
        argv = ["redis-cli", "-p", str(self.port)]
        if user:
            argv += ["--user", user]
        if password:
            argv += ["--pass", password, "--no-auth-warning"]
        return subprocess.run(argv + [str(a) for a in args], capture_output=True, text=True,
                              timeout=10).stdout.strip()

    def stop(self):
        self.proc.stop(signal.SIGKILL)
        shutil.rmtree(self.dir, ignore_errors=True)


def conf(redis, extra="", rate=5, name="ops", mode="on"):
    return write_conf(conf_text(B.port, room=(
        "mode = %s\nstore = redis\nredis = %s\nname = %s\nadapt = off\n"
        "admit_per_s = %g\nmin_admit_per_s = 0.01\npoll_s = 1\n%s"
        % (mode, redis, name, rate, extra))))


def metrics(e):
    return e.admin("GET", "/metrics")[1]


def state_gauge(e):
    m = re.findall(r'^einlass_store_state\{state="(\w+)"\} 1$', metrics(e), re.M)
    return m[0] if m else None


def lines(e, rx):
    return [l for l in e.proc.text().splitlines() if re.search(rx, l)]


def test_requirepass_without_password_logs_once_not_15_lines_per_second():
    """A Redis with requirepass and einlass without the password: the room
    stays in the local fallback, and the log says so a few times, not ~15
    lines a second of connected/unauthenticated/disconnected."""
    r = RedisProc("--requirepass", "s3cret")
    e = None
    try:
        e = Einlass(conf("127.0.0.1:%d" % r.port))
        time.sleep(4)
        assert e.status()["store"] == "fallback", e.status()
        redis_lines = lines(e, r"redis")
        assert len(redis_lines) <= 8, "\n".join(redis_lines[-20:])
        assert any(re.search(r"^<4>.*auth", l, re.I) for l in redis_lines), redis_lines
        assert e.stop() == 0
    finally:
        if e:
            e.stop()
        r.stop()


def test_unreachable_redis_at_start_is_logged_at_warning():
    port = free_port()
    e = Einlass(conf("127.0.0.1:%d" % port))
    try:
        e.proc.wait_line(r"^<4>einlass: redis .*127\.0\.0\.1:%d.*down" % port, timeout=10)
        assert e.status()["store"] == "fallback"
        assert e.stop() == 0
    finally:
        e.stop()


def test_password_file_acl_user_db_and_host_name():
    """redis://user@localhost:PORT/3 with the password in redis_password_file
    (relative to the config): AUTH user password and SELECT 3 go first, the
    room's keys land in db 3, the password is never logged, and the state
    is in /metrics. A wrong password (reload) is "auth_failed", logged once."""
    r = RedisProc("--requirepass", "admin-pw")
    e = None
    try:
        r.cli("ACL", "SETUSER", "einlass", "on", ">s3cr:t@pw", "~*", "+@all", password="admin-pw")
        path = conf("redis://einlass@localhost:%d/3" % r.port,
                    extra="redis_password_file = redis-password\n")
        pwfile = os.path.join(os.path.dirname(path), "redis-password")
        with open(pwfile, "w") as f:
            f.write("s3cr:t@pw\n")
        e = Einlass(path)
        wait_until(lambda: e.status()["store"] == "redis", timeout=10, what="store redis")
        assert state_gauge(e) == "redis", metrics(e)
        assert "einlass_store_fallback_seconds_total" in metrics(e)
        join(e.port)
        keys = r.cli("-n", "3", "KEYS", "einlass:*", password="admin-pw")
        assert "einlass:{ops}:meter" in keys, keys
        assert r.cli("-n", "0", "DBSIZE", password="admin-pw") == "0"
        assert e.proc.wait_line(r"^<5>einlass: redis redis://einlass@localhost:%d/3: connected"
                                % r.port)
        with open(pwfile, "w") as f:
            f.write("wrong\n")
        assert "in effect" in e.reload().group(0)
        wait_until(lambda: state_gauge(e) == "auth_failed", timeout=10, what="auth_failed")
        time.sleep(3)
        auth = lines(e, r"auth failed")
        assert 1 <= len(auth) <= 2, auth
        assert "s3cr:t@pw" not in e.proc.text() and "wrong" not in e.proc.text()
        assert e.status()["store"] == "fallback"
        with open(pwfile, "w") as f:
            f.write("s3cr:t@pw\n")
        e.reload()
        wait_until(lambda: state_gauge(e) == "redis", timeout=10, what="back on redis")
        assert e.stop() == 0
    finally:
        if e:
            e.stop()
        r.stop()


class Sentinel:
    """One redis-sentinel watching master_port (quorum 1, down after 1 s)."""

    def __init__(self, master_port, name="mymaster"):
        self.port = free_port()
        self.name = name
        self.dir = tempfile.mkdtemp(prefix="el-sentinel-")
        path = os.path.join(self.dir, "sentinel.conf")
        with open(path, "w") as f:
            f.write("port %d\nbind 127.0.0.1\ndir %s\n"
                    "sentinel monitor %s 127.0.0.1 %d 1\n"
                    "sentinel down-after-milliseconds %s 1000\n"
                    "sentinel failover-timeout %s 3000\n"
                    % (self.port, self.dir, name, master_port, name, name))
        self.proc = Proc(["redis-sentinel", path])
        self.proc.wait_line(r"\+monitor master %s" % name)

    def cli(self, *args):
        return subprocess.run(["redis-cli", "-p", str(self.port)] + [str(a) for a in args],
                              capture_output=True, text=True, timeout=10).stdout.strip()

    def master_port(self):
        out = self.cli("SENTINEL", "get-master-addr-by-name", self.name).split()
        return int(out[1]) if len(out) == 2 else None

    def stop(self):
        self.proc.stop(signal.SIGKILL)
        shutil.rmtree(self.dir, ignore_errors=True)


class Holder:
    """A pass holder asking for /page every 20 ms; counts answers by status."""

    def __init__(self, port, cookies):
        self.port, self.cookies = port, cookies
        self.statuses = []
        self.running = True
        self.t = threading.Thread(target=self._loop, daemon=True)
        self.t.start()

    def _loop(self):
        while self.running:
            try:
                r, _ = request(self.port, "GET", "/page", self.cookies)
                self.statuses.append(r.status)
            except Exception as ex:  # a refused or reset connection counts too
                self.statuses.append(repr(ex))
            time.sleep(0.02)

    def stop(self):
        self.running = False
        self.t.join(10)
        return self.statuses


def test_sentinel_failover_follows_new_master_no_5xx_to_pass_holders():
    """A master, a replica and one sentinel; einlass with
    sentinel://127.0.0.1:PORT/mymaster. The master is killed: the sentinel
    promotes the replica, einlass asks the sentinel again and follows it
    (the log names the new master, new joins land in its data), the places
    taken before the failover are kept, and the pass holder's requests meanwhile
    are all 200."""
    master = RedisProc()
    replica = RedisProc("--replicaof", "127.0.0.1", str(master.port))
    sentinel = None
    e = None
    try:
        wait_until(lambda: "master_link_status:up" in replica.cli("INFO", "replication"),
                   timeout=20, what="replica in sync")
        sentinel = Sentinel(master.port)
        wait_until(lambda: "%d" % replica.port in sentinel.cli("SENTINEL", "replicas",
                                                                "mymaster"),
                   timeout=30, what="sentinel knows the replica")
        e = Einlass(conf("sentinel://127.0.0.1:%d/mymaster" % sentinel.port, mode="auto",
                         rate=0.01, name="sent"))
        wait_until(lambda: e.status()["store"] == "redis", timeout=10, what="store redis")
        e.proc.wait_line(r"sentinels name master 127\.0\.0\.1:%d" % master.port)
        _, holder = request(e.port, "GET", "/page")
        holder = {"einlass_pass": holder["einlass_pass"]}
        assert e.admin("POST", "/mode", "on")[0] == 204
        tickets = [join(e.port)[1] for _ in range(3)]
        def joined(rd):  # tickets handed out (a room numbers from Redis time x 1024)
            t, h = (rd.cli("HGET", "einlass:{sent}:meter", f) for f in ("t0", "h0"))
            return int(t) - int(h) if t and h else 0
        wait_until(lambda: joined(replica) == 3, timeout=10, what="joins replicated")
        h = Holder(e.port, holder)
        time.sleep(0.5)
        n = len(e.proc.lines)
        t0 = time.time()
        master.stop()  # SIGKILL
        wait_until(lambda: sentinel.master_port() == replica.port, timeout=30,
                   what="sentinel promotes the replica")
        t_promoted = time.time()
        e.proc.wait_line(r"sentinels name master 127\.0\.0\.1:%d" % replica.port, timeout=20,
                         start=n)
        wait_until(lambda: e.status()["store"] == "redis", timeout=20, what="store redis again")
        recovery = time.time() - t0
        time.sleep(0.5)
        statuses = h.stop()
        bad = [x for x in statuses if x != 200]
        assert not bad and len(statuses) > 20, (bad[:10], len(statuses))
        for i, t in enumerate(tickets):
            doc, _ = poll(e.port, t)
            assert doc["state"] == "waiting" and doc["position"] == i + 1, (i, doc)
        r, _ = join(e.port)
        assert r.json()["position"] == 4, r.body
        assert joined(replica) == 4
        assert state_gauge(e) == "redis"
        print("     sentinel failover: %d pass-holder requests, 0 non-200, back on redis "
              "%.1f s after the kill, %.1f s after the promotion (sentinel: down after 1 s)"
              % (len(statuses), recovery, t0 + recovery - t_promoted))
        assert e.stop() == 0
    finally:
        if e:
            e.stop()
        if sentinel:
            sentinel.stop()
        replica.stop()
        master.stop()


class FakeSentinel(SocketServer):
    """Answers SENTINEL get-master-addr-by-name with whatever master_port is
    now, PING with PONG (enough of a sentinel to move the master at will)."""

    def __init__(self, master_port):
        super().__init__()
        self.master_port = master_port
        self.asked = 0
        self.serve_forever()

    def _serve(self, c):
        f = c.makefile("rb")
        try:
            while True:
                line = f.readline()
                if not line:
                    return
                if not line.startswith(b"*"):
                    continue
                args = []
                for _ in range(int(line[1:])):
                    n = int(f.readline()[1:])
                    args.append(f.read(n + 2)[:n].decode())
                if args and args[0].upper() == "SENTINEL":
                    self.asked += 1
                    port = str(self.master_port)
                    c.sendall(b"*2\r\n$9\r\n127.0.0.1\r\n$%d\r\n%s\r\n" % (len(port), port.encode()))
                elif args and args[0].upper() == "PING":
                    c.sendall(b"+PONG\r\n")
                else:
                    c.sendall(b"+OK\r\n")
        except (OSError, ValueError):
            return
        finally:
            c.close()



def test_readonly_answer_makes_einlass_ask_the_sentinels_again():
    """The master einlass writes to becomes a replica without dropping its
    clients (REPLICAOF on a live server): the next write is answered
    READONLY, and einlass drops the link, asks the sentinels again and
    follows the master they name now; the places taken before are kept."""
    a = RedisProc()
    b = RedisProc("--replicaof", "127.0.0.1", str(a.port))
    fake = FakeSentinel(a.port)
    e = None
    try:
        wait_until(lambda: "master_link_status:up" in b.cli("INFO", "replication"),
                   timeout=20, what="replica in sync")
        e = Einlass(conf("sentinel://127.0.0.1:%d/mymaster" % fake.port, rate=0.01, name="ro"))
        wait_until(lambda: e.status()["store"] == "redis", timeout=10, what="store redis")
        tickets = [join(e.port)[1] for _ in range(2)]
        wait_until(lambda: b.cli("HGET", "einlass:{ro}:meter", "w0") == "2", timeout=10,
                   what="joins replicated")
        assert b.cli("REPLICAOF", "NO", "ONE") == "OK"
        fake.master_port = b.port
        assert a.cli("REPLICAOF", "127.0.0.1", str(b.port)) == "OK"
        wait_until(lambda: "role:slave" in a.cli("INFO", "replication"), what="a is a replica")
        n, asked = len(e.proc.lines), fake.asked
        join(e.port)  # the write that meets READONLY (the newcomer still gets a place)
        e.proc.wait_line(r"down: READONLY", timeout=20, start=n)
        wait_until(lambda: fake.asked > asked and e.status()["store"] == "redis", timeout=20,
                   what="the sentinel asked again, and back on redis")
        for i, t in enumerate(tickets):
            doc, _ = poll(e.port, t)
            assert doc["state"] == "waiting" and doc["position"] == i + 1, (i, doc)
        # every worker's link follows (each has its own): newcomers land on the new master
        wait_until(lambda: join(e.port)[0].json()["position"] >= 3 and
                   int(b.cli("HGET", "einlass:{ro}:meter", "w0")) >= 3, timeout=20,
                   what="a join written to the new master")
        assert e.stop() == 0
    finally:
        if e:
            e.stop()
        fake.close()
        b.stop()
        a.stop()


def test_tls_redis_through_stunnel_sidecar():
    """Redis speaking only TLS (Debian's redis-server built with TLS: no
    plain port, a self-signed certificate made here with openssl req -x509),
    and einlass talking plain Redis to a client-mode stunnel4 on 127.0.0.1
    that verifies the certificate and wraps the link in TLS, as the README
    describes: AUTH goes through, the room works, the state is redis."""
    d = tempfile.mkdtemp(prefix="el-tls-")
    cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
                    "-keyout", key, "-out", cert], check=True, capture_output=True, timeout=60)
    tls_port, local_port = free_port(), free_port()
    r = RedisProc("--port", "0", "--tls-port", str(tls_port), "--tls-cert-file", cert,
                  "--tls-key-file", key, "--tls-ca-cert-file", cert, "--tls-auth-clients", "no",
                  "--requirepass", "tls-pw")
    sconf = os.path.join(d, "stunnel.conf")
    with open(sconf, "w") as f:
        f.write("foreground = yes\npid =\n[redis]\nclient = yes\naccept = 127.0.0.1:%d\n"
                "connect = 127.0.0.1:%d\nverifyChain = yes\nCAfile = %s\n"
                "checkHost = localhost\n" % (local_port, tls_port, cert))
    st = Proc(["stunnel4", sconf])
    e = None
    try:
        st.wait_line(r"Configuration successful", timeout=20)
        path = conf("127.0.0.1:%d" % local_port, extra="redis_password_file = pw\n")
        with open(os.path.join(os.path.dirname(path), "pw"), "w") as f:
            f.write("tls-pw\n")
        e = Einlass(path)
        wait_until(lambda: e.status()["store"] == "redis", timeout=15, what="store redis")
        rr, _ = join(e.port)
        assert rr.json()["position"] == 1, rr.body
        rr, _ = join(e.port)
        assert rr.json()["position"] == 2, rr.body
        assert state_gauge(e) == "redis"
        out = subprocess.run(["redis-cli", "--tls", "--cacert", cert, "-h", "localhost", "-p",
                              str(tls_port), "--pass", "tls-pw", "--no-auth-warning", "HMGET",
                              "einlass:{ops}:meter", "t0", "h0"], capture_output=True, text=True,
                             timeout=10).stdout.split()
        assert len(out) == 2 and int(out[0]) - int(out[1]) == 2, out  # two tickets handed out
        assert e.stop() == 0
    finally:
        if e:
            e.stop()
        st.stop()
        r.stop()
        shutil.rmtree(d, ignore_errors=True)


def main():
    global B
    B = start_backend()
    try:
        run([test_requirepass_without_password_logs_once_not_15_lines_per_second,
             test_password_file_acl_user_db_and_host_name,
             test_sentinel_failover_follows_new_master_no_5xx_to_pass_holders,
             test_readonly_answer_makes_einlass_ask_the_sentinels_again,
             test_tls_redis_through_stunnel_sidecar,
             test_unreachable_redis_at_start_is_logged_at_warning])
    finally:
        B.stop()


if __name__ == "__main__":
    main()
