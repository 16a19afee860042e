#!/usr/bin/env python3
"""A few seconds of the rush experiment (bench/rush): bench/portal behind
einlass with the room on, bench/patients sending patients through it. Checks
that the portal logs its queries, that patients wait, get admitted, book and
cancel through the bypass route, and that the simulator writes its CSV and
JSON. No timing assertions: this is a smoke run, not a measurement."""
import csv
import json
import os
import re
import subprocess
import tempfile

from einlass_test import BIN, Einlass, Proc, conf_text, run, write_conf

BENCH = os.environ.get("EL_BENCH_DIR", os.path.join(os.path.dirname(BIN), "bench"))


def start_portal(d, timeout_ms=10000):
    proc = Proc([os.path.join(BENCH, "portal"), "--port", "0", "--db-connections", "2",
                 "--db-ms", "5", "--timeout-ms", str(timeout_ms),
                 "--log", os.path.join(d, "queries.csv"),
                 "--stats", os.path.join(d, "stats.csv")])
    port = int(proc.wait_line(r"portal listening on 127\.0\.0\.1:(\d+)").group(1))
    return proc, port


def test_patients_wait_book_and_cancel_through_einlass():
    d = tempfile.mkdtemp(prefix="el-rush-")
    portal, pport = start_portal(d)
    el = Einlass(write_conf(conf_text(
        pport, server="", room="mode = on\nstore = memory\nadapt = off\n"
                                "admit_per_s = 50\npoll_s = 1",
        extra="[route cancel]\nmatch = POST /appointments/*/cancel\naction = bypass\n"), d=d))
    try:
        out = subprocess.run(
            [os.path.join(BENCH, "patients"), "--port", str(el.port), "--rate", "5",
             "--duration", "2", "--requests", "3", "--think-ms", "50", "--cancel-frac", "1",
             "--drain-s", "60", "--max-lag-ms", "100000", "--out", d],
            capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
    finally:
        el.stop()
        portal.stop()
    with open(os.path.join(d, "summary.json")) as f:
        s = json.load(f)
    assert s["arrived"] == s["scheduled"] > 0, s
    assert s["admitted"] == s["arrived"], s
    assert s["done"] == s["arrived"] and s["booked"] == s["arrived"], s
    assert s["cancelled"] == s["arrived"], s  # cancel_frac 1, after the pass was released
    assert s["errors_after_admission"] == 0 and s["turned_away"] == 0, s
    assert s["lag_ms"]["samples"] > 0 and s["behind"] is False, s
    with open(os.path.join(d, "patients.csv")) as f:
        pts = list(csv.DictReader(f))
    assert len(pts) == s["arrived"]
    waited = [p for p in pts if float(p["first_place_t"]) >= 0]
    assert waited and all(int(p["first_position"]) >= 1 for p in waited), pts
    # every patient who waited had its turn: the poll that answered "admitted"
    assert all(0 <= float(p["turn"]) <= float(p["admitted"]) for p in waited), pts
    with open(os.path.join(d, "requests.csv")) as f:
        reqs = list(csv.DictReader(f))
    kinds = {r["kind"] for r in reqs}
    assert {"first", "poll", "page", "book", "cancel"} <= kinds, kinds
    # each waiting answer's promise: low <= eta <= high
    promises = [r for r in reqs if float(r["eta_s"]) >= 0]
    assert promises and all(0 <= float(r["eta_low_s"]) <= float(r["eta_s"])
                            <= float(r["eta_high_s"]) for r in promises), promises
    e = s["eta"]  # the ETA's error; in a 2 s run nearly every wait is under 5 s
    assert e["promises"] + e["short"] == len([r for r in promises if r["patient"] in
                                              {p["id"] for p in waited}]), (e, promises)
    assert 0 <= e["in_range"] <= 1 and e["err_p50"] <= e["err_p90"], e
    with open(os.path.join(d, "queries.csv")) as f:
        rows = [line.strip().split(",") for line in f]
    routes = {r[3] for r in rows}
    assert {"page", "book", "cancel"} <= routes, routes
    assert all(r[2] == "200" for r in rows), rows


def test_portal_answers_503_after_its_query_timeout():
    d = tempfile.mkdtemp(prefix="el-rush-")
    portal, pport = start_portal(d, timeout_ms=1)
    try:
        out = subprocess.run(
            [os.path.join(BENCH, "patients"), "--port", str(pport), "--rate", "200",
             "--duration", "0.5", "--requests", "2", "--think-ms", "0", "--drain-s", "30",
             "--max-lag-ms", "100000", "--out", d],
            capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
    finally:
        portal.stop()
    with open(os.path.join(d, "queries.csv")) as f:
        statuses = {line.split(",")[2] for line in f}
    assert "503" in statuses, statuses  # 100 patients at once, 2 connections, 1 ms timeout
    with open(os.path.join(d, "summary.json")) as f:
        s = json.load(f)
    assert s["turned_away"] + s["broken"] > 0, s
    with open(os.path.join(d, "stats.csv")) as f:
        assert all(re.fullmatch(r"[0-9.]+(,[0-9.]+){6}\n", line) for line in f)


if __name__ == "__main__":
    run([test_patients_wait_book_and_cancel_through_einlass,
         test_portal_answers_503_after_its_query_timeout])
