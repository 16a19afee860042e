#!/usr/bin/env python3
"""What an operator reaches for during an incident (issue 13): POST /pause
holds every admission while places and passes are kept, and survives a
reload; POST /rate is checked as the file's admit_per_s would be; admin
/healthz and the public /_einlass/health answer load balancers, and a
cookieless /_einlass/status takes no place."""
import signal
import threading
import time

from einlass_test import Einlass, conf_text, get, run, start_backend, wait_until, write_conf

B = None


def setup():
    global B
    B = start_backend()


def test_pause_holds_admissions_keeps_places_and_passes():
    e = Einlass(write_conf(conf_text(B.port, room="mode = auto\nadmit_per_s = 50\nadapt = off")))
    try:
        r, inside = get(e.port, "/book")  # in before the pause: a pass
        assert r.status == 200 and "einlass_pass" in inside, r.status
        assert e.admin("POST", "/pause")[0] == 204
        st = e.status()
        assert st["paused"] is True and st["queueing"] is True, st
        r, waiting = get(e.port, "/book", headers=[("Accept", "text/html")])
        assert r.status == 503 and b">Admissions are paused for a moment. Your place is kept.<" \
            in r.body, (r.status, r.body[:200])
        # the pass holder keeps going
        r, _ = get(e.port, "/book", cookies=inside)
        assert r.status == 200, r.status
        # at 50 a second the ticket would be reached at once: paused, it is not
        time.sleep(1.0)
        r, waiting = get(e.port, "/_einlass/status", cookies=waiting)
        j = r.json()
        assert j["state"] == "waiting" and j["position"] == 1 and j["paused"] is True, j
        assert j["eta_text"] == "Admissions are paused for a moment. Your place is kept.", j
        assert e.status()["admitted_total"] == 0
        assert "\neinlass_paused 1\n" in e.admin("GET", "/metrics")[1]
        # a reload keeps the pause (an incident outlasts a reload)
        assert "in effect" in e.reload().group(0)
        time.sleep(0.5)
        assert e.status()["paused"] is True
        r, waiting = get(e.port, "/_einlass/status", cookies=waiting)
        assert r.json()["state"] == "waiting", r.body
        assert e.admin("POST", "/resume")[0] == 204
        assert e.status()["paused"] is False
        wait_until(lambda: get(e.port, "/_einlass/status", cookies=waiting)[0].json()["state"]
                   == "admitted", what="admission after resume")
    finally:
        assert e.stop() == 0


def test_admin_rate_refuses_what_the_file_would():
    e = Einlass(write_conf(conf_text(B.port, room="max_admit_per_s = 50")))
    try:
        st, body = e.admin("POST", "/rate", "80")
        assert st == 400 and "max_admit_per_s (50)" in body, (st, body)
        st, body = e.admin("POST", "/rate", "0.001")
        assert st == 400 and "below the minimum 0.01" in body, (st, body)
        st, body = e.admin("POST", "/rate", "0")
        assert st == 400 and "POST /pause" in body, (st, body)
        assert e.admin("POST", "/rate", "0.5")[0] == 204  # min_admit_per_s is not set: follows
    finally:
        assert e.stop() == 0


def test_admit_per_s_500_alone_starts():
    e = Einlass(write_conf(conf_text(B.port, room="admit_per_s = 500\nadapt = off")))
    try:
        assert e.status()["admit_per_s"] == 500
        assert e.admin("POST", "/rate", "500")[0] == 204
    finally:
        assert e.stop() == 0


def test_healthz_and_public_health():
    e = Einlass(write_conf(conf_text(B.port, room="mode = on")))
    try:
        st, body = e.admin("GET", "/healthz")
        assert st == 200 and '"state":"serving"' in body and '"store":"memory"' in body, body
        for _ in range(3):
            r, c = get(e.port, "/_einlass/health")
            assert r.status == 200 and r.json()["state"] == "ok" and not c, (r.status, c)
            r, c = get(e.port, "/_einlass/status")
            assert r.status == 200 and r.json()["state"] == "queueing" and not c, r.body
        assert e.status()["waiting"] == 0
        assert B.text().count("/_einlass/") == 0  # never forwarded
    finally:
        assert e.stop() == 0


def test_healthz_answers_503_while_draining_a_request_in_flight():
    """SIGTERM with a request in flight: the admin /healthz says 503
    "draining" (a load balancer takes the instance out) while that request
    still completes with 200, and the process then exits 0."""
    e = Einlass(write_conf(conf_text(B.port, server="drain_timeout_ms = 20000")))
    out = {}

    def slow():
        out["r"] = get(e.port, "/slow?ms=2500")[0]
    t = threading.Thread(target=slow, daemon=True)
    try:
        t.start()
        wait_until(lambda: e.status()["inflight"] == 1, what="the slow request in flight")
        e.proc.kill_with(signal.SIGTERM)
        e.proc.wait_line(r"stopping: no new connections")
        st, body = e.admin("GET", "/healthz")
        assert st == 503 and '"state":"draining"' in body and '"store":"memory"' in body, (st, body)
        t.join(30)
        assert out["r"].status == 200, out
    finally:
        assert e.stop() == 0


if __name__ == "__main__":
    setup()
    run([test_pause_holds_admissions_keeps_places_and_passes,
         test_admin_rate_refuses_what_the_file_would,
         test_admit_per_s_500_alone_starts,
         test_healthz_and_public_health,
         test_healthz_answers_503_while_draining_a_request_in_flight])
