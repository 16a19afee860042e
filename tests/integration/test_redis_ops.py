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

from einlass_test import (Einlass, Proc, conf_text, free_port, run, start_backend, wait_until,
                          write_conf)
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


def main():
    global B
    B = start_backend()
    try:
        run([test_requirepass_without_password_logs_once_not_15_lines_per_second,
             test_password_file_acl_user_db_and_host_name,
             test_unreachable_redis_at_start_is_logged_at_warning])
    finally:
        B.stop()


if __name__ == "__main__":
    main()
