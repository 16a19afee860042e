#!/usr/bin/env python3
"""The waiting room (issue 3) with the memory store, against the real binary
and a real backend on 127.0.0.1: FIFO order, the metered rate, one pass per
ticket, the answers a waiting client gets, /_einlass/status, tampered
cookies, routes, the modes, Einlass-Release, the admin API and reload.

Timing is only ever asserted within generous bounds: the order of
admissions is checked by polling rounds, not by clocks."""
import json
import threading
import time

from einlass_test import (Client, Einlass, conf_text, get, run, start_backend, wait_until,
                          write_conf)

B = None
TOKEN = "s3cret-admin"
ROUTES = """
[route cancel]
match = POST /appointments/*/cancel
action = bypass

[route admin]
match = * /internal/**
action = reject

[route urgent]
match = GET /urgent/*
action = priority
"""
NEW_SECRET = "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100"


def room(mode="on", rate=5, poll_s=1, extra="", server=""):
    """An einlass with a fixed admission rate (adapt = off) and the routes."""
    text = room_conf(mode, rate, poll_s, extra)
    return Einlass(write_conf(conf_text(B.port, room=text, extra=ROUTES, server=server)))


def room_conf(mode, rate, poll_s, extra=""):
    return ("mode = %s\nstore = memory\nadapt = off\nadmit_per_s = %g\nmin_admit_per_s = 0.01\n"
            "poll_s = %d\n%s" % (mode, rate, poll_s, extra))


def backend_requests():
    r, _ = get(B.port, "/_stats")
    return r.json()["requests"]


def request(port, method, path, cookies=None, headers=()):
    """One request on a fresh connection: (response, cookies after it)."""
    c = Client(port)
    if cookies:
        c.cookies.update(cookies)
    try:
        return c.request(method, path, headers), dict(c.cookies)
    finally:
        c.close()


def join(port, path="/", headers=()):
    """A newcomer: the 503 answer and its ticket cookie."""
    r, ck = request(port, "GET", path, headers=headers)
    assert r.status == 503, (r.status, r.body)
    assert "einlass_ticket" in ck, r.headers
    return r, ck


def poll(port, cookies):
    """GET /_einlass/status with cookies: (state document, cookies after it)."""
    r, ck = request(port, "GET", "/_einlass/status", cookies)
    assert r.status == 200, (r.status, r.body)
    return r.json(), ck


def cookie_attrs(r, name):
    for v in r.all("Set-Cookie"):
        if v.startswith(name + "="):
            return [a.strip() for a in v.split(";")]
    return None


def tamper(value):
    """Flip one character in the middle of a token."""
    i = len(value) // 2
    return value[:i] + ("A" if value[i] != "A" else "B") + value[i + 1:]


def admitted_in_rounds(port, tickets, timeout=30, interval=0.1):
    """Poll every ticket in reverse join order, round after round, until all
    are admitted. Returns each ticket's first admitted round. Reverse order
    makes the check exact: if ticket i is seen admitted, every earlier ticket
    j < i was reached before and is seen admitted later in the same round."""
    rounds = [None] * len(tickets)
    rnd = 0
    deadline = time.time() + timeout
    while None in rounds:
        assert time.time() < deadline, "not all admitted: %r" % rounds
        positions = {}
        for i in reversed(range(len(tickets))):
            if rounds[i] is not None:
                continue
            doc, ck = poll(port, tickets[i])
            if doc["state"] == "admitted":
                assert "einlass_pass" in ck
                rounds[i] = rnd
            else:
                assert doc["state"] == "waiting", doc
                positions[i] = doc["position"]
        # those still waiting are in join order, numbered from 1
        order = sorted(positions)
        seq = [positions[i] for i in order]
        assert all(a < b for a, b in zip(seq, seq[1:])), positions
        if order:
            assert positions[order[0]] >= 1
        rnd += 1
        time.sleep(interval)
    return rounds


# ---- tests ----

def test_fifo_order_over_25_clients():
    e = room(rate=5)
    try:
        tickets = []
        for i in range(25):
            r, ck = join(e.port)
            assert r.json()["position"] == i + 1, (i, r.body)
            tickets.append({"einlass_ticket": ck["einlass_ticket"]})
        rounds = admitted_in_rounds(e.port, tickets)
        assert rounds == sorted(rounds), rounds
        assert rounds[-1] > rounds[0], rounds  # metered, not all at once
        assert e.stop() == 0  # a clean exit (sanitizer builds: no leak)
    finally:
        e.stop()


def test_metered_rate():
    e = room(rate=4)
    try:
        tickets = [{"einlass_ticket": join(e.port)[1]["einlass_ticket"]} for _ in range(40)]
        admitted = set()
        t0 = time.time()
        while time.time() - t0 < 3.0:
            for i, t in enumerate(tickets):
                if i in admitted:
                    continue
                doc, _ = poll(e.port, t)
                if doc["state"] == "admitted":
                    admitted.add(i)
                else:
                    break  # FIFO: nobody later is in yet
            time.sleep(0.1)
        took = time.time() - t0
        expected = 4 * took
        assert expected * 0.4 <= len(admitted) <= expected * 1.6 + 2, (len(admitted), took)
        st = e.status()
        assert st["admitted_total"] == len(admitted), (st, len(admitted))
        assert st["queueing"] is True and st["mode"] == "on"
        assert e.stop() == 0  # a clean exit (sanitizer builds: no leak)
    finally:
        e.stop()


def test_copied_ticket_yields_one_pass():
    e = room(rate=20)
    try:
        _, a = join(e.port)
        _, b = join(e.port)
        # once b is reached, a (ahead of it) is reached too; b's own poll claims b only
        wait_until(lambda: poll(e.port, {"einlass_ticket": b["einlass_ticket"]})[0]["state"]
                   == "admitted", timeout=10, what="b admitted")
        ticket = {"einlass_ticket": a["einlass_ticket"]}
        results = [None, None]

        def go(i):
            results[i] = request(e.port, "GET", "/page", ticket)

        ts = [threading.Thread(target=go, args=(i,)) for i in range(2)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        statuses = sorted(r.status for r, _ in results)
        assert statuses == [200, 503], statuses
        for r, ck in results:
            if r.status == 200:
                assert r.body.startswith(b"<html>") and "einlass_pass" in ck
            else:
                assert "einlass_pass" not in ck
                assert ck["einlass_ticket"] != a["einlass_ticket"]  # a new place at the back
                assert r.json()["state"] == "waiting"
        # and a third try with the copy never gets in either
        r, ck = request(e.port, "GET", "/page", ticket)
        assert r.status == 503 and "einlass_pass" not in ck
        assert e.stop() == 0  # a clean exit (sanitizer builds: no leak)
    finally:
        e.stop()


def test_wait_answers_json_html_languages_and_headers():
    e = room(rate=0.01, poll_s=3)
    try:
        r, ck = join(e.port, "/book", [("Accept", "application/json")])
        assert r.header("Content-Type").startswith("application/json"), r.headers
        assert r.header("Retry-After") == "3"
        assert r.header("Cache-Control") == "no-store"
        doc = r.json()
        assert doc["state"] == "waiting" and doc["position"] == 1 and doc["poll_s"] == 3, doc
        assert doc["eta_s"] >= 1
        attrs = cookie_attrs(r, "einlass_ticket")
        assert attrs and {"HttpOnly", "SameSite=Lax", "Path=/"} <= set(attrs), attrs
        assert "Secure" not in attrs

        # the same ticket asks again: same place, no new cookie needed
        r, ck2 = request(e.port, "GET", "/book", ck)
        assert r.status == 503 and r.json()["position"] == 1
        assert ck2["einlass_ticket"] == ck["einlass_ticket"]

        html = "text/html,application/xhtml+xml;q=0.9,*/*;q=0.8"
        r, _ = join(e.port, "/book", [("Accept", html), ("Accept-Language", "de-DE,de;q=0.9,en;q=0.5")])
        assert r.header("Content-Type").startswith("text/html"), r.headers
        assert r.header("Retry-After") == "3" and r.header("Cache-Control") == "no-store"
        page = r.body.decode()
        assert "Warteschlange" in page and "You are in line" not in page, page[:300]
        r, _ = join(e.port, "/book", [("Accept", html), ("Accept-Language", "en-GB,de;q=0.3")])
        page = r.body.decode()
        assert "You are in line" in page and "Warteschlange" not in page, page[:300]
        # no Accept at all: JSON
        r, _ = join(e.port, "/book")
        assert r.header("Content-Type").startswith("application/json")
        assert r.json()["position"] == 4
        # behind a TLS terminator on loopback: Secure
        r, _ = join(e.port, "/book", [("X-Forwarded-Proto", "https")])
        assert "Secure" in cookie_attrs(r, "einlass_ticket")
        assert e.stop() == 0  # a clean exit (sanitizer builds: no leak)
    finally:
        e.stop()


def test_status_path_never_forwarded_three_states():
    e = room(mode="auto", rate=20)
    try:
        n0 = backend_requests()
        r, ck = request(e.port, "GET", "/_einlass/status")
        assert r.status == 200 and r.json() == {"state": "open"}, r.body
        assert r.header("Content-Type").startswith("application/json")
        r, _ = request(e.port, "GET", "/_einlass/status?t=12345")  # a cache-buster
        assert r.status == 200 and r.json() == {"state": "open"}, r.body
        r, ck = request(e.port, "GET", "/page")  # forwarded: the one backend request
        assert r.status == 200 and "einlass_pass" in ck
        holder = {"einlass_pass": ck["einlass_pass"]}
        assert e.admin("POST", "/mode", "on")[0] == 204
        n1 = backend_requests()
        r, ck = request(e.port, "GET", "/_einlass/status")  # no ticket: no place taken
        assert r.status == 200 and r.json()["state"] == "queueing" and not ck, r.body
        r, ck = request(e.port, "GET", "/page")  # a page load joins
        assert r.status == 503 and "einlass_ticket" in ck, r.status
        r, ck = request(e.port, "GET", "/_einlass/status", ck)
        assert r.status == 200, r.status
        doc = r.json()
        assert doc["state"] == "waiting" and doc["position"] >= 1, doc
        r, _ = request(e.port, "GET", "/_einlass/status", holder)
        assert r.json() == {"state": "admitted"}, r.body
        # the waiting ticket becomes admitted, with a pass, all without the backend
        doc = wait_until(lambda: poll(e.port, ck)[0]["state"] == "admitted", timeout=10,
                         what="admitted")
        r, ck2 = request(e.port, "GET", "/_einlass/status", ck)
        assert r.status == 200
        n2 = backend_requests()
        # each backend_requests() call counts itself, and /page was forwarded;
        # nothing else reached the backend
        assert n1 == n0 + 2, (n0, n1)
        assert n2 == n1 + 1, (n1, n2)
        assert e.admin("POST", "/mode", "off")[0] == 204
        r, ck = request(e.port, "GET", "/_einlass/status")
        assert r.json() == {"state": "open"} and not ck
        assert backend_requests() == n2 + 1
        assert e.stop() == 0  # a clean exit (sanitizer builds: no leak)
    finally:
        e.stop()


def test_tampered_ticket_or_pass_counts_as_none():
    e = room(mode="auto", rate=0.01)
    try:
        r, ck = request(e.port, "GET", "/page")
        good_pass = ck["einlass_pass"]
        assert e.admin("POST", "/mode", "on")[0] == 204
        _, a = join(e.port)
        _, b = join(e.port)
        # a tampered ticket is a newcomer: a new place at the back
        r, ck = request(e.port, "GET", "/page", {"einlass_ticket": tamper(a["einlass_ticket"])})
        assert r.status == 503 and r.json()["position"] == 3, r.body
        assert ck["einlass_ticket"] not in (a["einlass_ticket"], b["einlass_ticket"])
        # a tampered pass: the holder waits like anyone new
        r, ck = request(e.port, "GET", "/page", {"einlass_pass": tamper(good_pass)})
        assert r.status == 503 and "einlass_ticket" in ck and r.json()["position"] == 4
        doc, _ = poll(e.port, {"einlass_pass": tamper(good_pass)})
        assert doc["state"] == "queueing", doc  # counts as none: no ticket, no place
        # a ticket is not a pass, nor a pass a ticket
        r, _ = request(e.port, "GET", "/page", {"einlass_pass": a["einlass_ticket"]})
        assert r.status == 503
        # the untouched ones still work
        r, _ = request(e.port, "GET", "/page", {"einlass_pass": good_pass})
        assert r.status == 200
        r, _ = request(e.port, "GET", "/page", a)
        assert r.status == 503 and r.json()["position"] == 1, r.body
        assert e.stop() == 0  # a clean exit (sanitizer builds: no leak)
    finally:
        e.stop()


def test_routes_bypass_reject_priority():
    e = room(rate=2)
    try:
        normal = [join(e.port)[1] for _ in range(3)]
        r, urgent = join(e.port, "/urgent/now")
        assert r.json()["position"] == 1, r.body  # ahead of everyone normal
        doc, _ = poll(e.port, normal[0])
        assert doc["state"] == "admitted" or doc["position"] == 2, doc
        tickets = normal + [urgent]
        rounds = [None] * 4
        rnd = 0
        deadline = time.time() + 20
        while None in rounds:
            assert time.time() < deadline, rounds
            for i in range(4):  # the urgent one last: it must never trail
                if rounds[i] is None and poll(e.port, tickets[i])[0]["state"] == "admitted":
                    rounds[i] = rnd
            rnd += 1
            time.sleep(0.1)
        assert rounds[3] <= min(rounds[:3]), rounds
        assert rounds[:3] == sorted(rounds[:3]), rounds

        n0 = backend_requests()
        r, ck = request(e.port, "POST", "/appointments/42/cancel")
        assert r.status == 200 and not ck, (r.status, ck)
        assert backend_requests() == n0 + 2  # the cancel, and this count
        r, ck = request(e.port, "GET", "/appointments/42/cancel")  # only POST bypasses
        assert r.status == 503 and "einlass_ticket" in ck
        r, ck = request(e.port, "GET", "/internal/x")
        assert r.status == 403 and not ck, r.status
        r, _ = request(e.port, "DELETE", "/internal/y/z")
        assert r.status == 403
        assert backend_requests() == n0 + 3
        assert e.stop() == 0  # a clean exit (sanitizer builds: no leak)
    finally:
        e.stop()


def test_auto_pass_survives_mode_on_newcomer_waits():
    e = room(mode="auto", rate=0.01)
    try:
        st = e.status()
        assert st["mode"] == "auto" and st["queueing"] is False, st
        r, ck = request(e.port, "GET", "/page")
        assert r.status == 200
        attrs = cookie_attrs(r, "einlass_pass")
        assert attrs and {"HttpOnly", "SameSite=Lax", "Path=/"} <= set(attrs), attrs
        holder = {"einlass_pass": ck["einlass_pass"]}
        # a pass holder gets no new pass on every request
        r, ck2 = request(e.port, "GET", "/page", holder)
        assert r.status == 200 and not r.all("Set-Cookie")
        assert e.admin("POST", "/mode", "on")[0] == 204
        assert e.status()["queueing"] is True
        for _ in range(3):
            r, _ = request(e.port, "GET", "/page", holder)
            assert r.status == 200 and b"portal content" in r.body
        r, ck = request(e.port, "GET", "/page")
        assert r.status == 503 and "einlass_ticket" in ck and "einlass_pass" not in ck
        assert e.stop() == 0  # a clean exit (sanitizer builds: no leak)
    finally:
        e.stop()


def test_mode_off_sets_no_cookies():
    e = room(mode="off")
    try:
        for path in ("/page", "/echo", "/release"):
            r, ck = request(e.port, "GET", path)
            assert r.status == 200 and not r.all("Set-Cookie") and not ck, (path, r.headers)
        r, ck = request(e.port, "GET", "/_einlass/status")
        assert r.json() == {"state": "open"} and not ck
        assert e.status()["queueing"] is False
        assert e.stop() == 0  # a clean exit (sanitizer builds: no leak)
    finally:
        e.stop()


def test_release_clears_pass_and_admits_next():
    e = room(mode="auto", rate=0.01)
    try:
        _, ck = request(e.port, "GET", "/page")
        holder = {"einlass_pass": ck["einlass_pass"]}
        assert e.admin("POST", "/mode", "on")[0] == 204
        _, w = join(e.port)
        time.sleep(1.0)  # at 0.01/s nobody gets in by the meter in this test
        assert poll(e.port, w)[0]["state"] == "waiting"
        r, ck = request(e.port, "GET", "/release", holder)
        assert r.status == 200 and r.header("Einlass-Release") == "1"
        attrs = cookie_attrs(r, "einlass_pass")
        assert attrs and attrs[0] == "einlass_pass=" and "Max-Age=0" in attrs, r.headers
        assert "einlass_pass" not in ck
        # the release is one admission credit: the one waiting gets in now
        wait_until(lambda: poll(e.port, w)[0]["state"] == "admitted", timeout=5,
                   what="admitted after release")
        # a release without a pass (a newcomer through a bypass) gives no credit
        _, w2 = join(e.port)
        r, _ = request(e.port, "GET", "/release")
        assert r.status == 503  # a newcomer does not reach /release at all
        time.sleep(1.0)
        assert poll(e.port, w2)[0]["state"] == "waiting"
        assert e.stop() == 0  # a clean exit (sanitizer builds: no leak)
    finally:
        e.stop()


def test_admin_token_mode_rate_status_metrics():
    e = room(mode="auto", rate=3, server="admin_token = %s" % TOKEN)
    try:
        assert e.admin("POST", "/mode", "on")[0] == 401
        assert e.admin("POST", "/rate", "7")[0] == 401
        assert e.status()["mode"] == "auto"
        assert e.admin("POST", "/mode", "on", token="wrong")[0] == 401
        assert e.admin("POST", "/mode", "on", token=TOKEN)[0] == 204
        assert e.admin("POST", "/rate", "0.01", token=TOKEN)[0] == 204
        st = e.status()
        assert st["mode"] == "on" and st["queueing"] is True, st
        assert abs(st["admit_per_s"] - 0.01) < 1e-9, st
        assert st["store"] == "memory"
        tickets = [join(e.port)[1] for _ in range(5)]
        wait_until(lambda: e.status()["waiting"] == 5, timeout=5, what="waiting 5")
        code, text = e.admin("GET", "/metrics")
        assert code == 200
        metrics = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                k, v = line.rsplit(" ", 1)
                metrics[k] = float(v)
        assert metrics["einlass_waiting"] == 5, text
        assert metrics["einlass_queueing"] == 1
        assert metrics['einlass_requests_total{decision="wait"}'] >= 5
        assert metrics["einlass_admitted_total"] == 0
        # a faster rate lets them in; admitted_total follows
        assert e.admin("POST", "/rate", "50", token=TOKEN)[0] == 204
        for t in tickets:
            wait_until(lambda: poll(e.port, t)[0]["state"] == "admitted", timeout=5)
        wait_until(lambda: (lambda s: s["waiting"] == 0 and s["admitted_total"] == 5)(e.status()),
                   timeout=5, what="waiting 0, admitted 5")
        code, text = e.admin("GET", "/metrics")
        assert "einlass_admitted_total 5" in text, text
        assert e.admin("POST", "/mode", "off", token=TOKEN)[0] == 204
        r, ck = request(e.port, "GET", "/page")
        assert r.status == 200 and not ck
        assert e.status()["queueing"] is False
        assert e.stop() == 0  # a clean exit (sanitizer builds: no leak)
    finally:
        e.stop()


def test_reload_new_secret_keeps_passes_and_places():
    path = write_conf(conf_text(B.port, room=room_conf("auto", 0.01, 2), extra=ROUTES))
    e = Einlass(path)
    try:
        _, ck = request(e.port, "GET", "/page")
        holder = {"einlass_pass": ck["einlass_pass"]}
        assert e.admin("POST", "/mode", "on")[0] == 204
        waiting = [join(e.port)[1] for _ in range(3)]
        text = conf_text(B.port, room=room_conf("on", 0.01, 2), extra=ROUTES)
        with open(path, "w") as f:
            f.write(text.replace("secret = ", "secret = %s\n; old: " % NEW_SECRET, 1))
        m = e.reload()
        assert "in effect" in m.group(0), m.group(0)
        assert e.status()["mode"] == "on"
        # the old pass still passes (the old secret verifies), and its renewal
        # (if any) is signed with the new one
        r, _ = request(e.port, "GET", "/page", holder)
        assert r.status == 200, r.status
        # the places are kept, in order
        for i, t in enumerate(waiting):
            doc, _ = poll(e.port, t)
            assert {k: doc[k] for k in ("state", "position", "poll_s")} == \
                {"state": "waiting", "position": i + 1, "poll_s": 2}, doc
            assert doc["eta_low_s"] <= doc["eta_s"] <= doc["eta_high_s"], doc
        # a newcomer after the reload is behind them, with a new-secret ticket
        r, ck = join(e.port)
        assert r.json()["position"] == 4
        # a second reload to yet another secret: the first secret is gone
        with open(path, "w") as f:
            f.write(text.replace("secret = ", "secret = %s\n; old: " % ("ab" * 32), 1))
        e.reload()
        r, _ = request(e.port, "GET", "/page", {"einlass_pass": holder["einlass_pass"]})
        assert r.status == 503, r.status
        doc, _ = poll(e.port, ck)  # signed with NEW_SECRET, now the previous one
        assert doc["state"] == "waiting" and doc["position"] == 4, doc
        assert e.stop() == 0  # a clean exit (sanitizer builds: no leak)
    finally:
        e.stop()


if __name__ == "__main__":
    B = start_backend()
    try:
        run([test_fifo_order_over_25_clients, test_metered_rate, test_copied_ticket_yields_one_pass,
             test_wait_answers_json_html_languages_and_headers,
             test_status_path_never_forwarded_three_states,
             test_tampered_ticket_or_pass_counts_as_none, test_routes_bypass_reject_priority,
             test_auto_pass_survives_mode_on_newcomer_waits, test_mode_off_sets_no_cookies,
             test_release_clears_pass_and_admits_next, test_admin_token_mode_rate_status_metrics,
             test_reload_new_secret_keeps_passes_and_places])
    finally:
        B.stop()
