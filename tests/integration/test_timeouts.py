#!/usr/bin/env python3
"""Timeouts of a request in flight are idle timers while bytes flow, not
deadlines: a slow download or upload that keeps moving completes however
long it takes; a client that stalls mid-body gets 408, a backend that does
not answer once the request is sent gets 504; every cut is logged with its
reason and the peer. Small timeouts (400-500 ms) keep the tests short; the
transfers take several times as long."""
import threading
import time

from einlass_test import Client, Einlass, SocketServer, run, write_conf

CONF = """[server]
listen = 127.0.0.1:0
workers = 1
admin_listen = 127.0.0.1:0
log_level = info
header_timeout_ms = 5000
idle_timeout_ms = 400
[backend]
address = 127.0.0.1:%d
response_timeout_ms = 500
[room]
mode = off
secret = 00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff
"""

PIECES, PIECE, GAP = 15, 1000, 0.15  # 2.25 s in all: several idle timeouts


class Backend(SocketServer):
    """  /drip     a Content-Length body sent in PIECES pieces, GAP apart
         /silent   reads the request, never answers
         else      reads the body, answers with its length"""

    def __init__(self):
        super().__init__()
        self.serve_forever()

    def _serve(self, s):
        f = s.makefile("rb")
        try:
            while True:
                line = f.readline()
                if not line:
                    return
                path = line.split(b" ")[1]
                n = 0
                while True:
                    h = f.readline()
                    if h in (b"\r\n", b""):
                        break
                    if h.lower().startswith(b"content-length:"):
                        n = int(h.split(b":")[1])
                body = f.read(n)
                if path.startswith(b"/drip"):
                    s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (PIECES * PIECE))
                    for _ in range(PIECES):
                        time.sleep(GAP)
                        s.sendall(b"d" * PIECE)
                elif path.startswith(b"/silent"):
                    time.sleep(30)
                    return
                else:
                    out = b"len %d" % len(body)
                    s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(out), out))
        except OSError:
            return
        finally:
            s.close()



def with_einlass(fn):
    b = Backend()
    e = Einlass(write_conf(CONF % b.port))
    try:
        fn(e)
    finally:
        rc = e.stop()
        b.close()
    assert rc == 0, "einlass exited %d" % rc


def test_slow_download_with_bytes_flowing_outlives_idle_timeout():
    def t(e):
        c = Client(e.port, timeout=20)
        r = c.request("GET", "/drip")
        assert r.status == 200 and len(r.body) == PIECES * PIECE, (r.status, len(r.body))
        c.close()
    with_einlass(t)


def test_slow_upload_with_bytes_trickling_outlives_response_timeout():
    def t(e):
        c = Client(e.port, timeout=20)
        c.send(b"POST /up HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % (PIECES * 100))
        for _ in range(PIECES):
            time.sleep(GAP)
            c.send(b"u" * 100)
        r = c.read_response()
        assert r.status == 200 and r.body == b"len %d" % (PIECES * 100), (r.status, r.body)
        c.close()
    with_einlass(t)


def test_client_stalling_mid_body_gets_408_and_a_log_line():
    def t(e):
        n = len(e.proc.lines)
        c = Client(e.port, timeout=20)
        c.send(b"POST /up HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n" + b"u" * 10)
        r = c.read_response()
        assert r.status == 408 and r.header("Connection") == "close", (r.status, r.body)
        c.close()
        e.proc.wait_line(r"timeout.*127\.0\.0\.1.*request body", start=n)
    with_einlass(t)


def test_backend_silent_after_request_gets_504_and_a_log_line():
    def t(e):
        n = len(e.proc.lines)
        c = Client(e.port, timeout=20)
        r = c.request("POST", "/silent", body=b"x" * 100)
        assert r.status == 504, (r.status, r.body)
        c.close()
        e.proc.wait_line(r"timeout.*127\.0\.0\.1.*no response", start=n)
    with_einlass(t)


def test_stalled_download_is_cut_with_a_log_line():
    """A backend that stops sending mid-body (its gap exceeds the idle
    timeout): the client sees the truncation, the log says why."""
    global GAP

    def t(e):
        n = len(e.proc.lines)
        c = Client(e.port, timeout=20)
        c.send(b"GET /drip HTTP/1.1\r\nHost: t\r\n\r\n")
        assert c.closed(timeout=10)
        assert len(c.buf) < PIECES * PIECE
        c.close()
        e.proc.wait_line(r"timeout.*127\.0\.0\.1.*response body", start=n)
    old, GAP = GAP, 1.0
    try:
        with_einlass(t)
    finally:
        GAP = old


if __name__ == "__main__":
    run([test_slow_download_with_bytes_flowing_outlives_idle_timeout,
         test_slow_upload_with_bytes_trickling_outlives_response_timeout,
         test_client_stalling_mid_body_gets_408_and_a_log_line,
         test_backend_silent_after_request_gets_504_and_a_log_line,
         test_stalled_download_is_cut_with_a_log_line])
