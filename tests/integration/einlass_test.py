"""Helpers for einlass's integration tests: real processes on 127.0.0.1 with
port 0 (einlass, the test backend, redis-server), a raw HTTP/1.1 client, and
a tiny test runner that prints "N passed, N failed" and exits non-zero on any
failure. Python standard library only."""
import os
import re
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import json
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("EL_SOURCE_DIR", os.path.abspath(os.path.join(HERE, "..", "..")))
BIN = os.environ.get("EINLASS_BIN", os.path.join(SRC, "build", "einlass"))
SECRET = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"


class Proc:
    """A child process whose stderr/stdout lines are collected in a thread."""

    def __init__(self, argv, env=None):
        self.argv = argv
        self.p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  env=env, start_new_session=True)
        self.lines = []
        self.cv = threading.Condition()
        self.pump = threading.Thread(target=self._pump, daemon=True)
        self.pump.start()

    def _pump(self):
        for raw in self.p.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            if os.environ.get("EL_TEST_VERBOSE"):
                sys.stderr.write("  | %s\n" % line)
            with self.cv:
                self.lines.append(line)
                self.cv.notify_all()

    def wait_line(self, pattern, timeout=10, start=0):
        rx = re.compile(pattern)
        deadline = time.time() + timeout
        with self.cv:
            i = start
            while True:
                while i < len(self.lines):
                    m = rx.search(self.lines[i])
                    if m:
                        return m
                    i += 1
                left = deadline - time.time()
                if left > 0 and self.p.poll() is not None and self.pump.is_alive():
                    self.cv.wait(0.1)  # the process is gone, its last lines not yet read
                    continue
                if left <= 0 or self.p.poll() is not None and i >= len(self.lines):
                    raise AssertionError("no line matching %r from %s; got:\n%s" %
                                         (pattern, self.argv[0], "\n".join(self.lines[-30:])))
                self.cv.wait(min(left, 0.1))

    def text(self):
        if self.p.poll() is not None:
            self.pump.join(10)  # an exited process: every line it wrote
        with self.cv:
            return "\n".join(self.lines)

    def kill_with(self, sig):
        self.p.send_signal(sig)

    def stop(self, sig=signal.SIGTERM, timeout=15):
        if self.p.poll() is None:
            self.p.send_signal(sig)
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        return self.p.returncode


class SocketServer:
    """A listener on 127.0.0.1 (a free port) that serves each connection in
    a thread of its own: the tests' hand-written backends. A subclass
    defines _serve(sock) and calls serve_forever() once its own fields are
    set; close() stops accepting."""

    def __init__(self, backlog=64):
        self.ls = socket.socket()
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(backlog)
        self.port = self.ls.getsockname()[1]

    def serve_forever(self):
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                s, _ = self.ls.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(s,), daemon=True).start()

    def close(self):
        self.ls.close()


def start_backend(port=0):
    b = Proc([sys.executable, os.path.join(HERE, "backend.py"), str(port)])
    m = b.wait_line(r"backend listening on 127\.0\.0\.1:(\d+)")
    b.port = int(m.group(1))
    return b


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Redis:
    def __init__(self, port=None):
        self.port = port or free_port()
        self.dir = tempfile.mkdtemp(prefix="el-redis-")
        self.start()

    def start(self):
        self.proc = Proc(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                          "--save", "", "--appendonly", "no", "--dir", self.dir])
        self.proc.wait_line(r"Ready to accept connections")

    def stop(self):
        self.proc.stop(signal.SIGKILL)

    def cmd(self, *args):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        out = b"*%d\r\n" % len(args)
        for a in args:
            a = str(a).encode()
            out += b"$%d\r\n%s\r\n" % (len(a), a)
        s.sendall(out)
        data = s.recv(1 << 20)
        s.close()
        return data


def write_conf(text, name="einlass.conf", d=None):
    d = d or tempfile.mkdtemp(prefix="el-test-")
    path = os.path.join(d, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def conf_text(backend_port, room="", server="", trigger="", backend="", extra=""):
    # Tests make many places from 127.0.0.1: the join limit only where asked for.
    if "max_joins_per_ip_per_min" not in room:
        room += "\nmax_joins_per_ip_per_min = 0\n"
    return """[server]
listen = 127.0.0.1:0
workers = 2
admin_listen = 127.0.0.1:0
log_level = info
%s
[backend]
address = 127.0.0.1:%d
%s
[trigger]
%s
[room]
secret = %s
%s
%s
""" % (server, backend_port, backend, trigger, SECRET, room, extra)


class Einlass:
    def __init__(self, conf_path, env=None, wrap=()):
        self.conf = conf_path
        self.proc = Proc(list(wrap) + [BIN, "-c", conf_path], env=env)
        m = self.proc.wait_line(r"listening on 127\.0\.0\.1:(\d+)")
        self.port = int(m.group(1))
        m = self.proc.wait_line(r"admin API on [^:]+:(\d+)")
        self.admin_port = int(m.group(1))
        self.proc.wait_line(r"started")

    def stop(self, sig=signal.SIGTERM, timeout=20):
        return self.proc.stop(sig, timeout)

    def reload(self):
        n = len(self.proc.lines)
        self.proc.kill_with(signal.SIGHUP)
        return self.proc.wait_line(r"reload(: .* in effect| failed)", start=n)

    def admin(self, method, path, body=None, token=None):
        req = urllib.request.Request("http://127.0.0.1:%d%s" % (self.admin_port, path),
                                     data=body.encode() if body is not None else None,
                                     method=method)
        if token:
            req.add_header("Authorization", "Bearer " + token)
        try:
            with urllib.request.urlopen(req, timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def status(self):
        return json.loads(self.admin("GET", "/status")[1])


class Response:
    def __init__(self, status, reason, headers, body, raw_head):
        self.status = status
        self.reason = reason
        self.headers = headers  # list of (name, value)
        self.body = body
        self.raw_head = raw_head

    def header(self, name, default=None):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return default

    def all(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def json(self):
        return json.loads(self.body)


class Client:
    """A raw HTTP/1.1 client on one connection: send bytes, read responses."""

    def __init__(self, port, timeout=10):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = bytearray()  # appends are amortised O(1): large bodies stay cheap
        self.cookies = {}

    def close(self):
        self.s.close()

    def send(self, data):
        self.s.sendall(data)

    def _fill(self):
        d = self.s.recv(65536)
        if not d:
            raise EOFError("connection closed")
        self.buf += d

    def closed(self, timeout=3):
        """True if the server closes the connection (after any pending bytes)."""
        self.s.settimeout(timeout)
        try:
            while True:
                d = self.s.recv(65536)
                if not d:
                    return True
                self.buf += d
        except (socket.timeout, TimeoutError):
            return False
        except ConnectionResetError:
            return True

    def read_response(self, head_request=False):
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        head = bytes(head)
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        status = int(parts[1])
        headers = [tuple(x.split(": ", 1)) for x in lines[1:]]
        r = Response(status, parts[2] if len(parts) > 2 else "", headers, b"", head)
        for v in r.all("Set-Cookie"):
            name, val = v.split(";")[0].split("=", 1)
            if val:
                self.cookies[name] = val
            else:
                self.cookies.pop(name, None)
        if head_request or status in (204, 304) or 100 <= status < 200:
            return r
        te = r.header("Transfer-Encoding")
        cl = r.header("Content-Length")
        if te == "chunked":
            body = bytearray()
            while True:
                while b"\r\n" not in self.buf:
                    self._fill()
                line, self.buf = self.buf.split(b"\r\n", 1)
                n = int(line.split(b";")[0], 16)
                if n == 0:
                    while b"\r\n" not in self.buf:
                        self._fill()
                    self.buf = self.buf.split(b"\r\n", 1)[1]
                    break
                while len(self.buf) < n + 2:
                    self._fill()
                body += self.buf[:n]
                self.buf = self.buf[n + 2:]
            r.body = bytes(body)
        elif cl is not None:
            n = int(cl)
            while len(self.buf) < n:
                self._fill()
            r.body, self.buf = bytes(self.buf[:n]), self.buf[n:]
        else:
            try:
                while True:
                    self._fill()
            except EOFError:
                pass
            r.body, self.buf = bytes(self.buf), bytearray()
        return r

    def request(self, method, path, headers=(), body=None, cookies=True):
        lines = ["%s %s HTTP/1.1" % (method, path)]
        if not any(k.lower() == "host" for k, _ in headers):  # a test may name its own
            lines.append("Host: test")
        lines += ["%s: %s" % h for h in headers]
        if cookies and self.cookies:
            lines.append("Cookie: " + "; ".join("%s=%s" % kv for kv in self.cookies.items()))
        if body is not None:
            lines.append("Content-Length: %d" % len(body))
        data = ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")
        self.send(data)
        return self.read_response(head_request=(method == "HEAD"))


def get(port, path, headers=(), cookies=None):
    c = Client(port)
    if cookies:
        c.cookies.update(cookies)
    try:
        return c.request("GET", path, headers), c.cookies
    finally:
        c.close()


class Poller:
    """Keeps a waiting client's ticket live: polls /_einlass/status."""

    def __init__(self, port, cookies):
        self.port, self.cookies = port, dict(cookies)
        self.state = None
        self.stopped = threading.Event()
        self.t = threading.Thread(target=self._loop, daemon=True)
        self.t.start()

    def _loop(self):
        while not self.stopped.is_set():
            try:
                r, self.cookies = get(self.port, "/_einlass/status", cookies=self.cookies)
                self.state = r.json()
            except (OSError, ValueError):
                pass
            self.stopped.wait(0.3)

    def stop(self):
        self.stopped.set()
        self.t.join(10)


def wait_until(fn, timeout=10, interval=0.05, what="condition"):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError("timed out waiting for %s (last: %r)" % (what, last))


def run(tests):
    """Run test functions; print one line each and the closing tally."""
    passed = failed = 0
    for t in tests:
        t0 = time.time()
        try:
            t()
            passed += 1
            print("ok   %s (%.1fs)" % (t.__name__, time.time() - t0), flush=True)
        except Exception:
            failed += 1
            print("FAIL %s (%.1fs)" % (t.__name__, time.time() - t0), flush=True)
            traceback.print_exc()
    print("%d passed, %d failed" % (passed, failed), flush=True)
    sys.exit(1 if failed else 0)
