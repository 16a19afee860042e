#!/usr/bin/env python3
"""The admin API against browsers (hostile-testing issue, defect 7): a page in
the operator's browser must not steer a loopback admin API that has no token,
while curl and scripts keep working unchanged; an exposed admin API without a
token is warned about, naming the address it really is on."""
import shutil
import socket
import subprocess

from einlass_test import BIN, Einlass, conf_text, run, start_backend, write_conf

B = None


def setup():
    global B
    B = start_backend()


def raw(port, head, body=b""):
    """One request on its own connection; returns (status, body text)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(head.encode() + b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body)
              + body)
    data = b""
    while True:
        d = s.recv(65536)
        if not d:
            break
        data += d
    s.close()
    head, _, rest = data.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), rest.decode()


def test_browser_cross_site_post_to_admin_is_refused():
    e = Einlass(write_conf(conf_text(B.port, room="mode = auto")))
    try:
        a = e.admin_port
        # what a form on http://evil.example posts with enctype=text/plain
        st, body = raw(a, "POST /mode HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                          "Origin: http://evil.example\r\nContent-Type: text/plain\r\n" % a, b"off")
        assert st == 403 and "cross-site" in body, (st, body)
        st, body = raw(a, "POST /mode HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                          "Sec-Fetch-Site: cross-site\r\n"
                          "Content-Type: application/x-www-form-urlencoded\r\n" % a, b"off")
        assert st == 403 and "Sec-Fetch-Site" in body, (st, body)
        # DNS rebinding: the page's name resolves to 127.0.0.1, same-origin
        st, body = raw(a, "POST /mode HTTP/1.1\r\nHost: evil.example:%d\r\n"
                          "Origin: http://evil.example:%d\r\nSec-Fetch-Site: same-origin\r\n"
                          % (a, a), b"off")
        assert st == 403 and "Host" in body, (st, body)
        assert e.status()["mode"] == "auto"
    finally:
        assert e.stop() == 0


def test_curl_post_to_admin_still_works():
    curl = shutil.which("curl")
    assert curl, "curl not found (tests/install-deps.sh installs it)"
    e = Einlass(write_conf(conf_text(B.port, room="mode = auto")))
    try:
        url = "http://127.0.0.1:%d/mode" % e.admin_port
        p = subprocess.run([curl, "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST",
                            "-d", "on", url], capture_output=True, timeout=30)
        assert p.stdout.decode() == "204", (p.stdout, p.stderr)
        assert e.status()["mode"] == "on"
        url = "http://localhost:%d/mode" % e.admin_port
        p = subprocess.run([curl, "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-4",
                            "-d", "off", url], capture_output=True, timeout=30)
        assert p.stdout.decode() == "204", (p.stdout, p.stderr)
        assert e.status()["mode"] == "off"
    finally:
        e.stop()


def test_exposed_admin_without_token_warns_with_its_address():
    # -t checks without binding, so nothing listens beyond 127.0.0.1 here
    path = write_conf(conf_text(B.port).replace("admin_listen = 127.0.0.1:0",
                                                "admin_listen = 0.0.0.0:9090"))
    p = subprocess.run([BIN, "-t", "-c", path], capture_output=True, timeout=30)
    err = p.stderr.decode()
    assert p.returncode == 0, err
    assert "warning: admin API on 0.0.0.0:9090 is not on loopback and admin_token is empty" \
        in err, err
    assert "127.0.0.1" not in err, err
    with open(path) as f:
        text = f.read()
    with open(path, "w") as f:
        f.write(text.replace("[server]\n", "[server]\nadmin_token = s3cret\n", 1))
    p = subprocess.run([BIN, "-t", "-c", path], capture_output=True, timeout=30)
    assert p.returncode == 0 and "warning" not in p.stderr.decode(), p.stderr


def test_admin_log_names_the_bound_address():
    e = Einlass(write_conf(conf_text(B.port)))
    try:
        text = e.proc.text()
        assert "admin API on 127.0.0.1:%d" % e.admin_port in text, text
        assert "not on loopback" not in text, text
    finally:
        e.stop()


if __name__ == "__main__":
    setup()
    try:
        run([test_browser_cross_site_post_to_admin_is_refused, test_curl_post_to_admin_still_works,
             test_exposed_admin_without_token_warns_with_its_address,
             test_admin_log_names_the_bound_address])
    finally:
        B.stop()
