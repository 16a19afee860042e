#!/usr/bin/env python3
"""einlass as a plain reverse proxy (issue 2): framing, forwarding, timeouts,
reload and drain, against the real binary and a real backend on 127.0.0.1."""
import os
import signal
import socket
import subprocess
import threading
import time

from einlass_test import (BIN, Client, Einlass, conf_text, free_port, get, run, start_backend,
                          write_conf, wait_until)

B = None


def setup():
    global B
    B = start_backend()


def proxy(room="mode = off", server="", backend="", trigger=""):
    return Einlass(write_conf(conf_text(B.port, room=room, server=server, backend=backend,
                                        trigger=trigger)))


def test_get_and_keepalive():
    e = proxy()
    try:
        c = Client(e.port)
        for i in range(5):
            r = c.request("GET", "/echo/%d?q=1" % i, [("X-Custom", "kept")])
            assert r.status == 200, r.status
            d = r.json()
            assert d["path"] == "/echo/%d?q=1" % i
            hdrs = {k.lower(): v for k, v in d["headers"]}
            assert hdrs["x-custom"] == "kept"
            assert hdrs["x-forwarded-for"] == "127.0.0.1"
            assert hdrs["x-forwarded-proto"] == "http"
            assert hdrs["via"] == "1.1 einlass"
            assert hdrs["host"] == "test"
        assert r.header("Via") == "1.1 einlass"
        assert "einlass_pass" not in c.cookies  # mode off: no cookies
        c.close()
    finally:
        assert e.stop() == 0


def test_hop_by_hop_removed_and_untrusted_xff_replaced():
    e = proxy()
    try:
        c = Client(e.port)
        r = c.request("GET", "/echo", [("Connection", "keep-alive, X-Secret"), ("X-Secret", "no"),
                                       ("Keep-Alive", "timeout=5"), ("TE", "trailers"),
                                       ("Proxy-Connection", "x"), ("Upgrade", "h2c"),
                                       ("X-Forwarded-For", "10.1.2.3")])
        hdrs = {k.lower(): v for k, v in r.json()["headers"]}
        for h in ("x-secret", "keep-alive", "te", "proxy-connection", "upgrade"):
            assert h not in hdrs, h
        assert hdrs["x-forwarded-for"] == "127.0.0.1"  # not a trusted proxy: its claim is dropped
    finally:
        e.stop()


def test_post_body_and_chunked_request():
    e = proxy()
    try:
        c = Client(e.port)
        r = c.request("POST", "/echo", body=b"x" * 100000)
        assert r.json()["body"] == "x" * 100000 and r.json()["framing"] == "length"
        body = b"4;ext=1\r\nabcd\r\n3\r\nefg\r\n0\r\nTrailer-X: 1\r\n\r\n"
        c.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n" + body)
        r = c.read_response()
        d = r.json()
        assert d["body"] == "abcdefg" and d["framing"] == "chunked", d
        # the backend never sees the client's extensions or trailers
        assert all(k.lower() != "trailer-x" for k, v in d["headers"])
        c.close()
    finally:
        e.stop()


def test_chunked_and_close_delimited_responses():
    e = proxy()
    try:
        c = Client(e.port)
        r = c.request("GET", "/chunked")
        assert r.body == b"hello chunked world\n" and r.header("Transfer-Encoding") == "chunked"
        r = c.request("GET", "/close")  # close-delimited from the backend: re-framed as chunked
        assert r.body == b"until the end\n", r.body
        assert r.header("Transfer-Encoding") == "chunked"
        r = c.request("GET", "/echo")  # and the client connection stays usable
        assert r.status == 200
        c.close()
    finally:
        e.stop()


def test_head_204_304():
    e = proxy()
    try:
        c = Client(e.port)
        r = c.request("HEAD", "/page")
        assert r.status == 200 and r.header("Content-Length") is not None
        r = c.request("GET", "/status/204")
        assert r.status == 204 and r.body == b""
        r = c.request("GET", "/status/304")
        assert r.status == 304
        r = c.request("GET", "/echo")
        assert r.status == 200
        c.close()
    finally:
        e.stop()


def test_large_bodies_stream_both_ways():
    """Bodies far beyond the buffers, read slowly: back-pressure both ways.
    A stalled transfer (a lost wake-up once the backend side drained) would
    end in the 10 s response timeout, a 504, long before it could pass."""
    import hashlib
    e = proxy(backend="response_timeout_ms = 10000")
    try:
        c = Client(e.port, timeout=60)
        c.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        c.send(b"GET /big?mb=24 HTTP/1.1\r\nHost: t\r\n\r\n")
        time.sleep(1.0)  # einlass must stop reading the backend, not buffer 24 MiB
        r = c.read_response()
        block = bytes(range(256)) * 4096
        assert len(r.body) == 24 << 20
        assert r.body == block * 24
        # upload 8 MiB (under max_body_bytes) chunked in odd-sized pieces,
        # then with Content-Length
        data = bytes((i * 7) & 0xFF for i in range(1 << 16)) * 128
        c.send(b"POST /sum HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
        off = 0
        while off < len(data):
            n = min(100003, len(data) - off)
            c.send(b"%x\r\n" % n + data[off:off + n] + b"\r\n")
            off += n
        c.send(b"0\r\n\r\n")
        d = c.read_response().json()
        assert d == {"len": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                     "framing": "chunked"}, d
        c.close()
        code, text = e.admin("GET", "/metrics")
        assert "einlass_inflight 0" in text
    finally:
        assert e.stop() == 0
    # The same upload with Content-Length through an einlass whose response
    # timeout is 3 s: it takes well under a second on loopback, while a lost
    # wake-up used to stall it for 5-30 s (until a TCP window probe).
    e = proxy(backend="response_timeout_ms = 3000")
    try:
        for _ in range(3):
            c = Client(e.port, timeout=60)
            r = c.request("POST", "/sum", body=data)
            assert r.status == 200, r.status
            assert r.json()["sha256"] == hashlib.sha256(data).hexdigest()
            c.close()
    finally:
        assert e.stop() == 0


def test_pipelined_requests():
    e = proxy()
    try:
        c = Client(e.port)
        c.send(b"".join(b"GET /echo/%d HTTP/1.1\r\nHost: t\r\n\r\n" % i for i in range(10)))
        for i in range(10):
            r = c.read_response()
            assert r.json()["path"] == "/echo/%d" % i
        c.close()
    finally:
        e.stop()


def test_expect_continue():
    e = proxy()
    try:
        c = Client(e.port)
        c.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        r = c.read_response()
        assert r.status == 100
        c.send(b"hello")
        r = c.read_response()
        assert r.status == 200 and r.json()["body"] == "hello"
        c.close()
    finally:
        e.stop()


BAD = [
    (b"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: -1\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost : t\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: t\r\nX: a\r\n b\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: t\r\nX: a\x00b\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: t\r\nX: a\rb\r\n\r\n", 400),
    (b"GET  / HTTP/1.1\r\nHost: t\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\n\r\n", 400),
    (b"GET / HTTP/2.0\r\nHost: t\r\n\r\n", 505),
    (b"GET / HTTP/1.1\r\nHost: t\r\n" + b"X-Big: " + b"a" * 20000 + b"\r\n\r\n", 431),
    (b"GET / HTTP/1.1\r\nHost: t\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(200)) + b"\r\n", 431),
]


def test_ambiguous_requests_refused():
    e = proxy()
    try:
        for raw, want in BAD:
            c = Client(e.port)
            c.send(raw)
            r = c.read_response()
            assert r.status == want, (raw[:60], r.status)
            assert r.header("Connection") == "close"
            assert len(r.body) > 0  # a short reason
            assert c.closed(), raw[:60]
            c.close()
        # bad chunk size in a body
        c = Client(e.port)
        c.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")
        r = c.read_response()
        assert r.status == 400
        c.close()
        # and the proxy still serves
        r, _ = get(e.port, "/echo")
        assert r.status == 200
    finally:
        e.stop()


def test_body_limit_413():
    e = proxy(server="max_body_bytes = 1000")
    try:
        c = Client(e.port)
        c.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1001\r\n\r\n")
        r = c.read_response()
        assert r.status == 413
        c.close()
        c = Client(e.port)
        c.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
               + b"3e8\r\n" + b"a" * 1000 + b"\r\n" + b"1\r\nb\r\n0\r\n\r\n")
        r = c.read_response()
        assert r.status == 413, r.status
        c.close()
    finally:
        e.stop()


def test_504_with_unread_body_lingers_quietly():
    """A backend that never reads nor answers: 504 while the client is still
    uploading. einlass must linger (read and drop) without spinning: this
    once looped on EPOLLOUT at 100% CPU until the lingering timer fired."""
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(5)
    held = []
    threading.Thread(target=lambda: [held.append(ls.accept()) for _ in range(3)],
                     daemon=True).start()
    e = Einlass(write_conf(conf_text(ls.getsockname()[1], room="mode = off",
                                     backend="response_timeout_ms = 500")))
    try:
        c = Client(e.port, timeout=30)
        c.send(b"POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 8000000\r\n\r\n")

        def upload():
            try:
                c.s.sendall(b"x" * 8000000)
            except OSError:
                pass

        threading.Thread(target=upload, daemon=True).start()
        r = c.read_response()
        assert r.status == 504 and r.header("Connection") == "close", r.status
        time.sleep(0.3)
        ticks = cpu_ticks(e.proc.p.pid)
        time.sleep(2.0)
        spent = cpu_ticks(e.proc.p.pid) - ticks
        assert spent < os.sysconf("SC_CLK_TCK") // 2, "einlass spun at %d ticks in 2 s" % spent
    finally:
        e.stop()
        ls.close()


def test_out_of_descriptors_pauses_accepts():
    """With the descriptor limit reached, accept() fails while the listener
    stays readable: einlass must pause accepting instead of spinning, and
    serve again once descriptors are free."""
    e = Einlass(write_conf(conf_text(B.port, room="mode = off")),
                wrap=["prlimit", "--nofile=48:48"])
    socks = []
    try:
        for _ in range(60):  # more than the limit allows
            socks.append(socket.create_connection(("127.0.0.1", e.port), timeout=5))
            socks[-1].sendall(b"GET /echo HTTP/1.1\r\nHost: t\r\n")  # an unfinished head
        e.proc.wait_line(r"pausing accepts")
        ticks = cpu_ticks(e.proc.p.pid)
        time.sleep(1.0)
        spent = cpu_ticks(e.proc.p.pid) - ticks
        assert spent < os.sysconf("SC_CLK_TCK") // 2, "einlass spun at %d ticks in 1 s" % spent
        for s in socks:
            s.close()
        socks = []
        r = wait_until(lambda: get(e.port, "/echo")[0], timeout=10, what="served again")
        assert r.status == 200
    finally:
        for s in socks:
            s.close()
        e.stop()


def cpu_ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def test_502_when_backend_down():
    port = free_port()
    e = Einlass(write_conf(conf_text(port, room="mode = off", backend="connect_timeout_ms = 500")))
    try:
        t0 = time.time()
        r, _ = get(e.port, "/")
        assert r.status == 502, r.status
        assert time.time() - t0 < 5
        assert b"backend" in r.body
    finally:
        e.stop()


def test_504_on_slow_backend():
    e = proxy(backend="response_timeout_ms = 300")
    try:
        r, _ = get(e.port, "/slow?ms=2000")
        assert r.status == 504, r.status
        r, _ = get(e.port, "/echo")
        assert r.status == 200
    finally:
        e.stop()


def test_slowloris_header_timeout():
    e = proxy(server="header_timeout_ms = 300")
    try:
        c = Client(e.port)
        c.send(b"GET / HTTP/1.1\r\nHost: t\r\n")
        t0 = time.time()
        assert c.closed(timeout=5)
        assert time.time() - t0 < 4
    finally:
        e.stop()


def test_idle_timeout():
    e = proxy(server="idle_timeout_ms = 300")
    try:
        c = Client(e.port)
        assert c.request("GET", "/echo").status == 200
        assert c.closed(timeout=5)
    finally:
        e.stop()


def test_reload_to_new_backend_and_bad_reload():
    b2 = start_backend()
    path = write_conf(conf_text(B.port, room="mode = off"))
    e = Einlass(path)
    try:
        c = Client(e.port)  # a keep-alive connection across the reload
        assert c.request("GET", "/echo").status == 200
        with open(path, "w") as f:
            f.write(conf_text(b2.port, room="mode = off").replace("\nlisten = 127.0.0.1:0",
                                                                   "\nlisten = 127.0.0.1:%d" % e.port))
        # listen changed from :0 to the same port it has: a new socket joins with SO_REUSEPORT
        m = e.reload()
        assert "in effect" in m.group(0), m.group(0)
        wait_until(lambda: get(e.port, "/_stats")[0].status == 200)
        before = b2_requests(b2)
        assert c.request("GET", "/echo").status == 200
        assert b2_requests(b2) == before + 2  # the echo, and this /_stats itself
        # a bad file: logged, counted, the old config stays
        with open(path, "a") as f:
            f.write("\n[bogus]\nkey = 1\n")
        m = e.reload()
        assert "failed" in m.group(0)
        assert "einlass.conf:" in e.proc.text()
        assert get(e.port, "/echo")[0].status == 200
        code, text = e.admin("GET", "/metrics")
        assert 'einlass_config_reloads_total{result="failed"} 1' in text, text
        assert 'einlass_config_reloads_total{result="ok"} 1' in text
    finally:
        e.stop()
        b2.stop()


def test_reload_refuses_no_connection():
    e = proxy()
    try:
        stop = threading.Event()
        stats = {"ok": 0, "errors": []}

        def hammer():
            while not stop.is_set():
                try:
                    r, _ = get(e.port, "/echo")
                    assert r.status == 200, r.status
                    stats["ok"] += 1
                except Exception as ex:
                    stats["errors"].append(repr(ex))

        threads = [threading.Thread(target=hammer) for _ in range(4)]
        for t in threads:
            t.start()
        for _ in range(5):
            time.sleep(0.2)
            assert "in effect" in e.reload().group(0)
        time.sleep(0.2)
        stop.set()
        for t in threads:
            t.join()
        assert stats["ok"] > 20 and not stats["errors"], stats
    finally:
        e.stop()


def test_reload_moves_the_admin_api():
    path = write_conf(conf_text(B.port, room="mode = off"))
    e = Einlass(path)
    try:
        port = free_port()
        with open(path) as f:
            text = f.read()
        with open(path, "w") as f:
            f.write(text.replace("admin_listen = 127.0.0.1:0", "admin_listen = 127.0.0.1:%d" % port))
        assert "in effect" in e.reload().group(0)
        old = e.admin_port
        e.admin_port = port
        assert e.admin("GET", "/status")[0] == 200
        try:
            socket.create_connection(("127.0.0.1", old), timeout=2).close()
            moved = False
        except OSError:
            moved = True
        assert moved, "the old admin port still accepts"
    finally:
        e.stop()


def test_reload_all_or_nothing_when_admin_port_taken():
    path = write_conf(conf_text(B.port, room="mode = off"))
    e = Einlass(path)
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    try:
        with open(path) as f:
            text = f.read()
        text = text.replace("admin_listen = 127.0.0.1:0",
                            "admin_listen = 127.0.0.1:%d" % busy.getsockname()[1])
        text = text.replace("mode = off", "mode = on")  # would be visible if applied
        with open(path, "w") as f:
            f.write(text)
        assert "failed" in e.reload().group(0)
        assert e.admin("GET", "/status")[0] == 200  # the old admin API stays
        assert e.status()["mode"] == "off"
        r, cookies = get(e.port, "/echo")
        assert r.status == 200 and not cookies  # still mode off: nothing half-applied
    finally:
        busy.close()
        e.stop()


def b2_requests(b):
    r, _ = get_direct(b.port, "/_stats")
    import json
    return json.loads(r.body)["requests"]


def get_direct(port, path):
    return get(port, path)


def test_drain_lets_slow_request_finish():
    e = proxy(server="drain_timeout_ms = 5000")
    try:
        result = {}

        def slow():
            try:
                result["r"] = get(e.port, "/slow?ms=1000")[0]
            except Exception as ex:  # reported by the assertion below
                result["error"] = repr(ex)

        before = b2_requests(B)
        t = threading.Thread(target=slow)
        t.start()
        # SIGTERM only once the slow request is at the backend (in flight)
        wait_until(lambda: b2_requests(B) >= before + 2, what="slow request at the backend")
        t0 = time.time()
        e.proc.kill_with(signal.SIGTERM)
        time.sleep(0.2)
        try:  # no new connections once stopping
            s = socket.create_connection(("127.0.0.1", e.port), timeout=1)
            s.sendall(b"GET /echo HTTP/1.1\r\nHost: t\r\n\r\n")
            refused = s.recv(100) == b""
        except OSError:
            refused = True
        assert refused
        t.join(10)
        assert "r" in result, result
        assert result["r"].status == 200 and result["r"].body == b"slow done\n"
        assert e.proc.p.wait(10) == 0
        assert time.time() - t0 < 5
    finally:
        e.stop()


def test_check_flag():
    ok = write_conf(conf_text(B.port, room="mode = off"))
    r = subprocess.run([BIN, "-t", "-c", ok], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    bad = write_conf(conf_text(B.port, room="mode = sideways"))
    r = subprocess.run([BIN, "-t", "-c", bad], capture_output=True, text=True)
    assert r.returncode == 1
    assert os.path.basename(bad) in r.stderr and ":" in r.stderr
    line = r.stderr.split(":")[1]
    assert line.isdigit() and int(line) > 0, r.stderr
    r = subprocess.run([BIN, "-v"], capture_output=True, text=True)
    assert r.returncode == 0 and "einlass" in r.stdout
    r = subprocess.run([BIN, "-h"], capture_output=True, text=True)
    assert r.returncode == 0 and "-c FILE" in r.stdout


def test_shipped_config_checks():
    src = os.environ.get("EL_SOURCE_DIR")
    conf = os.path.join(src, "conf", "einlass.conf")
    text = open(conf).read()
    d = os.path.dirname(write_conf("", "x"))
    secret = os.path.join(d, "secret")
    with open(secret, "w") as f:
        f.write("ab" * 32 + "\n")
    import re
    text = re.sub(r"(?m)^secret_file\s*=.*$", "secret_file = " + secret, text)
    text = re.sub(r"(?m)^template\s*=.*$", "template = " + os.path.join(src, "conf", "waiting-room.html"), text)
    p = write_conf(text, d=d)
    r = subprocess.run([BIN, "-t", "-c", p], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


if __name__ == "__main__":
    setup()
    try:
        run([test_get_and_keepalive, test_hop_by_hop_removed_and_untrusted_xff_replaced,
             test_post_body_and_chunked_request, test_chunked_and_close_delimited_responses,
             test_head_204_304, test_large_bodies_stream_both_ways, test_pipelined_requests, test_expect_continue,
             test_ambiguous_requests_refused, test_body_limit_413, test_504_with_unread_body_lingers_quietly,
             test_out_of_descriptors_pauses_accepts,
             test_502_when_backend_down,
             test_504_on_slow_backend, test_slowloris_header_timeout, test_idle_timeout,
             test_reload_to_new_backend_and_bad_reload, test_reload_refuses_no_connection,
             test_reload_moves_the_admin_api, test_reload_all_or_nothing_when_admin_port_taken,
             test_drain_lets_slow_request_finish,
             test_check_flag, test_shipped_config_checks])
    finally:
        B.stop()
