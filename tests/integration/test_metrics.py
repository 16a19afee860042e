#!/usr/bin/env python3
"""/metrics from a running einlass, after traffic, checked by Prometheus's own
linter (promtool check metrics, Debian package prometheus, installed by
tests/install-deps.sh). A missing promtool fails the test: it is not skipped."""
import shutil
import subprocess
import urllib.request

from einlass_test import Client, Einlass, conf_text, run, start_backend, wait_until, write_conf

B = None


def setup():
    global B
    B = start_backend()


def fetch_metrics(e):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % e.admin_port, timeout=5) as r:
        assert r.status == 200, r.status
        return r.read()


def test_metrics_pass_promtool_check_after_traffic():
    promtool = shutil.which("promtool")
    assert promtool, "promtool not found: install Debian's prometheus package " \
                     "(bash tests/install-deps.sh test)"
    e = Einlass(write_conf(conf_text(B.port, room="mode = auto",
                                     trigger="window_ms = 60000\nmin_samples = 1")))
    try:
        c = Client(e.port)
        for i in range(30):
            r = c.request("GET", "/page/%d" % i)
            assert r.status == 200, r.status
        c.close()
        # histogram, window percentiles and sample count all carry data now
        wait_until(lambda: e.status()["samples"] >= 30, what="30 latency samples")
        text = fetch_metrics(e)
        assert b"einlass_backend_latency_seconds_count 3" in text, text
        p = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True,
                           timeout=60)
        out = (p.stdout + p.stderr).decode("utf-8", "replace")
        assert p.returncode == 0 and out.strip() == "", \
            "promtool check metrics (rc %d):\n%s\n--- metrics ---\n%s" % (
                p.returncode, out, text.decode())
    finally:
        assert e.stop() == 0


def test_latency_window_is_a_gauge_by_percentile():
    e = Einlass(write_conf(conf_text(B.port, room="mode = off")))
    try:
        text = fetch_metrics(e).decode()
        for p in ("50", "95", "99"):
            assert 'einlass_backend_latency_window_seconds{percentile="%s"} ' % p in text, text
        assert "quantile=" not in text, text
    finally:
        e.stop()


if __name__ == "__main__":
    setup()
    try:
        run([test_metrics_pass_promtool_check_after_traffic,
             test_latency_window_is_a_gauge_by_percentile])
    finally:
        B.stop()
