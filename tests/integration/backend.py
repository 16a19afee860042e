#!/usr/bin/env python3
"""A test backend for einlass's integration tests: a threaded HTTP/1.1
server on 127.0.0.1 (port 0 unless given) that prints "backend listening on
127.0.0.1:PORT" and answers by path:

  /echo...            JSON of method, path, headers and body (any method)
  /big?mb=N           N MiB of a repeating byte pattern
  /sum                JSON of the request body's length and SHA-256
  /slow?ms=N          waits N ms, then answers
  /chunked            answers with a chunked body
  /close              answers without framing, closing the connection
  /status/N           answers status N (204 and 304 without body)
  /release            answers with "Einlass-Release: 1"
  /latency            answers with Server-Timing: db;dur=<current db ms>
  POST /_set?db_ms=N  sets the db latency reported (and slept) by every answer
  anything else       a small page with Server-Timing db;dur=<db ms>

Every answer carries Server-Timing: db;dur=<db_ms> and sleeps db_ms unless
db_ms is 0 ("/echo" never sleeps).
"""
import json
import socketserver
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

STATE = {"db_ms": 0.0, "timing": True, "requests": 0, "active": 0, "max_active": 0}
LOCK = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def read_body(self):
        te = self.headers.get("Transfer-Encoding")
        if te:
            assert te.lower() == "chunked", te
            out = bytearray()  # appends stay linear for large bodies
            while True:
                line = self.rfile.readline()
                size = int(line.split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(out), "chunked"
                out += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n), ("length" if "Content-Length" in self.headers else "none")

    def send(self, status, body, ctype="text/plain", extra=()):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        for k, v in extra:
            self.send_header(k, v)
        if STATE["timing"]:
            self.send_header("Server-Timing", "db;dur=%.1f" % STATE["db_ms"])
        if status not in (204, 304):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and status not in (204, 304):
            self.wfile.write(body)

    def handle_any(self):
        # active / max_active: requests being handled at once, /_ paths not
        # counted (GET /_stats; /_set?reset_max=1 sets max_active to active)
        if self.path.startswith("/_"):
            return self.handle_one()
        with LOCK:
            STATE["active"] += 1
            STATE["max_active"] = max(STATE["max_active"], STATE["active"])
        self._counted = True
        try:
            self.handle_one()
        finally:
            self._uncount()

    def _uncount(self):
        # A request stops being active when its answer starts: once the
        # answer is on the wire the proxy may finish the exchange and send
        # the next request before this thread runs again, and counting until
        # the write returned would see one more than the proxy let through.
        if getattr(self, "_counted", False):
            self._counted = False
            with LOCK:
                STATE["active"] -= 1

    def send_response(self, *args, **kwargs):
        self._uncount()
        super().send_response(*args, **kwargs)

    def handle_one(self):
        with LOCK:
            STATE["requests"] += 1
        body, framing = self.read_body()
        path = self.path
        if path.startswith("/_set"):
            q = dict(p.split("=", 1) for p in path.split("?", 1)[1].split("&"))
            if "db_ms" in q:
                STATE["db_ms"] = float(q["db_ms"])
            if "timing" in q:
                STATE["timing"] = q["timing"] == "1"
            if "reset_max" in q:
                with LOCK:
                    STATE["max_active"] = STATE["active"]
            return self.send(200, b"ok\n")
        if path.startswith("/_stats"):
            return self.send(200, json.dumps(STATE).encode(), "application/json")
        if path.startswith("/big"):  # /big?mb=N: N MiB of a known pattern
            n = int(path.split("mb=")[1]) << 20
            block = bytes(range(256)) * 4096
            self.send_response(200)
            self.send_header("Content-Length", str(n))
            self.end_headers()
            for off in range(0, n, len(block)):
                self.wfile.write(block[:min(len(block), n - off)])
            return
        if path.startswith("/sum"):  # the body's length and a checksum
            import hashlib
            doc = {"len": len(body), "sha256": hashlib.sha256(body).hexdigest(), "framing": framing}
            return self.send(200, json.dumps(doc).encode(), "application/json")
        if path.startswith("/echo"):
            doc = {"method": self.command, "path": path, "headers": list(self.headers.items()),
                   "body": body.decode("latin-1"), "framing": framing}
            return self.send(200, json.dumps(doc).encode(), "application/json")
        if STATE["db_ms"] > 0:
            time.sleep(STATE["db_ms"] / 1000.0)
        if path.startswith("/slow"):
            ms = int(path.split("ms=")[1])
            time.sleep(ms / 1000.0)
            return self.send(200, b"slow done\n")
        if path.startswith("/chunked"):
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for part in (b"hello ", b"chunked ", b"world\n"):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\n\r\n")
            return
        if path.startswith("/close"):
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(b"until the end\n")
            self.close_connection = True
            return
        if path.startswith("/status/"):
            return self.send(int(path.split("/")[2]), b"status\n")
        if path.startswith("/release"):
            return self.send(200, b"released\n", extra=[("Einlass-Release", "1")])
        return self.send(200, b"<html><body>portal content</body></html>\n", "text/html")

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_OPTIONS = do_PATCH = handle_any


class Server(socketserver.ThreadingMixIn, HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    srv = Server(("127.0.0.1", port), Handler)
    print("backend listening on 127.0.0.1:%d" % srv.server_address[1], flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
