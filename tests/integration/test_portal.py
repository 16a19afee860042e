#!/usr/bin/env python3
"""bench/portal.py, the demo portal the other integration tests stand einlass in
front of: its pages, its Server-Timing header, the release header after a
booking, and a simulated database whose latency rises under load."""
import http.client
import os
import re
import subprocess
import sys
import threading
import unittest

SRC = os.environ.get("EL_SOURCE_DIR",
                     os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def db_ms(resp):
    m = re.fullmatch(r"db;dur=([0-9.]+)", resp.getheader("Server-Timing", ""))
    assert m, "no Server-Timing: db;dur= in %r" % resp.getheaders()
    return float(m.group(1))


class PortalTest(unittest.TestCase):
    def setUp(self):
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(SRC, "bench", "portal.py"), "--port", "0",
             "--db-connections", "2", "--db-ms", "30", "--slots", "3"],
            stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        m = re.fullmatch(r"portal listening on 127\.0\.0\.1:(\d+)\n", line)
        self.assertIsNotNone(m, line)
        self.port = int(m.group(1))

    def tearDown(self):
        self.proc.terminate()
        self.proc.wait(10)
        self.proc.stdout.close()

    def request(self, method, path, body=None, conn=None):
        c = conn or http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        headers = {"Content-Type": "application/x-www-form-urlencoded"} if body else {}
        c.request(method, path, body=body, headers=headers)
        resp = c.getresponse()
        text = resp.read().decode()
        if conn is None:
            c.close()
        return resp, text

    def test_book_view_cancel(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        resp, text = self.request("GET", "/", conn=conn)
        self.assertEqual(resp.status, 200)
        self.assertIn("3 free appointments", text)
        self.assertGreaterEqual(db_ms(resp), 30 * 0.9)
        self.assertIsNone(resp.getheader("Einlass-Release"))

        resp, text = self.request("POST", "/book", "slot=2&name=Ada", conn=conn)  # keep-alive
        self.assertEqual(resp.status, 200)
        self.assertEqual(resp.getheader("Einlass-Release"), "1")
        appt = re.search(r'href="(/appointments/[0-9a-f]+)"', text).group(1)

        resp, _ = self.request("POST", "/book", "slot=2&name=Bob")
        self.assertEqual(resp.status, 409)
        self.assertIsNone(resp.getheader("Einlass-Release"))
        resp, text = self.request("GET", appt)
        self.assertEqual(resp.status, 200)
        self.assertIn("Ada", text)
        self.assertIn("2 free appointments", self.request("GET", "/")[1])

        resp, _ = self.request("POST", appt + "/cancel")
        self.assertEqual(resp.status, 200)
        self.assertIsNone(resp.getheader("Einlass-Release"))
        self.assertEqual(self.request("GET", appt)[0].status, 404)
        self.assertEqual(self.request("POST", appt + "/cancel")[0].status, 404)
        self.assertIn("3 free appointments", self.request("GET", "/")[1])

    def test_every_response_has_server_timing(self):
        for method, path in (("GET", "/healthz"), ("GET", "/nowhere"), ("POST", "/book"),
                             ("GET", "/_portal/stats")):
            resp, _ = self.request(method, path)
            db_ms(resp)
        self.assertEqual(self.request("GET", "/nowhere")[0].status, 404)

    def test_latency_rises_under_load_and_with_db_ms(self):
        resp, _ = self.request("POST", "/_portal/db-ms", "100")
        self.assertEqual(resp.status, 204)
        self.assertGreaterEqual(db_ms(self.request("GET", "/healthz")[0]), 100 * 0.9)
        self.assertIn('"db_ms": 100.0', self.request("GET", "/_portal/stats")[1])
        self.assertEqual(self.request("POST", "/_portal/db-ms", "fast")[0].status, 400)

        # 6 queries at once on 2 connections of 100 ms: some wait for a
        # connection (up to ~200 ms); without the pool all would take ~100 ms.
        times = []
        start = threading.Barrier(6)

        def one():
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            conn.connect()
            start.wait()
            times.append(db_ms(self.request("GET", "/healthz", conn=conn)[0]))
            conn.close()
        threads = [threading.Thread(target=one) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(len(times), 6)
        self.assertGreaterEqual(max(times), 150)

if __name__ == "__main__":
    unittest.main()
