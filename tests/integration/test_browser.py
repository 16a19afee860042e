#!/usr/bin/env python3
"""The waiting page in a real browser: Debian's chromium, headless, no
sandbox, an empty profile, driven over the Chrome DevTools Protocol by a
minimal WebSocket client (Python standard library only).

Checks that the page shows the visitor's place, updates it without a reload
(its script polls /_einlass/status: a mark set on the window survives while
the place counts down) and lands on the portal's content once admitted; that
the German page serves for Accept-Language: de; that the page polls at once
when a hidden tab is looked at again or comes back from the back-forward
cache, and that a turn which comes while the tab is hidden is said in the
tab's title and lands on the portal when the patient looks; that every
language fits 320 px at 200 % zoom (160 CSS px) without horizontal
scrolling, Arabic right to left; that the language switch works; and that
all text meets WCAG 2.1 AA contrast (4.5:1) in light and dark mode.
Screenshots at a phone size (390 x 844) are saved as test artifacts
(waiting-room.png, warteraum.png, waiting-room-LANG.png; docs/ holds
copies).

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


TOKEN = "browser-admin"
LANGS = ("de", "en", "tr", "ar", "ru", "uk", "pl")


def room(backend, rate, poll_s=1):
    room_keys = ("mode = on\nstore = memory\nadapt = off\npoll_s = %d\n"
                 "min_admit_per_s = 0.01\nadmit_per_s = %s\n" % (poll_s, rate))
    return Einlass(write_conf(conf_text(backend.port, room=room_keys,
                                        server="admin_token = %s" % TOKEN)))


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


# The tab's visibility, as the page sees it (document.hidden and
# visibilityState), set and announced with a visibilitychange event.
VISIBILITY = """(function (state) {
  if (!window.__elVis) {
    Object.defineProperty(document, "visibilityState", {configurable: true,
      get: function () { return window.__elVis; }});
    Object.defineProperty(document, "hidden", {configurable: true,
      get: function () { return window.__elVis === "hidden"; }});
  }
  window.__elVis = state;
  document.dispatchEvent(new Event("visibilitychange"));
  return 1;
})(%s)"""

COUNT_POLLS = """(function () {
  window.__elPolls = 0;
  var f = window.fetch;
  window.fetch = function () { window.__elPolls++; return f.apply(this, arguments); };
  return 1;
})()"""


def set_visibility(br, state):
    assert br.eval(VISIBILITY % json.dumps(state)) == 1


def started(br, e, lang_header=None, path="/"):
    br.call("Page.enable")
    br.call("Network.enable")
    if lang_header:
        br.call("Network.setExtraHTTPHeaders", headers={"Accept-Language": lang_header})
    br.call("Emulation.setDeviceMetricsOverride", **PHONE)
    return load(br, "http://127.0.0.1:%d%s" % (e.port, path))


def test_hidden_tab_polls_when_looked_at_again_and_after_back_forward_cache():
    b = start_backend()
    e = room(b, "0.01", poll_s=60)  # the page's own timer stays out of this test
    br = ahead = None
    try:
        br = Browser()
        ahead = ahead_of(e.port)[1]
        st = started(br, e)
        assert st["place"] == "2", st
        assert br.eval(COUNT_POLLS) == 1
        set_visibility(br, "hidden")
        br.eval('document.getElementById("place").textContent = "999"; 1')
        time.sleep(1.0)  # a hidden tab does not poll on its own account
        assert br.eval("window.__elPolls") == 0
        # looked at again: it asks at once and shows the place as it is now
        set_visibility(br, "visible")
        wait_until(lambda: page_state(br).get("place") == "2", timeout=20,
                   what="the place shown at once on return")
        assert br.eval("window.__elPolls") == 1
        # restored from the back-forward cache: the same
        br.eval('document.getElementById("place").textContent = "999"; '
                'window.dispatchEvent(new PageTransitionEvent("pageshow", {persisted: true})); 1')
        wait_until(lambda: page_state(br).get("place") == "2", timeout=20,
                   what="the place shown at once after pageshow")
        assert br.eval("window.__elPolls") == 2
    finally:
        if br:
            br.close()
        if ahead:
            ahead.stop()
        assert e.stop() == 0
        b.stop()


def test_turn_while_hidden_says_so_in_the_title_then_lands_on_portal_when_looked_at():
    b = start_backend()
    e = room(b, "0.01")
    br = ahead = None
    try:
        br = Browser()
        ahead = ahead_of(e.port)[1]
        st = started(br, e)
        assert st["place"] == "2", st
        assert br.eval("document.title") == "Waiting room"
        br.eval("window.__elMark = 'no reload'; 1")
        set_visibility(br, "hidden")
        assert e.admin("POST", "/rate", "50", token=TOKEN)[0] == 204
        title = wait_until(lambda: (lambda t: t if t and t.startswith("It is your turn!")
                                    else None)(br.eval("document.title")),
                           timeout=30, what="the turn in the tab's title")
        assert title == "It is your turn! \u2013 Waiting room", title
        st = page_state(br)
        assert st["mark"] == "no reload" and "It is your turn" in st["body"], st
        time.sleep(1.5)  # while hidden it stays (no reload behind the patient's back)
        assert page_state(br).get("mark") == "no reload"
        set_visibility(br, "visible")
        final = wait_until(lambda: (lambda s: s if "portal content" in s.get("body", "")
                                    else None)(page_state(br)), timeout=20, what="portal content")
        assert final["mark"] is None, final
    finally:
        if br:
            br.close()
        if ahead:
            ahead.stop()
        assert e.stop() == 0
        b.stop()


# WCAG 2.1 contrast of every visible text against its effective background.
CONTRAST = """(function () {
  function rgb(s) { var m = s.match(/[\\d.]+/g); return m ? m.map(Number) : null; }
  function lum(c) {
    var a = c.slice(0, 3).map(function (v) {
      v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); });
    return 0.2126 * a[0] + 0.7152 * a[1] + 0.0722 * a[2];
  }
  function bg(el) {
    for (; el; el = el.parentElement) {
      var c = rgb(getComputedStyle(el).backgroundColor);
      if (c && (c.length < 4 || c[3] > 0)) return c;
    }
    return null;
  }
  var worst = 99, what = "", n = 0;
  document.querySelectorAll("body *").forEach(function (el) {
    var text = false;
    el.childNodes.forEach(function (c) { if (c.nodeType === 3 && c.textContent.trim()) text = true; });
    if (!text || el.closest(".sr") || el.closest("[hidden]") || el.closest("noscript")) return;
    var cs = getComputedStyle(el);
    if (cs.display === "none" || cs.visibility === "hidden") return;
    var f = lum(rgb(cs.color)), b = lum(bg(el) || [255, 255, 255]);
    var r = (Math.max(f, b) + 0.05) / (Math.min(f, b) + 0.05);
    n++;
    if (r < worst) { worst = r; what = el.tagName + "." + el.className + ": " + cs.color; }
  });
  return JSON.stringify({worst: worst, what: what, n: n});
})()"""

NO_HSCROLL = """JSON.stringify({w: document.documentElement.scrollWidth, iw: window.innerWidth,
  dir: document.documentElement.dir, lang: document.documentElement.lang})"""

NARROW = {"width": 160, "height": 400, "deviceScaleFactor": 2, "mobile": True}  # 320 px at 200 %


def test_every_language_rtl_arabic_fits_320px_at_200_percent_and_meets_contrast():
    b = start_backend()
    e = room(b, "0.01")
    br = ahead = None
    try:
        br = Browser()
        ahead = ahead_of(e.port)[1]
        url = "http://127.0.0.1:%d/book?x=1" % e.port
        st = started(br, e, "ar-SY,ar;q=0.9", "/book?x=1")
        assert st["lang"] == "ar" and br.eval("document.documentElement.dir") == "rtl", st
        assert st["place"] == "\u0662", st  # Arabic-Indic two
        for scheme in ("light", "dark"):
            br.call("Emulation.setEmulatedMedia",
                    features=[{"name": "prefers-color-scheme", "value": scheme}])
            c = json.loads(br.eval(CONTRAST))
            assert c["n"] >= 8 and c["worst"] >= 4.5, (scheme, c)
            print("  contrast %s: lowest %.2f:1 (%s)" % (scheme, c["worst"], c["what"]), flush=True)
        br.call("Emulation.setEmulatedMedia", features=[])
        for lang in LANGS:
            br.call("Network.setCookie", name="einlass_lang", value=lang, url=url)
            br.call("Emulation.setDeviceMetricsOverride", **PHONE)
            st = load(br, url)
            assert st["lang"] == lang and st["place"], st
            br.screenshot("waiting-room-%s.png" % lang)
            br.call("Emulation.setDeviceMetricsOverride", **NARROW)
            br.call("Page.reload")
            wait_until(lambda: br.eval("document.readyState") == "complete" and
                       br.eval("window.innerWidth") == 160, timeout=30, what="the narrow page")
            m = json.loads(br.eval(NO_HSCROLL))
            assert m["lang"] == lang and m["dir"] == ("rtl" if lang == "ar" else "ltr"), m
            assert m["w"] <= m["iw"], (lang, m)  # no horizontal scrolling
        # the switch: a plain link, back to the same address, remembered
        br.call("Emulation.setDeviceMetricsOverride", **PHONE)
        br.call("Network.setCookie", name="einlass_lang", value="de", url=url)
        load(br, url)
        br.eval('document.querySelector("a[hreflang=tr]").click(); 1')
        st = wait_until(lambda: (lambda s: s if s.get("lang") == "tr" and s.get("place")
                                 else None)(page_state(br)), timeout=30, what="the Turkish page")
        assert br.eval("location.pathname + location.search") == "/book?x=1"
        cookies = br.call("Network.getCookies", urls=[url])["cookies"]
        assert {c["name"]: c["value"] for c in cookies}.get("einlass_lang") == "tr", cookies
    finally:
        if br:
            br.close()
        if ahead:
            ahead.stop()
        assert e.stop() == 0
        b.stop()


if __name__ == "__main__":
    run([test_waiting_page_counts_down_without_reload_then_admits, test_german_page,
         test_hidden_tab_polls_when_looked_at_again_and_after_back_forward_cache,
         test_turn_while_hidden_says_so_in_the_title_then_lands_on_portal_when_looked_at,
         test_every_language_rtl_arabic_fits_320px_at_200_percent_and_meets_contrast])
