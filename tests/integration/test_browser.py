#!/usr/bin/env python3
"""The waiting page in a real browser: Debian's chromium, headless, no
sandbox, an empty profile, driven over the Chrome DevTools Protocol by a
minimal WebSocket client (Python standard library only).

Checks that the page shows the visitor's place, updates it without a reload
(its script polls /_einlass/status: a mark set on the window survives while
the place counts down) and lands on the portal's content once admitted; and
that the German page serves for Accept-Language: de. Screenshots at a phone
size (390 x 844) are saved as test artifacts (waiting-room.png,
warteraum.png; docs/ holds copies).

chromium is installed by tests/install-deps.sh test; without it this test
fails, it does not skip."""
import base64
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time

from einlass_test import (BIN, SRC, Client, Einlass, Poller, conf_text, run, start_backend, wait_until,
                          write_conf)

PHONE = {"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": True}


def artifact_dir():
    """Beside the binary under test (the build dir), else tests/artifacts."""
    d = os.path.dirname(os.path.abspath(BIN))
    d = os.path.join(d, "test-artifacts") if os.path.isdir(d) else \
        os.path.join(SRC, "tests", "artifacts")
    os.makedirs(d, exist_ok=True)
    return d


# ---- a minimal WebSocket client (RFC 6455): upgrade, masked frames ----

class WebSocket:
    def __init__(self, url, timeout=30):
        assert url.startswith("ws://"), url
        hostport, _, path = url[5:].partition("/")
        host, _, port = hostport.partition(":")
        self.s = socket.create_connection((host, int(port)), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self.s.sendall(("GET /%s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n"
                        "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                        "Sec-WebSocket-Version: 13\r\n\r\n" % (path, hostport, key)).encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 101"), head

    def _fill(self):
        d = self.s.recv(1 << 20)
        if not d:
            raise EOFError("websocket closed")
        self.buf += d

    def _take(self, n):
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _send_frame(self, opcode, payload):
        head = bytes([0x80 | opcode])
        n = len(payload)
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 1 << 16:
            head += bytes([0x80 | 126]) + struct.pack("!H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack("!Q", n)
        mask = os.urandom(4)
        body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.s.sendall(head + mask + body)

    def send(self, text):
        self._send_frame(0x1, text.encode())

    def recv(self):
        """The next text message (pings are answered, fragments joined)."""
        msg = b""
        while True:
            b0, b1 = self._take(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack("!H", self._take(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", self._take(8))[0]
            mask = self._take(4) if b1 & 0x80 else None
            payload = self._take(n)
            if mask:
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            opcode = b0 & 0x0F
            if opcode == 0x9:
                self._send_frame(0xA, payload)
                continue
            if opcode == 0x8:
                raise EOFError("websocket closed by peer")
            if opcode in (0x0, 0x1, 0x2):
                msg += payload
                if b0 & 0x80:
                    return msg.decode()

    def close(self):
        try:
            self._send_frame(0x8, b"")
        except OSError:
            pass
        self.s.close()


# ---- chromium over the DevTools Protocol ----

def chromium_path():
    path = os.environ.get("EL_CHROMIUM") or shutil.which("chromium") or \
        shutil.which("chromium-browser")
    assert path, "chromium is not installed (tests/install-deps.sh test installs it)"
    return path


class Browser:
    """A headless chromium with an empty profile and one page target."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="el-chromium-")
        self.log = open(os.path.join(self.dir, "chromium.log"), "wb")
        argv = [chromium_path(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                "--remote-debugging-port=0", "--user-data-dir=" + self.dir, "about:blank"]
        self.p = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT,
                                  start_new_session=True)
        self.ws = None
        try:
            port_file = os.path.join(self.dir, "DevToolsActivePort")
            wait_until(lambda: self.p.poll() is not None or os.path.exists(port_file) and
                       len(open(port_file).read().split("\n")) >= 2, timeout=60,
                       what="chromium's DevToolsActivePort")
            assert self.p.poll() is None, "chromium exited:\n" + self.log_tail()
            port = int(open(port_file).read().split("\n")[0])
            self.port = port
            page = wait_until(lambda: next((t for t in self.targets() if t["type"] == "page"),
                                           None), timeout=30, what="a page target")
            self.ws = WebSocket("ws://127.0.0.1:%d/devtools/page/%s" % (port, page["id"]))
            self.next_id = 0
            self.events = []
        except Exception:
            self.close()
            raise

    def targets(self):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        s.sendall(b"GET /json/list HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        data = b""
        while True:  # the DevTools server keeps the connection: read by length
            if b"\r\n\r\n" in data:
                head, body = data.split(b"\r\n\r\n", 1)
                n = [int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                     if line.lower().startswith(b"content-length:")]
                if n and len(body) >= n[0]:
                    break
            d = s.recv(65536)
            if not d:
                break
            data += d
        s.close()
        return json.loads(data.split(b"\r\n\r\n", 1)[1])

    def log_tail(self):
        self.log.flush()
        with open(os.path.join(self.dir, "chromium.log"), "rb") as f:
            return f.read()[-3000:].decode("utf-8", "replace")

    def call(self, method, **params):
        self.next_id += 1
        my = self.next_id
        self.ws.send(json.dumps({"id": my, "method": method, "params": params}))
        while True:
            m = json.loads(self.ws.recv())
            if m.get("id") == my:
                assert "error" not in m, (method, m["error"])
                return m.get("result", {})
            if "method" in m:
                self.events.append(m)

    def eval(self, expr):
        """The expression's value; None if it threw (e.g. mid-navigation)."""
        r = self.call("Runtime.evaluate", expression=expr, returnByValue=True)
        if "exceptionDetails" in r:
            return None
        return r["result"].get("value")

    def screenshot(self, name):
        data = base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"])
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        path = os.path.join(artifact_dir(), name)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def close(self):
        if self.ws:
            self.ws.close()
        if self.p.poll() is None:
            os.killpg(self.p.pid, signal.SIGTERM)
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.p.pid, signal.SIGKILL)
                self.p.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def ahead_of(port):
    """A client that joins before the browser and keeps its ticket live:
    (its place when it joined, the poller holding its ticket)."""
    c = Client(port)
    r = c.request("GET", "/", [("Accept", "application/json")])
    c.close()
    assert r.status == 503 and "einlass_ticket" in c.cookies, (r.status, r.headers)
    return r.json()["position"], Poller(port, c.cookies)


def room(backend, rate):
    room_keys = ("mode = on\nstore = memory\nadapt = off\npoll_s = 1\n"
                 "min_admit_per_s = 0.01\nadmit_per_s = %s\n" % rate)
    return Einlass(write_conf(conf_text(backend.port, room=room_keys)))


PAGE_STATE = """JSON.stringify({
  mark: window.__elMark || null,
  place: document.getElementById("place") ? document.getElementById("place").textContent : null,
  lang: document.documentElement.lang,
  heading: document.querySelector("h1") ? document.querySelector("h1").textContent : null,
  body: document.body ? document.body.innerText : ""
})"""


def page_state(br):
    """What the page shows; {} while a navigation replaces the document."""
    v = br.eval(PAGE_STATE)
    return json.loads(v) if v else {}


def load(br, url):
    br.call("Page.navigate", url=url)
    return wait_until(lambda: (lambda s: s if s.get("place") or "portal" in s.get("body", "")
                               else None)(
        page_state(br)) if br.eval("document.readyState") == "complete" else None,
        timeout=30, what="the page at " + url)


def test_waiting_page_counts_down_without_reload_then_admits():
    b = start_backend()
    e = room(b, "0.5")
    ahead = []
    br = None
    try:
        br = Browser()  # started first: the aheads wait only as long as needed
        places, ahead = zip(*[ahead_of(e.port) for _ in range(3)])
        assert places == (1, 2, 3), places
        br.call("Page.enable")
        br.call("Runtime.enable")
        br.call("Emulation.setDeviceMetricsOverride", **PHONE)
        st = load(br, "http://127.0.0.1:%d/" % e.port)
        assert st["lang"] == "en" and st["heading"] == "You are in line", st
        assert "Your place in line" in st["body"], st
        first = int(st["place"])
        assert 1 <= first <= 4, st  # three ahead, fewer once the meter has let some in
        br.eval("window.__elMark = 'no reload'; 1")
        br.screenshot("waiting-room.png")

        # the script updates the place in the same document while it waits
        seen = [first]

        def step():
            s = page_state(br)
            if s.get("mark") == "no reload" and s.get("place") is not None:
                p = int(s["place"])
                assert p <= seen[-1], (seen, s)  # never moves back
                if p != seen[-1]:
                    seen.append(p)
                return None
            return s  # reloaded: the script saw "admitted"
        final = wait_until(step, timeout=60, interval=0.2, what="admission")
        assert len(seen) >= 2, seen  # the place changed in the same document
        print("  places shown without a reload: %s" % seen, flush=True)
        # the one reload lands on the portal's content, with a pass
        final = wait_until(lambda: (lambda s: s if "portal content" in s.get("body", "")
                                    else None)(
            page_state(br)), timeout=20, what="portal content")
        assert final["mark"] is None and final["place"] is None, final
        cookies = br.call("Network.getCookies", urls=["http://127.0.0.1:%d/" % e.port])
        names = {c["name"] for c in cookies["cookies"]}
        assert "einlass_pass" in names, names
        assert all((a.state or {}).get("state") == "admitted" for a in ahead), [a.state for a in ahead]
    finally:
        if br:
            br.close()
        for a in ahead:
            a.stop()
        assert e.stop() == 0
        b.stop()


def test_german_page():
    b = start_backend()
    e = room(b, "0.01")  # nobody gets in during this test
    br = ahead = None
    try:
        br = Browser()
        ahead = ahead_of(e.port)[1]  # one ahead: the browser is second
        br.call("Page.enable")
        br.call("Network.enable")
        br.call("Network.setExtraHTTPHeaders", headers={"Accept-Language": "de-DE,de;q=0.9"})
        br.call("Emulation.setDeviceMetricsOverride", **PHONE)
        st = load(br, "http://127.0.0.1:%d/" % e.port)
        assert st["lang"] == "de" and st["heading"] == "Sie sind in der Warteschlange", st
        assert "Ihr Platz in der Warteschlange" in st["body"] and st["place"] == "2", st
        br.screenshot("warteraum.png")
    finally:
        if br:
            br.close()
        if ahead:
            ahead.stop()
        assert e.stop() == 0
        b.stop()


if __name__ == "__main__":
    run([test_waiting_page_counts_down_without_reload_then_admits, test_german_page])
