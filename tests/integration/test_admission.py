#!/usr/bin/env python3
"""Backend admission (issue 10) against the real binary: [backend]
max_concurrency caps the requests in flight to the backend, all workers
together; requests above it wait in einlass (priority routes first) for at
most queue_timeout_ms, then get the waiting answer (GET) or a 503 (others);
in mode auto the first request that has to wait opens the room; 0 is a plain
proxy; a reload changes the limit at once; a client that leaves while it
waits leaves no slot behind.

The backend (backend.py) counts the requests it handles at once (active,
max_active in /_stats); /slow?ms=N sleeps N ms. No assertion depends on
wall-clock speed: waits are generous and states are polled."""
import json
import re
import socket
import threading
import time

from einlass_test import Client, Einlass, conf_text, get, run, start_backend, wait_until, write_conf

JSON = [("Accept", "application/json")]


def conf(backend, limit, timeout_ms=30000, mode="off", routes=""):
    room = "mode = %s\nstore = memory\nadapt = off\npoll_s = 1\n" % mode
    return conf_text(backend.port, room=room,
                     backend="max_concurrency = %s\nqueue_timeout_ms = %d\n" % (limit, timeout_ms),
                     extra=routes)


def stats(b):
    r, _ = get(b.port, "/_stats")
    return json.loads(r.body)


def reset_max(b):
    r, _ = get(b.port, "/_set?reset_max=1")
    assert r.status == 200


def parallel(n, fn):
    out = [None] * n
    go = threading.Barrier(n)

    def one(i):
        go.wait()
        try:
            out[i] = fn(i)
        except Exception as e:  # noqa: BLE001 - reported by the assertion below
            out[i] = e

    ts = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
    return out


def slow_get(port, ms, cookies=None, headers=()):
    c = Client(port, timeout=60)
    if cookies:
        c.cookies.update(cookies)
    try:
        return c.request("GET", "/slow?ms=%d" % ms, list(headers))
    finally:
        c.close()


def metric(el, name):
    _, text = el.admin("GET", "/metrics")
    m = re.search(r"^%s (\S+)$" % re.escape(name), text, re.M)
    return float(m.group(1)) if m else None


def test_fifty_newcomers_limit_three_never_more_than_three_on_backend():
    b = start_backend()
    el = Einlass(write_conf(conf(b, 3, mode="auto")))
    try:
        reset_max(b)
        res = parallel(50, lambda i: slow_get(el.port, 200, headers=JSON))
        bad = [r for r in res if isinstance(r, Exception)]
        assert not bad, bad[:3]
        ok = [r for r in res if r.status == 200]
        waiting = [r for r in res if r.status == 503 and r.json().get("state") == "waiting"]
        assert len(ok) + len(waiting) == 50, [(r.status, r.body[:80]) for r in res]
        assert len(ok) >= 3, len(ok)
        st = stats(b)
        assert st["max_active"] <= 3, st
        s = el.status()
        assert s["backend_limit"] == 3, s
        # the first request that had to wait opened the room (mode auto)
        assert s["backend_queued_total"] > 0, s
        assert el.proc.wait_line(r"room: queueing newcomers", timeout=10)
        wait_until(lambda: el.status()["backend_inflight"] == 0, what="slots given back")
        assert el.status()["backend_queue"] == 0
    finally:
        el.stop()
        b.stop()


def test_limit_holds_with_mode_off_and_everyone_is_served_in_turn():
    b = start_backend()
    el = Einlass(write_conf(conf(b, 3, mode="off")))
    try:
        reset_max(b)
        res = parallel(30, lambda i: slow_get(el.port, 100))
        assert all(not isinstance(r, Exception) and r.status == 200 for r in res), res[:3]
        assert stats(b)["max_active"] <= 3
        assert metric(el, "einlass_backend_queue_wait_seconds_count") > 0
        assert metric(el, "einlass_backend_limit") == 3
    finally:
        el.stop()
        b.stop()


def test_cancellation_overtakes_the_backend_queue():
    b = start_backend()
    routes = "[route cancel]\nmatch = POST /cancel/*\naction = priority\n"
    el = Einlass(write_conf(conf(b, 1, mode="auto", routes=routes)))
    try:
        # a pass, while the room is open
        r, cookies = get(el.port, "/echo")
        assert r.status == 200 and "einlass_pass" in cookies, (r.status, cookies)
        done = {}
        lock = threading.Lock()

        def normal(i):
            r = slow_get(el.port, 1000, cookies=cookies)
            with lock:
                done["n%d" % i] = (time.time(), r.status)

        holder = threading.Thread(target=normal, args=(0,), daemon=True)
        holder.start()
        wait_until(lambda: stats(b)["active"] == 1, what="the holder on the backend")
        queued = [threading.Thread(target=normal, args=(i,), daemon=True) for i in range(1, 5)]
        for t in queued:
            t.start()
        wait_until(lambda: el.status()["backend_queue"] == 4, what="four waiting")
        c = Client(el.port, timeout=60)
        c.cookies.update(cookies)
        r = c.request("POST", "/cancel/7", [("Content-Length", "0")])
        t_cancel = time.time()
        c.close()
        assert r.status == 200, (r.status, r.body[:200])
        for t in [holder] + queued:
            t.join(60)
        assert all(s == 200 for _, s in done.values()), done
        # the cancellation went right after the holder, before every normal request that waited
        assert all(t_cancel < done["n%d" % i][0] for i in range(1, 5)), (t_cancel, done)
    finally:
        el.stop()
        b.stop()


def test_queue_timeout_get_gets_waiting_json_post_gets_503_with_reason():
    b = start_backend()
    el = Einlass(write_conf(conf(b, 1, timeout_ms=300, mode="off")))
    try:
        holder = threading.Thread(target=slow_get, args=(el.port, 3000), daemon=True)
        holder.start()
        wait_until(lambda: stats(b)["active"] == 1, what="the holder on the backend")
        r = slow_get(el.port, 10, headers=JSON)
        assert r.status == 503, r.status
        assert r.json()["state"] == "waiting", r.body
        assert int(r.header("Retry-After")) > 0
        c = Client(el.port, timeout=30)
        c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi")
        r = c.read_response()
        c.close()
        assert r.status == 503, r.status
        assert b"concurrency limit" in r.body and b"queue_timeout_ms" in r.body, r.body
        assert metric(el, "einlass_backend_queue_timeouts_total") == 2
        holder.join(30)
    finally:
        el.stop()
        b.stop()


def test_max_concurrency_0_is_a_plain_proxy():
    b = start_backend()
    el = Einlass(write_conf(conf(b, 0, mode="off")))
    try:
        reset_max(b)
        res = parallel(10, lambda i: slow_get(el.port, 500))
        assert all(not isinstance(r, Exception) and r.status == 200 for r in res), res[:3]
        assert stats(b)["max_active"] > 3  # nothing held them back
        s = el.status()
        assert s["backend_limit"] == 0 and s["backend_queued_total"] == 0, s
    finally:
        el.stop()
        b.stop()


def test_reload_changes_the_limit_and_hands_new_slots_to_waiters():
    b = start_backend()
    path = write_conf(conf(b, 1, mode="off"))
    el = Einlass(path)
    try:
        ts = [threading.Thread(target=slow_get, args=(el.port, 2000), daemon=True) for _ in range(4)]
        for t in ts:
            t.start()
        wait_until(lambda: el.status()["backend_queue"] == 3, what="three waiting")
        with open(path, "w") as f:
            f.write(conf(b, 5, mode="off"))  # 4 for the normal lane, 1 kept for priority routes
        el.reload()
        wait_until(lambda: el.status()["backend_limit"] == 5, what="the new limit")
        wait_until(lambda: stats(b)["active"] == 4, timeout=20, what="the waiters on the backend")
        for t in ts:
            t.join(30)
    finally:
        el.stop()
        b.stop()


def test_client_leaving_while_it_waits_leaves_no_slot_behind():
    b = start_backend()
    el = Einlass(write_conf(conf(b, 1, mode="off")))
    try:
        holder = threading.Thread(target=slow_get, args=(el.port, 1500), daemon=True)
        holder.start()
        wait_until(lambda: stats(b)["active"] == 1, what="the holder on the backend")
        socks = []
        for _ in range(5):
            s = socket.create_connection(("127.0.0.1", el.port))
            s.sendall(b"GET /slow?ms=10 HTTP/1.1\r\nHost: x\r\n\r\n")
            socks.append(s)
        wait_until(lambda: el.status()["backend_queue"] == 5, what="five waiting")
        for s in socks:
            s.close()
        wait_until(lambda: el.status()["backend_queue"] == 0, what="the waits given up")
        holder.join(30)
        wait_until(lambda: el.status()["backend_inflight"] == 0, what="no slot left")
        r = slow_get(el.port, 10)
        assert r.status == 200
    finally:
        el.stop()
        b.stop()


def test_auto_limit_cold_burst_of_fast_requests_does_not_send_newcomers_to_the_room():
    """max_concurrency = auto starts at min_concurrency (2) and doubles while
    the backend's latency shows no queue. A burst of 20 cookieless clients
    against a backend answering in a millisecond used to open the room on
    the first request that waited for a slot (bench/proxy.py: wrk's 50
    connections got 1.4 M waiting answers). A queue whose delay is far below
    queue_above_ms is the slow start at work, not a rush: nobody is sent to
    the waiting room, everyone gets the backend's answer."""
    b = start_backend()
    room = "mode = auto\nstore = memory\nadapt = on\npoll_s = 1\n"
    el = Einlass(write_conf(conf_text(b.port, room=room, trigger="queue_above_ms = 150\n",
                                      backend="max_concurrency = auto\n")))
    try:
        def burst(i):
            codes = []
            for _ in range(15):
                c = Client(el.port, timeout=60)  # a newcomer each time: no cookie kept
                try:
                    codes.append(c.request("GET", "/slow?ms=1").status)
                finally:
                    c.close()
            return codes
        res = parallel(20, burst)
        assert all(not isinstance(r, Exception) for r in res), [r for r in res if isinstance(r, Exception)][:2]
        codes = [c for r in res for c in r]
        assert codes.count(200) == len(codes), "%d of %d not 200: %s" % (
            len(codes) - codes.count(200), len(codes), sorted(set(codes)))
        s = el.status()
        assert not s["queueing"] and s["waiting"] == 0, s
    finally:
        el.stop()
        b.stop()


if __name__ == "__main__":
    run([
        test_fifty_newcomers_limit_three_never_more_than_three_on_backend,
        test_limit_holds_with_mode_off_and_everyone_is_served_in_turn,
        test_cancellation_overtakes_the_backend_queue,
        test_queue_timeout_get_gets_waiting_json_post_gets_503_with_reason,
        test_max_concurrency_0_is_a_plain_proxy,
        test_reload_changes_the_limit_and_hands_new_slots_to_waiters,
        test_client_leaving_while_it_waits_leaves_no_slot_behind,
        test_auto_limit_cold_burst_of_fast_requests_does_not_send_newcomers_to_the_room,
    ])
