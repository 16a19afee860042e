#!/usr/bin/env python3
"""The journal of writes whose outcome is unknown ([server] journal_file):
a write (any method but GET, HEAD, OPTIONS, TRACE) that reached the backend
and got a 5xx, lost its backend connection, timed out, or whose client went
away before the answer, is one JSON line; admin GET /journal?since= lists
them; einlass_uncertain_writes_total{route} counts them.

The backend runs in this process and speaks raw HTTP/1.1:
  /appointments/...  reads the head, then dies: closes without an answer
  /status/N          answers N
  /slow              waits until released (or 20 s), then answers 200
  /slowdie           waits until released, then dies without an answer
  anything else      200"""
import json
import os
import shutil
import signal
import subprocess
import threading
import time

from einlass_test import (Client, Einlass, SocketServer, conf_text, run, wait_until,
                          write_conf)


class RawBackend(SocketServer):
    def __init__(self):
        super().__init__()
        self.lock = threading.Lock()
        self.heads = []                    # request lines seen
        self.slow_seen = threading.Event()  # a /slow request arrived
        self.slow_release = threading.Event()
        self.serve_forever()

    def _serve(self, s):
        f = s.makefile("rb")
        try:
            while True:
                line = f.readline()
                if not line:
                    return
                headers = {}
                while True:
                    h = f.readline()
                    if h in (b"\r\n", b"\n", b""):
                        break
                    k, v = h.decode("latin-1").split(":", 1)
                    headers[k.strip().lower()] = v.strip()
                method, path, _ = line.decode("latin-1").split(" ", 2)
                with self.lock:
                    self.heads.append((method, path))
                if path.startswith("/appointments/"):
                    s.close()  # dies mid-request: the head read, no answer
                    return
                n = int(headers.get("content-length", "0"))
                if n:
                    f.read(n)
                status = 200
                if path.startswith("/status/"):
                    status = int(path.split("?")[0].split("/")[2])
                if path.startswith("/slow"):
                    self.slow_seen.set()
                    self.slow_release.wait(20)
                    if path.startswith("/slowdie"):
                        s.close()  # dies after the client is gone
                        return
                body = b"ok\n"
                s.sendall(b"HTTP/1.1 %d X\r\nContent-Length: %d\r\n\r\n%s" % (status, len(body), body))
        except OSError:
            pass
        finally:
            try:
                s.close()
            except OSError:
                pass


B = None

ROUTES = """
[route cancel]
match = POST /appointments/*/cancel
action = bypass
"""


def start(journal="journal.jsonl", extra_server="", backend="response_timeout_ms = 20000"):
    server = ("journal_file = %s\n" % journal if journal is not None else "") + extra_server
    conf = write_conf(conf_text(B.port, room="mode = off", server=server, backend=backend,
                                extra=ROUTES))
    return Einlass(conf), os.path.dirname(conf)


def journal_lines(e, since=0):
    code, body = e.admin("GET", "/journal?since=%s" % since)
    assert code == 200, (code, body)
    return [json.loads(l) for l in body.splitlines() if l]


def metric(e, name_labels):
    text = e.admin("GET", "/metrics")[1]
    for line in text.splitlines():
        if line.startswith(name_labels + " "):
            return float(line.split()[-1])
    return None


def file_lines(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(l) for l in f if l.strip()]


def test_cancellation_through_bypass_route_with_dying_backend_is_journaled_once():
    e, d = start()
    try:
        t0 = time.time()
        c = Client(e.port)
        r = c.request("POST", "/appointments/4711/cancel?x=secret", body=b"reason=ill",
                      headers=[("Cookie", "session=abc")])
        assert r.status == 502, r.status
        c.close()
        path = os.path.join(d, "journal.jsonl")
        lines = wait_until(lambda: file_lines(path), what="a journal line")
        time.sleep(0.5)  # a second line would have been flushed by now
        lines = file_lines(path)
        assert len(lines) == 1, lines
        j = lines[0]
        assert list(j.keys())[0] == "time", j
        assert t0 - 1 <= j["time"] <= time.time() + 1, j
        assert j["method"] == "POST" and j["path"] == "/appointments/4711/cancel", j
        assert j["route"] == "cancel" and j["client"] == "127.0.0.1", j
        assert j["status"] == 0 and j["reason"] == "backend connection broke", j
        assert j["pass"] == "" and j["ticket"] == "" and j["upstream_ms"] >= 0, j
        raw = open(path).read()
        assert "secret" not in raw and "ill" not in raw and "abc" not in raw, raw
        assert metric(e, 'einlass_uncertain_writes_total{route="cancel"}') == 1
        assert journal_lines(e) == lines
    finally:
        assert e.stop() == 0


def test_only_writes_with_a_5xx_are_journaled():
    e, d = start()
    try:
        c = Client(e.port)
        assert c.request("POST", "/status/503", body=b"x").status == 503
        assert c.request("POST", "/ok", body=b"x").status == 200
        assert c.request("GET", "/status/503").status == 503
        assert c.request("DELETE", "/status/500").status == 500
        assert c.request("POST", "/status/404", body=b"x").status == 404
        c.close()
        lines = wait_until(lambda: len(journal_lines(e)) >= 2 and journal_lines(e),
                           what="two journal lines")
        time.sleep(0.3)
        lines = journal_lines(e)
        assert [(l["method"], l["path"], l["status"], l["reason"]) for l in lines] == [
            ("POST", "/status/503", 503, "backend 503"),
            ("DELETE", "/status/500", 500, "backend 500")], lines
        assert all(l["route"] == "" for l in lines), lines
        assert metric(e, 'einlass_uncertain_writes_total{route=""}') == 2
    finally:
        assert e.stop() == 0


def test_client_going_away_during_a_slow_write_is_journaled_once():
    B.slow_seen.clear()
    B.slow_release.clear()
    e, d = start()
    try:
        c = Client(e.port)
        c.send(b"POST /slow HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc")
        assert B.slow_seen.wait(10)
        c.close()
        lines = wait_until(lambda: journal_lines(e), what="a journal line")
        assert len(lines) == 1 and lines[0]["reason"] == "client went away", lines
        assert lines[0]["path"] == "/slow" and lines[0]["status"] == 0, lines
        B.slow_release.set()  # the backend answers now: to nobody
        time.sleep(0.5)
        assert len(journal_lines(e)) == 1, journal_lines(e)
        # the client goes, then the backend dies too: still one line
        B.slow_seen.clear()
        B.slow_release.clear()
        c = Client(e.port)
        c.send(b"PATCH /slowdie HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc")
        assert B.slow_seen.wait(10)
        c.close()
        wait_until(lambda: len(journal_lines(e)) == 2, what="the second line")
        B.slow_release.set()
        # its failure is answered (to nobody) and counted as an error
        wait_until(lambda: metric(e, 'einlass_requests_total{decision="error"}') == 1,
                   what="the backend's failure")
        time.sleep(0.3)
        lines = journal_lines(e)
        assert [(l["method"], l["reason"]) for l in lines] == [
            ("POST", "client went away"), ("PATCH", "client went away")], lines
    finally:
        B.slow_release.set()
        assert e.stop() == 0


def test_journal_since_filters_and_refuses_a_bad_since():
    e, d = start()
    try:
        c = Client(e.port)
        assert c.request("POST", "/status/502", body=b"x").status == 502
        c.close()
        lines = wait_until(lambda: journal_lines(e), what="a journal line")
        t = lines[0]["time"]
        assert journal_lines(e, since=int(t)) == lines
        assert journal_lines(e, since="%.3f" % t) == lines
        assert journal_lines(e, since=int(t) + 2) == []
        assert journal_lines(e, since=int(time.time()) + 3600) == []
        code, body = e.admin("GET", "/journal")
        assert code == 200 and json.loads(body.splitlines()[0]) == lines[0], (code, body)
        for bad in ("abc", "-1", "1e400", "12x", "", "nan"):
            code, body = e.admin("GET", "/journal?since=" + bad)
            assert code == 400 and "since" in body, (bad, code, body)
    finally:
        assert e.stop() == 0


def test_journal_needs_the_admin_token_when_one_is_set():
    e, d = start(extra_server="admin_token = s3cret\n")
    try:
        code, _ = e.admin("GET", "/journal?since=0")
        assert code == 401, code
        code, _ = e.admin("GET", "/journal?since=0", token="s3cret")
        assert code == 200, code
    finally:
        assert e.stop() == 0


def test_journal_reopens_on_sighup_after_mv_and_rotates_by_size():
    e, d = start(extra_server="journal_max_bytes = 300\n")
    path = os.path.join(d, "journal.jsonl")
    try:
        c = Client(e.port)
        assert c.request("POST", "/status/500?n=1", body=b"x").status == 500
        wait_until(lambda: len(file_lines(path)) == 1, what="line 1")
        os.rename(path, path + ".old")
        e.reload()  # logrotate: mv, then HUP
        assert c.request("POST", "/status/501", body=b"x").status == 501
        wait_until(lambda: len(file_lines(path)) == 1, what="line 2 in the new file")
        assert [l["status"] for l in file_lines(path + ".old")] == [500]
        assert [l["status"] for l in file_lines(path)] == [501]
        # the next line would take the file past 300 bytes: FILE -> FILE.1
        assert c.request("POST", "/status/502", body=b"x").status == 502
        wait_until(lambda: os.path.exists(path + ".1") and len(file_lines(path)) == 1,
                   what="rotation by size")
        assert [l["status"] for l in file_lines(path + ".1")] == [501]
        assert [l["status"] for l in file_lines(path)] == [502]
        assert [l["status"] for l in journal_lines(e)] == [501, 502]
        c.close()
    finally:
        assert e.stop() == 0


def test_without_journal_file_nothing_is_written_and_journal_is_404():
    e, d = start(journal=None)
    try:
        before = set(os.listdir(d))
        c = Client(e.port)
        assert c.request("POST", "/status/503", body=b"x").status == 503
        c.close()
        code, body = e.admin("GET", "/journal?since=0")
        assert code == 404 and "journal_file" in body, (code, body)
        wait_until(lambda: metric(e, 'einlass_uncertain_writes_total{route=""}') == 1,
                   what="the counter")
        assert set(os.listdir(d)) == before, os.listdir(d)
    finally:
        assert e.stop() == 0


def test_journal_metrics_pass_promtool():
    promtool = shutil.which("promtool")
    assert promtool, "promtool not found: bash tests/install-deps.sh test"
    e, d = start()
    try:
        for when in ("before", "after"):
            if when == "after":
                c = Client(e.port)
                c.request("POST", "/appointments/1/cancel", body=b"x")
                c.close()
                wait_until(lambda: metric(e, 'einlass_uncertain_writes_total{route="cancel"}'),
                           what="the counter")
            text = e.admin("GET", "/metrics")[1]
            assert "einlass_journal_dropped_total 0" in text, text
            p = subprocess.run([promtool, "check", "metrics"], input=text.encode(),
                               capture_output=True, timeout=60)
            out = (p.stdout + p.stderr).decode()
            assert p.returncode == 0 and out.strip() == "", (when, out)
    finally:
        assert e.stop() == 0


if __name__ == "__main__":
    B = RawBackend()
    run([test_cancellation_through_bypass_route_with_dying_backend_is_journaled_once,
         test_only_writes_with_a_5xx_are_journaled,
         test_client_going_away_during_a_slow_write_is_journaled_once,
         test_journal_since_filters_and_refuses_a_bad_since,
         test_journal_needs_the_admin_token_when_one_is_set,
         test_journal_reopens_on_sighup_after_mv_and_rotates_by_size,
         test_without_journal_file_nothing_is_written_and_journal_is_404,
         test_journal_metrics_pass_promtool])
