#!/usr/bin/env python3
"""bench/backend.c, the static backend of bench/proxy.py: keep-alive, pipelined
requests answered in order, bodies skipped, heads split across reads."""
import os
import re
import socket
import subprocess
import tempfile
import time
import unittest

SRC = os.environ.get("EL_SOURCE_DIR",
                     os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
OK = b"HTTP/1.1 200 OK\r\n"


class BackendTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        binary = os.path.join(cls.tmp.name, "backend")
        subprocess.run(["gcc", "-O2", "-std=c11", "-Wall", "-Werror", "-o",
                        binary, os.path.join(SRC, "bench", "backend.c")], check=True)
        cls.proc = subprocess.Popen([binary, "0"], stdout=subprocess.PIPE, text=True)
        m = re.fullmatch(r"backend listening on 127\.0\.0\.1:(\d+)\n", cls.proc.stdout.readline())
        cls.port = int(m.group(1))

    @classmethod
    def tearDownClass(cls):
        cls.proc.terminate()
        cls.proc.wait(10)
        cls.proc.stdout.close()
        cls.tmp.cleanup()

    def exchange(self, chunks, answers):
        """Send chunks (pausing between them); read until `answers` responses."""
        with socket.create_connection(("127.0.0.1", self.port), 5) as s:
            for chunk in chunks:
                s.sendall(chunk)
                time.sleep(0.05)
            data = b""
            while data.count(OK) < answers or not data.endswith(b":)\n"):
                part = s.recv(65536)
                if not part:
                    break
                data += part
            s.settimeout(0.2)  # anything more would be an answer too many
            try:
                data += s.recv(65536)
            except socket.timeout:
                pass
            return data

    def test_keepalive_and_pipelining(self):
        get = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
        post = b"POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 27\r\n\r\n"
        body = b"GET / HTTP/1.1\r\nX: y\r\n\r\nab"  # a body that looks like a head
        data = self.exchange([get + post + body[:10], body[10:] + get], 3)
        self.assertEqual(data.count(OK), 3)
        self.assertEqual(data.count(b"Content-Length: 36\r\n"), 3)

    def test_head_split_across_reads(self):
        data = self.exchange([b"GET / HT", b"TP/1.1\r\nHost: x\r", b"\n\r\n"], 1)
        self.assertEqual(data.count(OK), 1)
        self.assertTrue(data.endswith(b"\r\n\r\nhello from the benchmark backend :)\n"))


if __name__ == "__main__":
    unittest.main()
