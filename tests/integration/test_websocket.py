#!/usr/bin/env python3
"""WebSockets through einlass (RFC 6455 section 4, RFC 9110 7.8): a real
handshake against a tiny echo server written here with the standard library
(Sec-WebSocket-Accept from hashlib and base64, masked client frames, echoed
server frames). The gate decides the handshake as any request (no pass while
queueing: the waiting answer; a pass or a bypass route: upgraded); on 101 the
connection is a byte tunnel both ways, with back-pressure, half-close and
idle_timeout_ms; a refused upgrade is a normal response; a 101 nobody asked
for, or for another protocol, is a 502."""
import base64
import hashlib
import os
import re
import socket
import struct
import threading
import time

from einlass_test import (Client, Einlass, SocketServer, conf_text, run, wait_until,
                          write_conf)

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
ROUTES = """
[route live]
match = GET /live/**
action = bypass
"""


def accept_key(key):
    return base64.b64encode(hashlib.sha1(key + GUID).digest())


def xor_mask(payload, key):
    if not payload:
        return payload
    n = len(payload)
    m = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(m, "big")).to_bytes(n, "big")


def frame(payload, opcode=1, mask=True):
    b0 = 0x80 | opcode
    mbit = 0x80 if mask else 0
    n = len(payload)
    if n < 126:
        hdr = bytes([b0, mbit | n])
    elif n < 65536:
        hdr = bytes([b0, mbit | 126]) + struct.pack("!H", n)
    else:
        hdr = bytes([b0, mbit | 127]) + struct.pack("!Q", n)
    if mask:
        key = os.urandom(4)
        return hdr + key + xor_mask(payload, key)
    return hdr + payload


class Frames:
    """Reads WebSocket frames from a socket (bytes already read go first)."""

    def __init__(self, sock, buf=b""):
        self.s = sock
        self.buf = bytearray(buf)

    def _need(self, n):
        while len(self.buf) < n:
            d = self.s.recv(65536)
            if not d:
                raise EOFError("connection closed")
            self.buf += d

    def _take(self, n):
        self._need(n)
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def read(self):
        b0, b1 = self._take(2)
        n = b1 & 0x7f
        if n == 126:
            n = struct.unpack("!H", self._take(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", self._take(8))[0]
        key = self._take(4) if b1 & 0x80 else None
        payload = self._take(n)
        if key:
            payload = xor_mask(payload, key)
        return b0 & 0x0f, payload


class WsBackend(SocketServer):
    """The backend. Every connection serves requests until it closes:
       /ws..., /live/...  a WebSocket echo server (426 without an upgrade
                          request); on the client's EOF it sends "bye" and
                          closes; a close frame is answered and closes
       /refuse200         200, keep-alive: the upgrade is ignored
       /refuse400         400
       /always101         101 websocket whatever was asked, then echo
       /wrongproto        101 naming another protocol (h2c)
       else               200 "plain"
    It records every request head it saw (self.heads) and how many requests
    each connection carried (self.per_conn)."""

    def __init__(self):
        super().__init__()
        self.heads = []
        self.per_conn = []
        self.lock = threading.Lock()
        self.serve_forever()

    def _serve(self, s):
        with self.lock:
            idx = len(self.per_conn)
            self.per_conn.append(0)
        buf = b""
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    d = s.recv(65536)
                    if not d:
                        return
                    buf += d
                head, buf = buf.split(b"\r\n\r\n", 1)
                lines = head.decode("latin-1").split("\r\n")
                method, path = lines[0].split(" ")[:2]
                hdrs = {}
                for l in lines[1:]:
                    k, v = l.split(":", 1)
                    hdrs[k.strip().lower()] = v.strip()
                with self.lock:
                    self.heads.append((path, hdrs))
                    self.per_conn[idx] += 1
                n = int(hdrs.get("content-length", "0"))
                while len(buf) < n:
                    buf += s.recv(65536)
                buf = buf[n:]
                wants = ("websocket" in hdrs.get("upgrade", "").lower() and
                         "upgrade" in hdrs.get("connection", "").lower() and
                         "sec-websocket-key" in hdrs)
                if path.startswith("/ws") or path.startswith("/live/"):
                    if not wants:
                        body = b"upgrade required"
                        s.sendall(b"HTTP/1.1 426 Upgrade Required\r\nUpgrade: websocket\r\n"
                                  b"Connection: Upgrade\r\nContent-Length: %d\r\n\r\n%s"
                                  % (len(body), body))
                        continue
                    self._switch(s, hdrs, b"websocket")
                    self._echo(s, buf)
                    return
                if path.startswith("/always101"):
                    self._switch(s, hdrs, b"websocket")
                    self._echo(s, buf)
                    return
                if path.startswith("/wrongproto"):
                    self._switch(s, hdrs, b"h2c")
                    self._echo(s, buf)
                    return
                if path.startswith("/refuse400"):
                    body = b"bad handshake"
                    s.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: %d\r\n\r\n%s"
                              % (len(body), body))
                    continue
                body = b"no websocket here" if path.startswith("/refuse200") else b"plain"
                s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        except OSError:
            pass
        finally:
            s.close()

    def _switch(self, s, hdrs, proto):
        key = hdrs.get("sec-websocket-key", "x").encode()
        s.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: " + proto +
                  b"\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + accept_key(key) +
                  b"\r\n\r\n")

    def _echo(self, s, buf):
        fr = Frames(s, buf)
        try:
            while True:
                op, payload = fr.read()
                if op == 8:  # close: answer it, then close
                    s.sendall(frame(payload, 8, mask=False))
                    return
                if op == 9:
                    s.sendall(frame(payload, 10, mask=False))
                    continue
                s.sendall(frame(payload, op, mask=False))
        except EOFError:  # the client half-closed: a last word, then close
            try:
                s.sendall(frame(b"bye", 1, mask=False))
            except OSError:
                pass
        except OSError:
            pass


B = None


def setup():
    global B
    B = WsBackend()


def start(room="mode = off", server="", backend=""):
    return Einlass(write_conf(conf_text(B.port, room=room, server=server, backend=backend,
                                        extra=ROUTES)))


def handshake_bytes(path, extra=(), cookies=None, version="1.1", key=None):
    key = key or base64.b64encode(os.urandom(16))
    lines = ["GET %s HTTP/%s" % (path, version), "Host: test", "Upgrade: websocket",
             "Connection: Upgrade", "Sec-WebSocket-Key: " + key.decode(),
             "Sec-WebSocket-Version: 13"]
    lines += ["%s: %s" % h for h in extra]
    if cookies:
        lines.append("Cookie: " + "; ".join("%s=%s" % kv for kv in cookies.items()))
    return ("\r\n".join(lines) + "\r\n\r\n").encode(), key


def upgrade(port, path="/ws", cookies=None, early=b""):
    """Handshake on a fresh connection: (client, response, Frames). early: bytes
    sent right behind the request, before the 101 came."""
    c = Client(port, timeout=30)
    data, key = handshake_bytes(path, cookies=cookies)
    c.send(data + early)
    r = c.read_response()
    if r.status == 101:
        assert r.header("Sec-WebSocket-Accept") == accept_key(key).decode(), r.raw_head
        assert r.header("Upgrade", "").lower() == "websocket", r.raw_head
        assert "upgrade" in r.header("Connection", "").lower(), r.raw_head
    return c, r, Frames(c.s, bytes(c.buf))


def metric(e, name):
    import urllib.request
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % e.admin_port, timeout=5) as r:
        text = r.read().decode()
    m = re.search(r"^%s (\S+)$" % re.escape(name), text, re.M)
    return float(m.group(1)) if m else None


def test_websocket_upgrade_is_not_turned_into_200():
    """Issue 13: the handshake reached the backend without Upgrade, so the
    portal's live updates never switched protocols."""
    e = start()
    try:
        c, r, fr = upgrade(e.port)
        assert r.status == 101, (r.status, r.body)
        path, hdrs = B.heads[-1]
        assert hdrs.get("upgrade", "").lower() == "websocket", hdrs
        assert hdrs.get("connection", "").lower() == "upgrade", hdrs
        assert "sec-websocket-key" in hdrs and "x-forwarded-for" in hdrs, hdrs
        c.send(frame(b"hello"))
        assert fr.read() == (1, b"hello")
        c.close()
    finally:
        e.stop()


def test_mode_off_echo_and_tunnel_metrics():
    e = start()
    try:
        total0 = metric(e, "einlass_tunnels_total")
        assert total0 == 0 and metric(e, "einlass_tunnels") == 0, total0
        # a frame sent right behind the handshake, before the 101, goes through too
        c, r, fr = upgrade(e.port, early=frame(b"early bird"))
        assert r.status == 101, (r.status, r.body)
        assert fr.read() == (1, b"early bird")
        for i in range(20):
            msg = ("message %d " % i).encode() * (i * 50 + 1)
            c.send(frame(msg, opcode=2 if i % 2 else 1))
            assert fr.read() == (2 if i % 2 else 1, msg)
        wait_until(lambda: metric(e, "einlass_tunnels") == 1, what="einlass_tunnels 1")
        assert metric(e, "einlass_tunnels_total") == 1
        # a close handshake: the backend answers and closes, einlass passes the EOF on
        # and ends the tunnel once the client closes too (RFC 6455 7.1.1)
        c.send(frame(struct.pack("!H", 1000), opcode=8))
        assert fr.read() == (8, struct.pack("!H", 1000))
        assert c.closed(timeout=10)
        c.close()
        wait_until(lambda: metric(e, "einlass_tunnels") == 0, what="einlass_tunnels 0")
        assert metric(e, "einlass_tunnels_total") == 1
        assert e.stop() == 0  # a clean exit (sanitizer builds: no leak)
    finally:
        e.stop()


def test_half_close_reaches_the_backend_and_the_answer_still_comes():
    e = start()
    try:
        c, r, fr = upgrade(e.port)
        assert r.status == 101
        c.send(frame(b"last"))
        assert fr.read() == (1, b"last")
        c.s.shutdown(socket.SHUT_WR)  # the backend sees EOF and says bye
        assert fr.read() == (1, b"bye")
        assert c.closed(timeout=10)
        wait_until(lambda: metric(e, "einlass_tunnels") == 0, what="einlass_tunnels 0")
    finally:
        e.stop()


def test_queueing_without_pass_waits_with_pass_upgrades():
    e = start(room="mode = auto\nstore = memory\nadapt = off\nadmit_per_s = 0.01\n"
                   "min_admit_per_s = 0.01\npoll_s = 1")
    try:
        # a pass while the room is open
        c = Client(e.port)
        r = c.request("GET", "/page")
        assert r.status == 200 and "einlass_pass" in c.cookies, r.headers
        holder = {"einlass_pass": c.cookies["einlass_pass"]}
        c.close()
        assert e.admin("POST", "/mode", "on")[0] == 204
        n = len(B.heads)
        c, r, fr = upgrade(e.port)  # no pass: the waiting answer, no upgrade
        assert r.status == 503, (r.status, r.body)
        assert r.header("Upgrade") is None and "einlass_ticket" in c.cookies, r.headers
        c.close()
        assert len(B.heads) == n  # the backend never saw it
        c, r, fr = upgrade(e.port, cookies=holder)
        assert r.status == 101, (r.status, r.body)
        c.send(frame(b"admitted"))
        assert fr.read() == (1, b"admitted")
        c.close()
    finally:
        e.stop()


def test_bypass_route_upgrades_while_queueing():
    e = start(room="mode = on\nstore = memory\nadapt = off\nadmit_per_s = 0.01\n"
                   "min_admit_per_s = 0.01")
    try:
        c, r, fr = upgrade(e.port, path="/live/slots")
        assert r.status == 101, (r.status, r.body)
        c.send(frame(b"slot 7 free?"))
        assert fr.read() == (1, b"slot 7 free?")
        c.close()
        c, r, fr = upgrade(e.port, path="/ws")  # not on the route: waits
        assert r.status == 503, r.status
        c.close()
    finally:
        e.stop()


def test_idle_tunnel_closed_after_idle_timeout_with_log_line():
    e = start(server="idle_timeout_ms = 2000")
    try:
        c, r, fr = upgrade(e.port)
        assert r.status == 101
        # bytes either way keep it open well past idle_timeout_ms
        t_end = time.time() + 3.5
        while time.time() < t_end:
            c.send(frame(b"ping"))
            assert fr.read() == (1, b"ping")
            time.sleep(0.2)
        n = len(e.proc.lines)
        t0 = time.time()
        assert c.closed(timeout=30), "the idle tunnel stayed open"
        assert time.time() - t0 >= 1.0  # not before idle_timeout_ms (with slack)
        e.proc.wait_line(r"timeout: 127\.0\.0\.1: websocket tunnel idle \(idle_timeout_ms\)",
                         start=n)
        wait_until(lambda: metric(e, "einlass_tunnels") == 0, what="einlass_tunnels 0")
    finally:
        e.stop()


def test_five_megabytes_each_way_with_a_slow_reader():
    e = start()
    try:
        c, r, fr = upgrade(e.port)
        assert r.status == 101
        chunk, count = 64 * 1024, 80  # 5 MiB
        sent = hashlib.sha256()
        pieces = [os.urandom(chunk) for _ in range(count)]
        for p in pieces:
            sent.update(p)
        err = []

        def writer():
            try:
                for p in pieces:
                    c.send(frame(p, opcode=2))
            except OSError as ex:
                err.append(ex)

        t = threading.Thread(target=writer, daemon=True)
        t.start()
        got = hashlib.sha256()
        n = 0
        c.s.settimeout(60)
        while n < chunk * count:
            time.sleep(0.01)  # a slow reader: the backend's echo has to wait
            op, payload = fr.read()
            assert op == 2
            got.update(payload)
            n += len(payload)
        t.join(60)
        assert not err and not t.is_alive(), err
        assert n == chunk * count and got.digest() == sent.digest()
        c.send(frame(b"", opcode=8))
        assert fr.read()[0] == 8
        c.close()
    finally:
        e.stop()


def test_refused_upgrade_is_a_normal_response_and_the_connection_goes_on():
    e = start()
    try:
        for path, status in (("/refuse200", 200), ("/refuse400", 400)):
            c = Client(e.port)
            data, _ = handshake_bytes(path)
            c.send(data)
            r = c.read_response()
            assert r.status == status, (path, r.status)
            assert r.header("Upgrade") is None, r.headers
            if status == 200:
                assert r.body == b"no websocket here"
                r = c.request("GET", "/plain")  # the same client connection serves on
                assert r.status == 200 and r.body == b"plain", r.status
                assert B.per_conn[-1] >= 2, B.per_conn  # and the backend connection too
            c.close()
    finally:
        e.stop()


def test_upgrade_not_forwarded_for_a_body_a_post_or_http10():
    e = start()
    try:
        for data in (
                handshake_bytes("/ws", extra=(("Content-Length", "5"),))[0] + b"hello",
                handshake_bytes("/ws", version="1.0")[0],
                handshake_bytes("/ws")[0].replace(b"GET ", b"POST ", 1)):
            c = Client(e.port)
            c.send(data)
            r = c.read_response()
            assert r.status == 426, (data, r.status)  # the backend saw no upgrade
            assert r.header("Upgrade") is None, r.headers
            path, hdrs = B.heads[-1]
            assert "upgrade" not in hdrs and "connection" not in hdrs, hdrs
            c.close()
        # a protocol other than websocket (h2c smuggling) is not forwarded either
        c = Client(e.port)
        data, _ = handshake_bytes("/ws")
        c.send(data.replace(b"Upgrade: websocket", b"Upgrade: h2c"))
        r = c.read_response()
        assert r.status == 426, r.status
        assert "upgrade" not in B.heads[-1][1], B.heads[-1]
        c.close()
    finally:
        e.stop()


def test_unrequested_or_other_protocol_101_is_502():
    e = start()
    try:
        c = Client(e.port)
        r = c.request("GET", "/always101")  # a plain GET: nobody asked to switch
        assert r.status == 502, r.status
        c.close()
        c, r, fr = upgrade(e.port, path="/wrongproto")  # asked websocket, got h2c
        assert r.status == 502, r.status
        c.close()
        assert metric(e, "einlass_tunnels_total") == 0
    finally:
        e.stop()


def test_tunnel_gives_its_backend_slot_back():
    """A WebSocket held open is no backend load: with max_concurrency = 1 an
    open tunnel does not make the next request wait for the slot."""
    e = start(backend="max_concurrency = 1\nqueue_timeout_ms = 20000")
    try:
        c, r, fr = upgrade(e.port)
        assert r.status == 101
        c2 = Client(e.port)
        t0 = time.time()
        r = c2.request("GET", "/plain")
        assert r.status == 200 and r.body == b"plain", r.status
        assert time.time() - t0 < 15  # not the queue_timeout_ms wait (20 s)
        c2.close()
        assert e.status()["backend_inflight"] == 0, e.status()
        c.send(frame(b"still here"))
        assert fr.read() == (1, b"still here")
        c.close()
    finally:
        e.stop()


def test_stop_closes_open_tunnels_at_once():
    e = start(server="drain_timeout_ms = 60000")
    try:
        c, r, fr = upgrade(e.port)
        assert r.status == 101
        t0 = time.time()
        assert e.stop(timeout=30) == 0
        assert time.time() - t0 < 30  # not the 60 s drain timeout
        assert c.closed(timeout=10)
        c.close()
    finally:
        e.stop()


if __name__ == "__main__":
    setup()
    run([test_websocket_upgrade_is_not_turned_into_200,
         test_mode_off_echo_and_tunnel_metrics,
         test_half_close_reaches_the_backend_and_the_answer_still_comes,
         test_queueing_without_pass_waits_with_pass_upgrades,
         test_bypass_route_upgrades_while_queueing,
         test_idle_tunnel_closed_after_idle_timeout_with_log_line,
         test_five_megabytes_each_way_with_a_slow_reader,
         test_refused_upgrade_is_a_normal_response_and_the_connection_goes_on,
         test_upgrade_not_forwarded_for_a_body_a_post_or_http10,
         test_unrequested_or_other_protocol_101_is_502,
         test_tunnel_gives_its_backend_slot_back,
         test_stop_closes_open_tunnels_at_once])
