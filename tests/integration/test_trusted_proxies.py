#!/usr/bin/env python3
"""Clients behind a TLS terminator or load balancer (hostile-testing issue,
defect 10): with [server] trusted_proxies the client address comes from
X-Forwarded-For (rightmost untrusted hop) or a PROXY protocol v2 header, and
bypass_from, the access log and the backend's X-Forwarded-For see it; from
anyone else X-Forwarded-For counts for nothing."""
import socket
import struct

from einlass_test import Client, Einlass, conf_text, run, start_backend, write_conf

B = None

PP2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def setup():
    global B
    B = start_backend()


def start(server="", room="mode = off"):
    return Einlass(write_conf(conf_text(B.port, server=server, room=room)))


def backend_xff(r):
    assert r.status == 200, (r.status, r.body)
    hdrs = {k.lower(): v for k, v in r.json()["headers"]}
    return hdrs.get("x-forwarded-for")


def pp2(cmd=1, fam=0x11, addrs=None, tlv=b""):
    if addrs is None:
        addrs = socket.inet_aton("192.0.2.7") + socket.inet_aton("127.0.0.1") + \
            struct.pack("!HH", 4711, 80)
    body = addrs + tlv
    return PP2_SIG + bytes([0x20 | cmd, fam]) + struct.pack("!H", len(body)) + body


def get_raw(c, prefix=b"", headers=()):
    lines = ["GET /echo HTTP/1.1", "Host: test"] + ["%s: %s" % h for h in headers]
    c.send(prefix + ("\r\n".join(lines) + "\r\n\r\n").encode())
    return c.read_response()


BYPASS_ON = "mode = on\nbypass_from = 10.20.0.0/16"


def test_bypass_from_sees_client_behind_trusted_proxy():
    e = start(server="trusted_proxies = 127.0.0.1/32", room=BYPASS_ON)
    try:
        c = Client(e.port)
        r = c.request("GET", "/echo", [("X-Forwarded-For", "10.20.1.2")])
        assert r.status == 200, r.status  # bypassed: mode = on queues everyone else
        assert backend_xff(r) == "10.20.1.2, 127.0.0.1"
        # the next request on the same connection is a different client
        r = c.request("GET", "/echo", [("X-Forwarded-For", "198.51.100.1")])
        assert r.status == 503, r.status
        c.close()
    finally:
        assert e.stop() == 0


def test_bypass_from_ignores_xff_from_untrusted_peer():
    e = start(room=BYPASS_ON)
    try:
        c = Client(e.port)
        r = c.request("GET", "/echo", [("X-Forwarded-For", "10.20.1.2")])
        assert r.status == 503, r.status
        c.close()
    finally:
        assert e.stop() == 0


def test_untrusted_peer_xff_not_passed_to_backend():
    e = start()
    try:
        c = Client(e.port)
        r = c.request("GET", "/echo", [("X-Forwarded-For", "10.20.1.2"),
                                       ("X-Forwarded-For", "10.20.1.3")])
        assert backend_xff(r) == "127.0.0.1", backend_xff(r)
        c.close()
    finally:
        assert e.stop() == 0


def test_xff_spoof_left_of_untrusted_hop_does_not_bypass():
    e = start(server="trusted_proxies = 127.0.0.1/32", room=BYPASS_ON)
    try:
        c = Client(e.port)
        # 203.0.113.5 reached the trusted proxy; what it claimed before counts for nothing
        r = c.request("GET", "/echo", [("X-Forwarded-For", "10.20.1.2, 203.0.113.5")])
        assert r.status == 503, r.status
        c.close()
    finally:
        assert e.stop() == 0


def test_access_log_shows_client_behind_trusted_proxy():
    e = start(server="trusted_proxies = 127.0.0.1/32, 10.0.0.0/8\naccess_log = on")
    try:
        c = Client(e.port)
        r = c.request("GET", "/echo", [("X-Forwarded-For", "198.51.100.9"),
                                       ("X-Forwarded-For", "10.0.0.5")])
        assert backend_xff(r) == "198.51.100.9, 10.0.0.5, 127.0.0.1", backend_xff(r)
        e.proc.wait_line(r'access 198\.51\.100\.9 "GET /echo"')
        c.close()
    finally:
        assert e.stop() == 0


PP = "proxy_protocol = v2\ntrusted_proxies = 127.0.0.1/32\naccess_log = on"


def test_proxy_v2_header_sets_client_address():
    e = start(server=PP)
    try:
        c = Client(e.port)
        r = get_raw(c, pp2(), [("X-Forwarded-For", "10.20.1.2")])
        # 192.0.2.7 is not a trusted proxy: its X-Forwarded-For is replaced
        assert backend_xff(r) == "192.0.2.7", backend_xff(r)
        e.proc.wait_line(r'access 192\.0\.2\.7 "GET /echo"')
        r = get_raw(c)  # the header comes once, at the start of the connection
        assert backend_xff(r) == "192.0.2.7", backend_xff(r)
        c.close()
        c = Client(e.port)  # IPv6 source, with a TLV to skip
        addrs = socket.inet_pton(socket.AF_INET6, "2001:db8::7") + \
            socket.inet_pton(socket.AF_INET6, "::1") + struct.pack("!HH", 1, 2)
        r = get_raw(c, pp2(fam=0x21, addrs=addrs, tlv=b"\x04\x00\x02ab"))
        assert backend_xff(r) == "2001:db8::7", backend_xff(r)
        c.close()
        c = Client(e.port)  # LOCAL: the proxy's own connection, e.g. a health check
        r = get_raw(c, pp2(cmd=0, fam=0, addrs=b""), [("X-Forwarded-For", "10.20.1.2")])
        assert backend_xff(r) == "10.20.1.2, 127.0.0.1", backend_xff(r)
        c.close()
    finally:
        assert e.stop() == 0


def test_proxy_protocol_refuses_connection_without_header():
    e = start(server=PP)
    try:
        for prefix in (b"", b"PROXY TCP4 192.0.2.7 127.0.0.1 4711 80\r\n",
                       PP2_SIG + b"\x21\x11\x00\x04abcd"):  # too short for TCP4
            c = Client(e.port)
            r = get_raw(c, prefix)
            assert r.status == 400, (prefix, r.status)
            assert c.closed(), prefix
            c.close()
    finally:
        assert e.stop() == 0


def test_proxy_v2_header_from_untrusted_peer_refused():
    e = start(server="proxy_protocol = v2\ntrusted_proxies = 10.0.0.0/8")
    try:
        c = Client(e.port)
        r = get_raw(c, pp2())
        assert r.status == 400 and b"trusted_proxies" in r.body, (r.status, r.body)
        assert c.closed()
        c.close()
    finally:
        assert e.stop() == 0


def test_proxy_protocol_needs_trusted_proxies():
    import subprocess
    from einlass_test import BIN
    p = write_conf(conf_text(B.port, server="proxy_protocol = v2", room="mode = off"))
    r = subprocess.run([BIN, "-t", "-c", p], capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    assert "proxy_protocol" in r.stderr + r.stdout and "trusted_proxies" in r.stderr + r.stdout, \
        r.stderr


if __name__ == "__main__":
    setup()
    run([test_bypass_from_sees_client_behind_trusted_proxy,
         test_bypass_from_ignores_xff_from_untrusted_peer,
         test_untrusted_peer_xff_not_passed_to_backend,
         test_xff_spoof_left_of_untrusted_hop_does_not_bypass,
         test_access_log_shows_client_behind_trusted_proxy,
         test_proxy_v2_header_sets_client_address,
         test_proxy_protocol_refuses_connection_without_header,
         test_proxy_v2_header_from_untrusted_peer_refused,
         test_proxy_protocol_needs_trusted_proxies])
