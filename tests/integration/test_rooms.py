#!/usr/bin/env python3
"""Several rooms (issue 13, item 3), against the real binary and a real
backend on 127.0.0.1: [room NAME] sections chosen by host and path (first
match, else [room]), each with its own mode, rate, page, status code and
cookies; tickets and passes of one room count as none in another; the
admin API's ?room= and the per-room /status and /metrics; a reload that
adds a room.

Rates are only asserted as "admitted" against "still waiting" with a
factor of thousands between them, never against a clock."""
import os
import re
import time

from einlass_test import (Client, Einlass, Redis, conf_text, run, start_backend, wait_until,
                          write_conf)

B = None

CAMPAIGN_PAGE = "<!DOCTYPE html><html><body>CAMPAIGN place {{position}}</body></html>\n"

ROOMS = """
[room campaign]
path = /campaign/**
mode = on
adapt = off
admit_per_s = 0.01
min_admit_per_s = 0.01
max_admit_per_s = 50
status = 200
template = campaign.html

[room kiosk]
host = kiosk.example.org, *.kiosk.example.org
mode = on
adapt = off
admit_per_s = 200
poll_s = 1
status = 429
"""

SECOND = """
[room second]
host = second.example.org
mode = on
adapt = off
admit_per_s = 0.01
min_admit_per_s = 0.01
"""


def start(extra=ROOMS, room="mode = off\nstore = memory\npoll_s = 1\n"):
    path = write_conf(conf_text(B.port, room=room, extra=extra))
    with open(os.path.join(os.path.dirname(path), "campaign.html"), "w") as f:
        f.write(CAMPAIGN_PAGE)
    return Einlass(path)


def request(port, path, host="test", cookies=None, accept="text/html"):
    """One GET on a fresh connection: (response, the cookies after it)."""
    c = Client(port)
    if cookies:
        c.cookies.update(cookies)
    try:
        return c.request("GET", path, [("Host", host), ("Accept", accept)]), dict(c.cookies)
    finally:
        c.close()


def set_cookies(r):
    """name -> value of the response's Set-Cookie fields."""
    out = {}
    for v in r.all("Set-Cookie"):
        name, _, rest = v.partition("=")
        out[name] = rest.split(";", 1)[0]
    return out


def kiosk_admitted(e):
    """A newcomer of the kiosk (200/s), polled until admitted: its cookies."""
    _, jar = request(e.port, "/", host="kiosk.example.org", accept="application/json")
    def admitted():
        nonlocal jar
        r, jar = request(e.port, "/_einlass/status", host="kiosk.example.org", cookies=jar,
                         accept="application/json")
        return r.json()["state"] == "admitted"
    wait_until(admitted, timeout=10, what="the kiosk admits")
    return jar


def metric(e, name, room):
    text = e.admin("GET", "/metrics")[1]
    m = re.search(r'(?m)^%s\{room="%s"\} (\S+)$' % (re.escape(name), re.escape(room)), text)
    assert m, "no %s{room=%r} in /metrics:\n%s" % (name, room, text)
    return float(m.group(1))


def test_rooms_are_chosen_by_path_and_host_each_with_its_page_status_and_cookies():
    e = start()
    try:
        # [room] is off: a plain proxy, no cookies
        r, _ = request(e.port, "/book")
        assert r.status == 200 and not r.all("Set-Cookie"), (r.status, r.headers)
        # the path room: its own page, status 200 and cookie names
        r, _ = request(e.port, "/campaign/slots")
        assert r.status == 200, r.status
        assert b"CAMPAIGN place 1" in r.body, r.body[:200]
        assert r.header("Cache-Control") == "no-store", r.headers  # a 200 no cache may keep
        assert list(set_cookies(r)) == ["einlass_ticket_campaign"], r.all("Set-Cookie")
        # the host room (any case, a port, a subdomain): status 429 and its cookies
        for host in ("kiosk.example.org", "KIOSK.example.org:8080", "a.kiosk.example.org."):
            r, _ = request(e.port, "/", host=host, accept="application/json")
            assert r.status == 429, (host, r.status, r.body)
            assert r.json()["state"] == "waiting", r.body
            assert list(set_cookies(r)) == ["einlass_ticket_kiosk"], r.all("Set-Cookie")
        # the host room takes every path of its host, the campaign path too
        # (first match: campaign comes first, but its path is not this one)
        r, _ = request(e.port, "/book", host="kiosk.example.org", accept="application/json")
        assert r.status == 429, r.status
        # /_einlass/status names its room with ?room= (no ticket: no place taken)
        r, _ = request(e.port, "/_einlass/status?room=campaign", accept="application/json")
        assert r.json()["state"] == "queueing" and not r.all("Set-Cookie"), r.body
        r, _ = request(e.port, "/_einlass/status?room=portal", accept="application/json")
        assert r.json()["state"] == "open", r.body  # [room] by its name: off
        # a host that is no room's: [room]
        r, _ = request(e.port, "/", host="example.org")
        assert r.status == 200 and not r.all("Set-Cookie"), r.status
    finally:
        e.stop()


def test_a_ticket_or_pass_of_one_room_counts_as_none_in_another():
    e = start()
    try:
        r, jar = request(e.port, "/campaign/x", accept="application/json")
        ticket = set_cookies(r)["einlass_ticket_campaign"]
        # the campaign ticket's value under the kiosk's name: a newcomer there
        r, _ = request(e.port, "/", host="kiosk.example.org",
                       cookies={"einlass_ticket_kiosk": ticket}, accept="application/json")
        assert r.status == 429 and "einlass_ticket_kiosk" in set_cookies(r), r.headers
        # a kiosk pass (200/s: admitted on the next poll) under the campaign's name
        jar = kiosk_admitted(e)
        kiosk_pass = jar["einlass_pass_kiosk"]
        r, _ = request(e.port, "/", host="kiosk.example.org",
                       cookies={"einlass_pass_kiosk": kiosk_pass})
        assert r.status == 200, r.status  # in its own room it admits
        r, _ = request(e.port, "/campaign/x", cookies={"einlass_pass_campaign": kiosk_pass},
                       accept="application/json")
        assert r.json()["state"] == "waiting", r.body  # in another it is none
        # and [room]'s cookie name carries no room's pass
        r, _ = request(e.port, "/campaign/x", cookies={"einlass_pass": kiosk_pass},
                       accept="application/json")
        assert r.json()["state"] == "waiting", r.body
    finally:
        e.stop()


def test_each_room_meters_at_its_own_rate_and_reports_it_per_room():
    e = start()
    try:
        jars = []
        for _ in range(3):
            r, jar = request(e.port, "/campaign/x", accept="application/json")
            jars.append(jar)
        kiosk = []
        for _ in range(3):
            r, jar = request(e.port, "/", host="kiosk.example.org", accept="application/json")
            kiosk.append(jar)
        # the kiosk (200/s) lets its three in; the campaign (0.01/s) nobody
        def all_in():
            for i, jar in enumerate(kiosk):
                r, kiosk[i] = request(e.port, "/_einlass/status", host="kiosk.example.org",
                                      cookies=jar, accept="application/json")
                if r.json()["state"] != "admitted":
                    return False
            return True
        wait_until(all_in, timeout=15, what="the kiosk's three admitted")
        time.sleep(0.3)  # the figures are the tick's (every 100 ms)
        for jar in jars:  # the page's script polls /_einlass/status: its ticket names the room
            r, _ = request(e.port, "/_einlass/status", cookies=jar, accept="application/json")
            assert r.json()["state"] == "waiting", r.body
        st = e.status()
        rooms = {x["name"]: x for x in st["rooms"]}
        assert list(rooms) == ["portal", "campaign", "kiosk"], st["rooms"]
        assert rooms["campaign"]["waiting"] == 3 and rooms["campaign"]["queueing"], rooms
        assert rooms["kiosk"]["admitted_total"] == 3, rooms
        assert rooms["portal"]["mode"] == "off" and rooms["campaign"]["admit_per_s"] == 0.01
        assert st["waiting"] == 3, st
        assert metric(e, "einlass_waiting", "campaign") == 3
        assert metric(e, "einlass_admitted_total", "kiosk") == 3
        assert metric(e, "einlass_admit_per_second", "kiosk") == 200
        assert metric(e, "einlass_queueing", "portal") == 0
    finally:
        e.stop()


def test_admin_changes_one_room_with_room_query_or_every_room_without():
    e = start()
    try:
        assert e.admin("POST", "/pause?room=kiosk")[0] == 204
        rooms = {x["name"]: x for x in e.status()["rooms"]}
        assert rooms["kiosk"]["paused"] and not rooms["campaign"]["paused"], rooms
        assert metric(e, "einlass_paused", "kiosk") == 1
        assert metric(e, "einlass_paused", "campaign") == 0
        # paused: the kiosk takes a place and admits nobody
        r, jar = request(e.port, "/", host="kiosk.example.org", accept="application/json")
        assert r.json().get("paused") is True, r.body
        time.sleep(0.5)
        r, jar = request(e.port, "/_einlass/status", host="kiosk.example.org", cookies=jar,
                         accept="application/json")
        assert r.json()["state"] == "waiting", r.body
        assert e.admin("POST", "/resume")[0] == 204  # every room
        assert not any(x["paused"] for x in e.status()["rooms"])
        # a rate for one room, checked against that room's bounds
        assert e.admin("POST", "/rate?room=campaign", "5")[0] == 204
        rooms = {x["name"]: x for x in e.status()["rooms"]}
        assert rooms["campaign"]["admit_per_s"] == 5 and rooms["kiosk"]["admit_per_s"] == 200
        code, body = e.admin("POST", "/rate?room=campaign", "100")
        assert code == 400 and "[room campaign]" in body and "max_admit_per_s" in body, body
        assert e.admin("POST", "/rate?room=kiosk", "100")[0] == 204  # the kiosk's bounds
        # the mode of [room] by its name; an unknown room is 404 naming the rooms
        assert e.admin("POST", "/mode?room=portal", "on")[0] == 204
        r, _ = request(e.port, "/book", accept="application/json")
        assert r.status == 503 and "einlass_ticket" in set_cookies(r), r.status
        code, body = e.admin("POST", "/mode?room=nope", "on")
        assert code == 404 and "portal, campaign, kiosk" in body, (code, body)
    finally:
        e.stop()


def test_release_in_a_named_room_clears_that_rooms_pass():
    e = start()
    try:
        jar = kiosk_admitted(e)
        r, _ = request(e.port, "/release", host="kiosk.example.org", cookies=jar)
        assert r.status == 200, r.status
        cleared = [v for v in r.all("Set-Cookie") if v.startswith("einlass_pass_kiosk=;")]
        assert cleared and "Max-Age=0" in cleared[0], r.all("Set-Cookie")
        # the released pass admits no more
        r, _ = request(e.port, "/", host="kiosk.example.org", cookies=jar,
                       accept="application/json")
        assert r.status == 429, r.status
    finally:
        e.stop()


def test_reload_adds_a_room_and_keeps_the_others_places():
    e = start()
    try:
        r, jar = request(e.port, "/campaign/x", accept="application/json")
        r, jar2 = request(e.port, "/campaign/y", accept="application/json")
        with open(e.conf, "a") as f:
            f.write(SECOND)
        assert "in effect" in e.reload().group(0)
        r, _ = request(e.port, "/", host="second.example.org", accept="application/json")
        assert r.status == 503 and "einlass_ticket_second" in set_cookies(r), r.headers
        wait_until(lambda: metric(e, "einlass_waiting", "second") == 1, what="second's waiting")
        # the campaign's second ticket is still second
        r, _ = request(e.port, "/_einlass/status", cookies=jar2, accept="application/json")
        assert r.json()["position"] == 2, r.body
    finally:
        e.stop()


def test_two_instances_on_redis_share_each_rooms_line_apart_from_the_others():
    r_ = Redis()
    try:
        room = ("mode = on\nstore = redis\nredis = 127.0.0.1:%d\nname = shr\nadapt = off\n"
                "admit_per_s = 0.01\nmin_admit_per_s = 0.01\npoll_s = 1\n" % r_.port)
        path = write_conf(conf_text(B.port, room=room, extra=ROOMS))
        with open(os.path.join(os.path.dirname(path), "campaign.html"), "w") as f:
            f.write(CAMPAIGN_PAGE)
        a, b = Einlass(path), Einlass(path)
        try:
            for e in (a, b):
                wait_until(lambda: all(x["store"] == "redis" for x in e.status()["rooms"]),
                           timeout=10, what="every room on redis")
            jars = []
            for i in range(6):  # one line for the campaign across both instances
                r, jar = request((a, b)[i % 2].port, "/campaign/x", accept="application/json")
                assert r.json()["position"] == i + 1, (i, r.body)
                jars.append(jar)
            r, _ = request(b.port, "/book", accept="application/json")  # [room]: its own line
            assert r.status == 503 and r.json()["position"] == 1, r.body
            # a ticket from one instance is known to the other, in its room
            r, _ = request(b.port, "/_einlass/status", cookies=jars[2], accept="application/json")
            assert r.json()["position"] == 3, r.body
            keys = r_.cmd("KEYS", "*").decode(errors="replace")
            assert "{shr.campaign}" in keys and "{shr}" in keys, keys
        finally:
            a.stop()
            b.stop()
    finally:
        r_.stop()


def rfc3339(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def test_a_scheduled_opening_of_a_named_room_pre_queues_that_room_only():
    opens = rfc3339(time.time() + 120)
    e = start(extra=ROOMS + "\n[event campaign-opening]\nopens_at = %s\nprequeue_s = 600\n"
              "room = campaign\n" % opens)
    try:
        wait_until(lambda: e.status()["events"] and
                   e.status()["events"][0]["state"] == "prequeue", what="the pre-queue")
        r, _ = request(e.port, "/campaign/x", accept="application/json")
        assert r.json()["state"] == "prequeue", r.body
        assert r.json()["event"] == "campaign-opening", r.body
        assert "einlass_ticket_campaign" in set_cookies(r), r.headers
        r, _ = request(e.port, "/", host="kiosk.example.org", accept="application/json")
        assert r.json()["state"] == "waiting", r.body  # the kiosk has no event
        r, _ = request(e.port, "/book")
        assert r.status == 200, r.status  # [room] is off
        assert metric(e, "einlass_queueing", "campaign") == 1
        # the admin API lists it with its room, and adds one to another room
        code, body = e.admin("GET", "/events")
        assert code == 200 and '"room":"campaign"' in body, body
        code, body = e.admin("POST", "/events", "name = kiosk-opening\nopens_at = %s\n"
                             "prequeue_s = 600\nroom = kiosk\n" % opens)
        assert code == 201 and '"room":"kiosk"' in body, (code, body)
        r, _ = request(e.port, "/", host="kiosk.example.org", accept="application/json")
        assert r.json()["state"] == "prequeue" and r.json()["event"] == "kiosk-opening", r.body
        code, body = e.admin("POST", "/events", "name = campaign-opening\nopens_at = %s\n"
                             "room = kiosk\n" % opens)
        assert code == 409, (code, body)  # names are unique across rooms
        code, body = e.admin("POST", "/events", "name = x\nopens_at = %s\nroom = nope\n" % opens)
        assert code == 400 and "no [room nope]" in body, (code, body)
        assert e.admin("DELETE", "/events/kiosk-opening")[0] == 204
    finally:
        e.stop()


def test_config_with_a_room_error_names_file_and_line():
    path = write_conf(conf_text(B.port, room="mode = off\n",
                                extra="\n[room bad]\nmode = on\n"))
    from einlass_test import BIN
    import subprocess
    p = subprocess.run([BIN, "-t", "-c", path], capture_output=True, text=True)
    assert p.returncode == 1, p
    assert re.search(r"einlass\.conf:\d+: \[room bad\]", p.stderr), p.stderr


if __name__ == "__main__":
    B = start_backend()
    run([test_rooms_are_chosen_by_path_and_host_each_with_its_page_status_and_cookies,
         test_a_ticket_or_pass_of_one_room_counts_as_none_in_another,
         test_each_room_meters_at_its_own_rate_and_reports_it_per_room,
         test_admin_changes_one_room_with_room_query_or_every_room_without,
         test_release_in_a_named_room_clears_that_rooms_pass,
         test_reload_adds_a_room_and_keeps_the_others_places,
         test_two_instances_on_redis_share_each_rooms_line_apart_from_the_others,
         test_a_scheduled_opening_of_a_named_room_pre_queues_that_room_only,
         test_config_with_a_room_error_names_file_and_line])
