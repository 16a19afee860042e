#!/usr/bin/env python3
"""A small appointment-booking portal to stand behind einlass (demo and tests).

Its database is simulated: a fixed pool of --db-connections connections (a
semaphore) and a service time of --db-ms per query (a sleep). Under load the
requests queue for a connection, so the time a page spends on the database
rises, exactly as with a real, saturated database. Every response says how
long it spent waiting for and using the database:

    Server-Timing: db;dur=<ms>

A confirmed booking ends the visitor's session in the waiting room:

    Einlass-Release: 1

Pages:  GET /                         free slots, a booking form per slot
        POST /book                    slot=<id>&name=<text> -> confirmation
        GET /appointments/<id>        my appointment
        POST /appointments/<id>/cancel
        GET /healthz                  one trivial query, "ok"
Control (for tests and demos, not for visitors):
        POST /_portal/db-ms           body: a number; the new service time
        GET /_portal/stats            JSON: db_ms, db_connections, queries

Python standard library only.
"""
import argparse
import html
import json
import re
import secrets
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs


class Database:
    """c connections, s ms per query; query() returns the ms it took."""

    def __init__(self, connections, ms, slots):
        self.pool = threading.BoundedSemaphore(connections)  # the connections
        self.connections = connections
        self.ms = ms                         # service time per query, changeable
        self.lock = threading.Lock()         # guards the tables below
        self.queries = 0                     # queries served so far
        self.free = {i: t for i, t in enumerate(slots, 1)}  # slot id -> label
        self.appointments = {}               # appointment id -> (slot id, label, name)

    def query(self, fn=None):
        start = time.monotonic()
        with self.pool:
            time.sleep(self.ms / 1000.0)
            with self.lock:
                self.queries += 1
                result = fn() if fn else None
        return result, (time.monotonic() - start) * 1000.0


def make_slots(n):
    days = ["Mon", "Tue", "Wed", "Thu", "Fri"]
    return ["%s %02d:%02d" % (days[(i // 16) % 5], 8 + (i % 16) // 2, 30 * (i % 2))
            for i in range(n)]


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>%(title)s - Citizens' Office</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{font-family:sans-serif;max-width:40em;margin:2em auto;padding:0 1em}
li{margin:.3em 0}form{display:inline}</style></head>
<body><h1>%(title)s</h1>
%(body)s
<p><a href="/">All free appointments</a></p></body></html>
"""


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "portal/1"
    timeout = 120  # an idle keep-alive connection closes after this

    def log_message(self, fmt, *args):
        if self.server.verbose:
            sys.stderr.write("portal: " + (fmt % args) + "\n")

    # -- plumbing -------------------------------------------------------
    def read_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            body = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return body
                body += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def send(self, status, body, db_ms, ctype="text/html; charset=utf-8", extra=()):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        if status != 204:  # a 204 carries neither a body nor its length
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("Server-Timing", "db;dur=%.1f" % db_ms)
        for name, value in extra:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def page(self, status, title, body, db_ms, extra=()):
        self.send(status, PAGE % {"title": html.escape(title), "body": body}, db_ms,
                  extra=extra)

    # -- routes ---------------------------------------------------------
    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        db = self.server.db
        path = self.path.split("?", 1)[0]
        if path == "/":
            free, ms = db.query(lambda: sorted(db.free.items()))
            items = "".join(
                '<li>%s <form method="post" action="/book">'
                '<input type="hidden" name="slot" value="%d">'
                '<input name="name" placeholder="Your name" required> '
                '<button>Book</button></form></li>' % (html.escape(label), sid)
                for sid, label in free)
            body = ("<p>%d free appointments.</p><ul>%s</ul>" % (len(free), items)
                    if free else "<p>No free appointments left.</p>")
            return self.page(200, "Book an appointment", body, ms)
        m = re.fullmatch(r"/appointments/([0-9a-f]+)", path)
        if m:
            appt, ms = db.query(lambda: db.appointments.get(m.group(1)))
            if appt is None:
                return self.page(404, "Not found", "<p>No such appointment.</p>", ms)
            body = ("<p>%s, your appointment is on <b>%s</b>.</p>"
                    '<form method="post" action="/appointments/%s/cancel">'
                    "<button>Cancel it</button></form>"
                    % (html.escape(appt[2]), html.escape(appt[1]), m.group(1)))
            return self.page(200, "My appointment", body, ms)
        if path == "/healthz":
            _, ms = db.query()
            return self.send(200, "ok\n", ms, "text/plain")
        if path == "/_portal/stats":
            stats = {"db_ms": db.ms, "db_connections": db.connections,
                     "queries": db.queries}
            return self.send(200, json.dumps(stats) + "\n", 0, "application/json")
        self.page(404, "Not found", "<p>There is no such page.</p>", 0)

    def do_POST(self):
        db = self.server.db
        body = self.read_body()
        path = self.path.split("?", 1)[0]
        if path == "/book":
            form = parse_qs(body.decode("utf-8", "replace"))
            try:
                sid = int(form.get("slot", [""])[0])
            except ValueError:
                return self.page(400, "Bad request", "<p>Which slot?</p>", 0)
            name = form.get("name", [""])[0].strip()[:80] or "Anonymous"

            def book():
                label = db.free.pop(sid, None)
                if label is None:
                    return None
                aid = secrets.token_hex(8)
                db.appointments[aid] = (sid, label, name)
                return aid, label
            booked, ms = db.query(book)
            if booked is None:
                return self.page(409, "Already taken",
                                 "<p>Someone was faster. Please pick another slot.</p>", ms)
            aid, label = booked
            body = ('<p>Booked: <b>%s</b> for %s.</p><p>Your appointment: '
                    '<a href="/appointments/%s">/appointments/%s</a></p>'
                    % (html.escape(label), html.escape(name), aid, aid))
            return self.page(200, "Confirmed", body, ms, extra=[("Einlass-Release", "1")])
        m = re.fullmatch(r"/appointments/([0-9a-f]+)/cancel", path)
        if m:
            def cancel():
                appt = db.appointments.pop(m.group(1), None)
                if appt is not None:
                    db.free[appt[0]] = appt[1]
                return appt
            appt, ms = db.query(cancel)
            if appt is None:
                return self.page(404, "Not found", "<p>No such appointment.</p>", ms)
            return self.page(200, "Cancelled",
                             "<p>Your appointment on %s is cancelled.</p>"
                             % html.escape(appt[1]), ms)
        if path == "/_portal/db-ms":
            try:
                value = float(body.decode().strip())
                if not 0 <= value <= 60000:
                    raise ValueError
            except ValueError:
                return self.send(400, "want a number of ms (0..60000)\n", 0, "text/plain")
            db.ms = value
            return self.send(204, b"", 0, "text/plain")
        self.page(404, "Not found", "<p>There is no such page.</p>", 0)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # the default 5 drops connections under load


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=3000, help="0 picks a free port")
    ap.add_argument("--db-connections", type=int, default=4)
    ap.add_argument("--db-ms", type=float, default=20.0)
    ap.add_argument("--slots", type=int, default=40)
    ap.add_argument("--verbose", action="store_true", help="log every request on stderr")
    args = ap.parse_args()
    if args.db_connections < 1 or args.db_ms < 0:
        ap.error("--db-connections must be >= 1 and --db-ms >= 0")
    server = Server((args.host, args.port), Handler)
    server.db = Database(args.db_connections, args.db_ms, make_slots(args.slots))
    server.verbose = args.verbose
    host, port = server.server_address[:2]
    print("portal listening on %s:%d" % (host, port), flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    server.server_close()


if __name__ == "__main__":
    main()
