#!/usr/bin/env python3
"""Scheduled openings (issue 13, item 1) against the real binary, a real
backend and a real redis-server on 127.0.0.1: 30 visitors arrive in an
event's pre-queue in a known order; at the opening their places are a
permutation of 1..30 that is not the arrival order; later arrivals come
after all of them; two instances on one Redis agree on the order; a pass
holder is never held; the admin API lists, adds and cancels (a cancelled
pre-queue keeps arrival order); a copied pre-queue ticket has one place.
Times are chosen a few seconds ahead and only waited for (polling)."""
import time

from einlass_test import Einlass, Redis, conf_text, run, start_backend, wait_until, write_conf
from test_room import admitted_in_rounds, poll, request

B = None
R = None
LEAD_S = 8  # the opening this far ahead: time to queue 30 visitors


def rfc3339(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def room(store="memory", name="ev", rate=0.01, extra=""):
    redis = "redis = 127.0.0.1:%d\n" % R.port if store == "redis" else ""
    return ("mode = auto\nstore = %s\n%sname = %s\nadapt = off\nadmit_per_s = %g\n"
            "min_admit_per_s = 0.01\npoll_s = 1\n%s" % (store, redis, name, rate, extra))


def event_section(name, opens, prequeue_s=3600):
    return "[event %s]\nopens_at = %s\nprequeue_s = %d\n" % (name, rfc3339(opens), prequeue_s)


def arrive(port, want="prequeue"):
    """A newcomer: its 503 answer's state and its ticket cookie."""
    r, ck = request(port, "GET", "/")
    assert r.status == 503, (r.status, r.body)
    assert "einlass_ticket" in ck, r.headers
    assert r.json()["state"] == want, r.body
    return r.json(), {"einlass_ticket": ck["einlass_ticket"]}


def events(e):
    code, body = e.admin("GET", "/events")
    assert code == 200, (code, body)
    import json
    return {ev["name"]: ev for ev in json.loads(body)["events"]}


def wait_drawn(e, name):
    return wait_until(lambda: events(e)[name]["drawn"] and events(e)[name], timeout=LEAD_S + 20,
                      what="the draw of %s" % name)


def places(port, tickets):
    """Each pre-queue ticket's place once drawn (the cookie becomes a plain
    ticket for it)."""
    out = []
    for i, ck in enumerate(tickets):
        doc, after = poll(port, ck)
        assert doc["state"] == "waiting", (i, doc)
        assert after["einlass_ticket"] != ck["einlass_ticket"], "no plain ticket given"
        out.append(doc["position"])
    return out


def test_prequeue_is_drawn_at_random_and_later_arrivals_follow():
    opens = time.time() + LEAD_S
    e = Einlass(write_conf(conf_text(B.port, room=room(), extra=event_section("vacc", opens))))
    try:
        # Before the event's pre-queue (it began an hour ago: it is on) a pass
        # holder would have one; here the room queues from the first request.
        wait_until(lambda: e.status()["queueing"], what="the pre-queue holds the room")
        tickets = []
        for i in range(30):
            doc, ck = arrive(e.port)
            assert doc["event"] == "vacc" and doc["opens_at"] == rfc3339(opens), doc
            assert 0 < doc["opens_in_s"] <= LEAD_S + 1, doc
            tickets.append(ck)
        doc, _ = poll(e.port, tickets[0])  # before the opening: no place yet
        assert doc["state"] == "prequeue", doc
        assert events(e)["vacc"]["state"] == "prequeue"
        wait_until(lambda: events(e)["vacc"]["prequeue"] == 30, what="30 in the pre-queue")
        code, metrics = e.admin("GET", "/metrics")
        assert 'einlass_event_prequeue{event="vacc"} 30' in metrics, metrics[-600:]
        st = e.status()
        assert {"name": "vacc", "state": "prequeue", "prequeue": 30} in st["events"], st
        ev = wait_drawn(e, "vacc")
        assert ev["state"] == "draining" and ev["prequeue"] == 30, ev
        late = [arrive(e.port, want="waiting")[1] for _ in range(5)]
        got = places(e.port, tickets)
        assert sorted(got) == list(range(1, 31)), got
        assert got != list(range(1, 31)), "the arrival order was kept: %r" % got
        late_places = [poll(e.port, ck)[0]["position"] for ck in late]
        assert late_places == list(range(31, 36)), late_places
        # Admitted: the pre-queue in its drawn order, then the later ones
        # (mode on: once all are reached the auto room would open, and a
        # reached ticket's poll would read "open").
        assert e.admin("POST", "/mode", "on")[0] == 204
        assert e.admin("POST", "/rate", "40")[0] == 204
        plain = [dict(poll(e.port, ck)[1]) for ck in tickets]
        order = sorted(range(30), key=lambda i: got[i])
        rounds = admitted_in_rounds(e.port, [plain[i] for i in order] + late, timeout=60)
        assert rounds == sorted(rounds), rounds
        assert max(rounds[:30]) <= min(rounds[30:]), rounds
        wait_until(lambda: events(e)["vacc"]["state"] == "over", what="drained: over")
        assert e.stop() == 0
    finally:
        e.stop()


def test_two_instances_on_one_redis_agree():
    opens = time.time() + LEAD_S
    text = conf_text(B.port, room=room("redis", name="ev2"), extra=event_section("pair", opens))
    a = Einlass(write_conf(text))
    b = Einlass(write_conf(text))
    try:
        for x in (a, b):
            wait_until(lambda: x.status()["store"] == "redis", what="store redis")
        tickets = [arrive((a, b)[i % 2].port)[1] for i in range(30)]
        wait_drawn(a, "pair")
        wait_drawn(b, "pair")
        on_a = places(a.port, tickets)
        on_b = places(b.port, tickets)
        assert on_a == on_b, (on_a, on_b)
        assert sorted(on_a) == list(range(1, 31)), on_a
        assert on_a != list(range(1, 31)), on_a
        assert events(a)["pair"]["prequeue"] == 30 and events(b)["pair"]["prequeue"] == 30
        late = arrive(b.port, want="waiting")[1]
        assert poll(a.port, late)[0]["position"] == 31
        assert a.stop() == 0 and b.stop() == 0
    finally:
        a.stop()
        b.stop()


def test_admin_add_list_cancel_and_a_copied_ticket():
    e = Einlass(write_conf(conf_text(B.port, room=room(name="ev3"))))
    try:
        _, holder = request(e.port, "GET", "/page")  # the room is open: a pass
        holder = {"einlass_pass": holder["einlass_pass"]}
        assert events(e) == {}
        bad = [("name = x\nopens_at = 2027-03-01T09:00:00\n", "needs an offset"),
               ("opens_at = 2027-03-01T09:00:00Z\n", "name: missing"),
               ("name = a b\nopens_at = 2027-03-01T09:00:00Z\n", "may hold only"),
               ("name = x\nopens_at = 2027-03-01T09:00:00Z\nprequeue_s = -1\n", "0..604800"),
               ("name = x\nopens_at = 2027-03-01T09:00:00Z\nends_at = 2027-03-01T08:00:00Z\n",
                "ends_at must be after opens_at"),
               ("name = x\nbogus = 1\n", "unknown key 'bogus'")]
        for body, why in bad:
            code, text = e.admin("POST", "/events", body)
            assert code == 400 and why in text, (body, code, text)
        body = "name = late\nopens_at = %s\nprequeue_s = 600\n" % rfc3339(time.time() + 300)
        code, text = e.admin("POST", "/events", body)
        assert code == 201 and '"state":"prequeue"' in text and '"source":"api"' in text, text
        assert e.admin("POST", "/events", body)[0] == 409
        wait_until(lambda: e.status()["queueing"], what="the pre-queue holds the room")
        r, _ = request(e.port, "GET", "/page", holder)
        assert r.status == 200, "a pass holder waited in a pre-queue"
        tickets = [arrive(e.port)[1] for _ in range(8)]
        copy = dict(tickets[3])
        assert e.admin("DELETE", "/events/nope")[0] == 404
        assert e.admin("DELETE", "/events/late")[0] == 204
        wait_until(lambda: events(e)["late"]["drawn"], what="the cancelled event drawn")
        got = places(e.port, tickets)
        assert got == list(range(1, 9)), got  # cancelled: arrival order
        doc, _ = poll(e.port, copy)  # the copy: the same place, not a second one
        assert doc["state"] == "waiting" and doc["position"] == 4, doc
        assert e.admin("GET", "/events/late")[0] == 405
        assert e.stop() == 0
    finally:
        e.stop()


def test_prequeue_running_at_start_takes_the_first_newcomer():
    """The first tick used to come 100 ms after the start: a newcomer in that
    time joined the plain line, ahead of the whole pre-queue."""
    conf = conf_text(B.port, room=room(name="ev4").replace("mode = auto", "mode = on"),
                     extra=event_section("early", time.time() + 300))
    e = Einlass(write_conf(conf))
    try:
        arrive(e.port)  # at once after "started": a pre-queue ticket
    finally:
        e.stop()


def test_event_added_while_its_prequeue_runs_takes_the_next_newcomer():
    """An event added by the admin API held its room only from the next
    tick: a newcomer right after the 201 joined the plain line."""
    e = Einlass(write_conf(conf_text(B.port, room=room(name="ev5").replace("mode = auto",
                                                                           "mode = on"))))
    try:
        arrive(e.port, want="waiting")
        body = "name = now\nopens_at = %s\nprequeue_s = 600\n" % rfc3339(time.time() + 300)
        assert e.admin("POST", "/events", body)[0] == 201
        arrive(e.port)  # at once: a pre-queue ticket
    finally:
        e.stop()


if __name__ == "__main__":
    B = start_backend()
    R = Redis()
    try:
        run([test_prequeue_is_drawn_at_random_and_later_arrivals_follow,
             test_two_instances_on_one_redis_agree,
             test_admin_add_list_cancel_and_a_copied_ticket,
             test_prequeue_running_at_start_takes_the_first_newcomer,
             test_event_added_while_its_prequeue_runs_takes_the_next_newcomer])
    finally:
        R.stop()
        B.stop()
