#!/usr/bin/env python3
"""The request target (hostile-testing issue, defects 2 and 5), against the
real binary and a real backend on 127.0.0.1: routes match the normalised
path, so dot segments and encoded slashes cannot lead a queued path through
a bypass route; targets whose meaning differs between decoders are refused
with 400; the backend receives the normalised path, and a Host taken from an
absolute-form target (or, for HTTP/1.0 without one, the backend address)."""
from einlass_test import Client, Einlass, conf_text, get, run, start_backend, write_conf

B = None
ROUTES = """
[route static]
match = GET /static/**
action = bypass

[route cancel]
match = POST /appointments/*/cancel
action = bypass
"""


def setup():
    global B
    B = start_backend()


def queueing():
    """mode = on and a rate so low that every newcomer waits."""
    room = ("mode = on\nstore = memory\nadapt = off\nadmit_per_s = 0.01\n"
            "min_admit_per_s = 0.01\npoll_s = 1\n")
    return Einlass(write_conf(conf_text(B.port, room=room, extra=ROUTES)))


def proxy():
    return Einlass(write_conf(conf_text(B.port, room="mode = off")))


def backend_requests():
    r, _ = get(B.port, "/_stats")
    return r.json()["requests"]


def raw(port, data):
    """Send raw bytes on a fresh connection; the response."""
    c = Client(port)
    try:
        c.send(data)
        return c.read_response()
    finally:
        c.close()


def request(port, method, target):
    c = Client(port)
    try:
        return c.request(method, target)
    finally:
        c.close()


def echo(port, data):
    r = raw(port, data)
    assert r.status == 200, (r.status, r.body)
    d = r.json()
    return d, [v for k, v in d["headers"] if k.lower() == "host"]


def test_dotdot_path_does_not_bypass_queue():
    e = queueing()
    try:
        n0 = backend_requests()
        r = request(e.port, "GET", "/static/app.css")  # the bypass itself works
        assert r.status == 200, r.status
        r = request(e.port, "GET", "/static/./x/../app.css")  # ... on the normalised path
        assert r.status == 200, r.status
        assert backend_requests() == n0 + 3  # the two, and this count
        n0 += 3
        cases = [("GET", "/static/../booking", 503),      # resolves to /booking: queued
                 ("GET", "/static/%2e%2e/booking", 400),  # encoded dot segment
                 ("GET", "/static/..%2fbooking", 400),    # encoded slash
                 ("POST", "/appointments/%2e%2e%2fbook/cancel", 400),
                 ("POST", "/appointments/../book/cancel", 503),
                 ("GET", "/static/..\\booking", 400),      # backslash
                 ("GET", "/static/..;/booking", 400)]      # dot segment with parameters
        for method, target, want in cases:
            r = request(e.port, method, target)
            assert r.status == want, (method, target, r.status, r.body)
        assert backend_requests() == n0 + 1, "a queued path reached the backend"
        assert e.stop() == 0
    finally:
        e.stop()


def test_normalised_path_is_forwarded_query_untouched():
    e = proxy()
    try:
        d, _ = echo(e.port, b"GET /echo/./x/../y%7e%41//z?q=/../%2e HTTP/1.1\r\nHost: t\r\n\r\n")
        assert d["path"] == "/echo/y~A/z?q=/../%2e", d["path"]
        d, _ = echo(e.port, b"GET /echo/%c3%a4?x HTTP/1.1\r\nHost: t\r\n\r\n")
        assert d["path"] == "/echo/%C3%A4?x", d["path"]
    finally:
        e.stop()


def test_absolute_form_target_forwarded_with_its_authority_as_host():
    e = proxy()
    try:
        d, host = echo(e.port, b"GET http://portal/echo/a?b=1 HTTP/1.1\r\nHost: evil.example\r\n"
                               b"\r\n")
        assert d["path"] == "/echo/a?b=1", d["path"]
        assert host == ["portal"], host
        d, host = echo(e.port, b"GET http://portal:8443/echo HTTP/1.0\r\n\r\n")
        assert d["path"] == "/echo" and host == ["portal:8443"], (d["path"], host)
        r = raw(e.port, b"GET http://user@portal/echo HTTP/1.1\r\nHost: portal\r\n\r\n")
        assert r.status == 400, r.status  # userinfo: refused
    finally:
        e.stop()


def test_http10_without_host_gets_backend_address_as_host():
    e = proxy()
    try:
        d, host = echo(e.port, b"GET /echo HTTP/1.0\r\n\r\n")
        assert host == ["127.0.0.1:%d" % B.port], host
        d, host = echo(e.port, b"GET /echo HTTP/1.0\r\nHost: mine\r\n\r\n")
        assert host == ["mine"], host
    finally:
        e.stop()


def test_http11_without_host_or_with_two_is_400():
    e = proxy()
    try:
        n0 = backend_requests()
        assert raw(e.port, b"GET /echo HTTP/1.1\r\n\r\n").status == 400
        assert raw(e.port, b"GET /echo HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n").status == 400
        assert raw(e.port, b"GET http://a/echo HTTP/1.1\r\n\r\n").status == 400
        assert backend_requests() == n0 + 1  # only this count
    finally:
        e.stop()


if __name__ == "__main__":
    setup()
    try:
        run([test_dotdot_path_does_not_bypass_queue,
             test_normalised_path_is_forwarded_query_untouched,
             test_absolute_form_target_forwarded_with_its_authority_as_host,
             test_http10_without_host_gets_backend_address_as_host,
             test_http11_without_host_or_with_two_is_400])
    finally:
        B.stop()
