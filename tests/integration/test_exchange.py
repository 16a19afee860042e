#!/usr/bin/env python3
"""The client/backend exchange: a backend connection goes back to the
keep-alive pool only when both directions are complete, so no request of one
client can be read by the backend as the end of another one's body.

The backend here runs in this process and logs every request it parses
(method, path, X-Client, framing, body). Paths are unique per request, so
each parsed request is compared byte for byte with the one its client sent.
"/early..." is answered as soon as its head is read, before the body (as
nginx's `return` or an early 401/413 does); the body is read afterwards, as
nginx discards it. Everything else is answered after its body."""
import hashlib
import random
import threading
import time

from einlass_test import Client, Einlass, SocketServer, run, write_conf

CONF = """[server]
listen = 127.0.0.1:0
workers = 1
admin_listen = 127.0.0.1:0
log_level = info
[backend]
address = 127.0.0.1:%d
response_timeout_ms = 3000
[room]
mode = off
secret = 00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff
"""


class LogBackend(SocketServer):
    """Threaded raw HTTP/1.1 backend that logs what it parses."""

    def __init__(self):
        super().__init__(128)
        self.lock = threading.Lock()
        self.parsed = []    # complete requests: (method, path, client, framing, body)
        self.garbage = []   # what could not be parsed as a request
        self.serve_forever()

    def _bad(self, what):
        with self.lock:
            self.garbage.append(what)

    def _read_body(self, f, headers):
        """(framing, body) or None if the connection ended mid-body; raises
        ValueError on a malformed body."""
        if headers.get("transfer-encoding", "").lower() == "chunked":
            out = bytearray()
            while True:
                line = f.readline(65537)
                if not line:
                    return None
                if not line.endswith(b"\r\n"):
                    raise ValueError("chunk size line %r" % line[:80])
                size = int(line[:-2].split(b";")[0], 16)  # ValueError on garbage
                if size == 0:
                    while True:
                        t = f.readline(65537)
                        if not t:
                            return None
                        if t == b"\r\n":
                            return "chunked", bytes(out)
                data = f.read(size + 2)
                if len(data) < size + 2:
                    return None
                if data[-2:] != b"\r\n":
                    raise ValueError("chunk not ended by CRLF: %r" % data[-40:])
                out += data[:-2]
        n = int(headers.get("content-length", "0"))
        data = f.read(n)
        if len(data) < n:
            return None
        return ("length" if "content-length" in headers else "none"), data

    def _serve(self, s):
        f = s.makefile("rb")
        try:
            while True:
                line = f.readline(65537)
                if not line:
                    return
                parts = line.rstrip(b"\r\n").split(b" ")
                if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
                    self._bad(line + f.read1(4096) if hasattr(f, "read1") else line)
                    s.sendall(b"HTTP/1.1 400 Bad\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    return
                method, path = parts[0].decode("latin-1"), parts[1].decode("latin-1")
                headers = {}
                while True:
                    h = f.readline(65537)
                    if not h:
                        return
                    if h == b"\r\n":
                        break
                    k, _, v = h.decode("latin-1").partition(":")
                    headers[k.strip().lower()] = v.strip()
                early = path.startswith("/early")
                if early:
                    body = b"early " + path.encode()
                    s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
                try:
                    got = self._read_body(f, headers)
                except ValueError as e:
                    self._bad(("malformed body of %s: %s" % (path, e)).encode())
                    s.sendall(b"HTTP/1.1 400 Bad\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    return
                if got is None:
                    return  # closed mid-body: not a parsed request
                framing, data = got
                with self.lock:
                    self.parsed.append((method, path, headers.get("x-client"), framing, data))
                if not early:
                    body = ("ok %s %s" % (path, hashlib.sha256(data).hexdigest()[:16])).encode()
                    s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        except OSError:
            return
        finally:
            s.close()


def head(method, path, client, framing, n):
    h = "%s %s HTTP/1.1\r\nHost: t\r\nX-Client: %s\r\n" % (method, path, client)
    if framing == "length":
        h += "Content-Length: %d\r\n" % n
    elif framing == "chunked":
        h += "Transfer-Encoding: chunked\r\n"
    return (h + "\r\n").encode()


def chunked(body, rnd):
    out, off = bytearray(), 0
    while off < len(body):
        n = min(len(body) - off, rnd.randint(1, 4000))
        out += b"%x\r\n" % n + body[off:off + n] + b"\r\n"
        off += n
    return bytes(out + b"0\r\n\r\n")


def check_backend_log(b, sent):
    """Every request the backend parsed is one some client sent, unchanged."""
    with b.lock:
        assert not b.garbage, "backend read garbage: %r" % b.garbage[:3]
        for method, path, client, framing, body in b.parsed:
            want = sent.get(path)
            assert want is not None, "backend parsed a request nobody sent: %s %s" % (method, path)
            assert (method, client, framing, body) == want, \
                "BODY of %s (%d bytes) differs: %r" % (path, len(body), body[:200])


def early_then_victim(framing):
    b = LogBackend()
    e = Einlass(write_conf(CONF % b.port))
    try:
        body = b"A" * 200
        a = Client(e.port)
        wire = chunked(body, random.Random(1)) if framing == "chunked" else body
        a.send(head("POST", "/early", "attacker", framing, len(body)) + wire[:50])
        r = a.read_response()
        assert r.status == 200 and r.body == b"early /early", (r.status, r.body)
        try:  # the rest of the body, after the answer
            a.send(wire[50:])
        except OSError:
            pass
        assert a.closed(timeout=5), "client connection with an unread body stays open"
        a.close()
        time.sleep(0.2)
        v = Client(e.port)
        v.send(b"GET /account HTTP/1.1\r\nHost: t\r\nX-Client: victim\r\n"
               b"Cookie: einlass_pass=VICTIM\r\n\r\n")
        r = v.read_response()
        assert r.status == 200 and r.body.startswith(b"ok /account "), (r.status, r.body)
        v.close()
        check_backend_log(b, {"/early": ("POST", "attacker", framing, body),
                              "/account": ("GET", "victim", "none", b"")})
    finally:
        rc = e.stop()
        b.close()
    assert rc == 0, "einlass exited %d" % rc


def test_early_answer_does_not_pool_backend_with_body_unsent_content_length():
    early_then_victim("length")


def test_early_answer_does_not_pool_backend_with_body_unsent_chunked():
    early_then_victim("chunked")


def client_run(port, cid, seed, nreq, sent, lock, problems):
    """One client: a random mix of GET / POST (Content-Length or chunked),
    random sizes and split points, some pipelined, some answered early."""
    rnd = random.Random(seed)
    c = None
    i = 0
    while i < nreq:
        if c is None:
            c = Client(port, timeout=15)
        batch = []  # (path, early, wire, split, wait)
        for _ in range(rnd.choice((1, 1, 1, 2, 3))):
            if i >= nreq:
                break
            path = "/%s/%s/%d" % (rnd.choice(("early", "ok", "ok")), cid, i)
            i += 1
            method = rnd.choice(("GET", "POST", "POST"))
            framing = "none" if method == "GET" else rnd.choice(("length", "chunked"))
            n = 0 if framing == "none" else rnd.choice((0, rnd.randint(1, 300), rnd.randint(1, 5000),
                                                        rnd.randint(1, 70000)))
            body = bytes(rnd.randrange(97, 123) for _ in range(n)) if n else b""
            wire = head(method, path, cid, framing, n)
            wire += chunked(body, rnd) if framing == "chunked" else body
            with lock:
                sent[path] = (method, cid, framing, body)
            split = rnd.randint(0, len(wire))
            batch.append((path, path.startswith("/early"), wire, split,
                          len(batch) == 0 and rnd.random() < 0.5))
        closed = False
        answered = [False] * len(batch)
        try:
            for k, (path, early, wire, split, wait) in enumerate(batch):
                c.send(wire[:split])
                if wait and early and split >= wire.index(b"\r\n\r\n") + 4:
                    # the head is out: the answer comes before the rest of the body
                    r = c.read_response()
                    answered[k] = True
                    if r.status != 200 or r.body != b"early " + path.encode():
                        problems.append("%s: got %d %r" % (path, r.status, r.body[:80]))
                time.sleep(rnd.choice((0, 0, 0.002, 0.01)))
                c.send(wire[split:])
        except (OSError, EOFError):
            closed = True
        for k, (path, early, wire, split, wait) in enumerate(batch):
            if answered[k] or closed:
                continue
            try:
                r = c.read_response()
            except (OSError, EOFError):
                closed = True
                continue
            want = (b"early " + path.encode()) if early else ("ok %s " % path).encode()
            if r.status != 200 or not r.body.startswith(want):
                problems.append("%s: got %d %r" % (path, r.status, r.body[:80]))
            if r.header("Connection") == "close":
                closed = True
        if any(answered) and batch and not closed:
            # an early answer before the body was sent: einlass closes
            closed = True
        if closed:
            c.close()
            c = None
    if c:
        c.close()


def test_random_exchanges_never_mix_clients():
    """Several clients, fixed seeds: every request the backend parsed is
    byte-identical to one a client sent, and every client gets the answer to
    its own request (or a clean close)."""
    b = LogBackend()
    e = Einlass(write_conf(CONF % b.port))
    try:
        sent, lock, problems = {}, threading.Lock(), []
        ts = [threading.Thread(target=client_run,
                               args=(e.port, "c%d" % k, 1000 + k, 40, sent, lock, problems))
              for k in range(6)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(120)
        assert not any(t.is_alive() for t in ts), "a client hung"
        assert not problems, "%d wrong answers, first: %s" % (len(problems), problems[:5])
        check_backend_log(b, sent)
        with b.lock:
            assert len(b.parsed) > 100, len(b.parsed)
    finally:
        rc = e.stop()
        b.close()
    assert rc == 0, "einlass exited %d" % rc


if __name__ == "__main__":
    run([test_early_answer_does_not_pool_backend_with_body_unsent_content_length,
         test_early_answer_does_not_pool_backend_with_body_unsent_chunked,
         test_random_exchanges_never_mix_clients])
