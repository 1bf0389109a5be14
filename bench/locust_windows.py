"""Does a long Locust run grow ci-perf's memory? The windows our Locust plugin keeps, and the file the
parser reads, must be bounded by windows x endpoints x latency buckets, never by the number of requests.

Each case feeds simulated requests (8 endpoints, log-normal latencies with rare multi-second outliers)
through the plugin's own request hook (`locust_plugin._on_request`, with the clock simulated) in a fresh
process, then writes the windows file as the plugin does at quit and parses it with
`ci_perf.parsers.locust.build_windows`. It prints the cells kept, the histogram entries, the file size
and the process's peak memory: the 30-minute run at the default window keeps about what a 5-minute run
does, and 10x the requests at the same windows cost no more memory.

  python bench/locust_windows.py
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ENDPOINTS = [
    ("GET", "/api/v1/servers/"),
    ("GET", "/api/v1/servers/?search"),
    ("GET", "/api/v1/servers/{id}"),
    ("POST", "/api/v1/policy/evaluate"),
    ("POST", "/api/v1/policy/evaluate (server action)"),
    ("POST", "/api/v1/servers/"),
    ("GET", "/health/"),
    ("POST", "/api/v1/servers/ (many tools)"),
]
MAX_PEAK_MB = 150.0  # locust, gevent and ci_perf imported: ~70 MB before any request


def default_window_s(duration_s: float) -> float:
    """pipeline.default_window_s: about twenty windows, 1 s to 30 s each."""
    return float(max(1, min(30, round(duration_s / 20))))


def simulate(duration_s: int, rate: int, window_s: float) -> dict[str, Any]:
    """Child side: the plugin's hook over a simulated run, then the file and the parse."""
    os.environ["CI_PERF_WINDOW_S"] = str(window_s)
    from ci_perf.parsers.locust import build_windows
    from ci_perf.scenarios import locust_plugin as plugin

    rng = random.Random(3)
    now = [1_800_000_000.0]
    plugin.time.time = lambda: now[0]  # type: ignore[attr-defined]  # simulated clock, hook untouched
    plugin.S.t0 = now[0]
    requests = duration_s * rate
    step = 1.0 / rate
    for i in range(requests):
        now[0] += step
        method, name = ENDPOINTS[i % len(ENDPOINTS)]
        ms = 4.0 * math.exp(0.8 * rng.gauss(0.0, 1.0)) * (300 if rng.random() < 1e-4 else 1)
        plugin._on_request(method, name, ms, 120, None if rng.random() > 0.01 else RuntimeError("HTTP 500"))
    cells = len(plugin.S.buckets)
    entries = sum(len(b[2]) for b in plugin.S.buckets.values())
    rows = sorted(plugin.drain(), key=lambda r: (r[0], r[1], r[2]))
    doc = {
        "format": plugin.WINDOWS_FORMAT,
        "window_s": window_s,
        "started_at": 0.0,
        "stopped_at": duration_s,
        "users": [[i, 50] for i in range(int(duration_s / window_s) + 1)],
        "windows": [
            {"index": i, "method": m, "name": n, "requests": r, "failures": f, "response_times": h}
            for i, m, n, r, f, h in rows
        ],
        "errors": [],
        "workers": None,
    }
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "locust_windows.json"
        path.write_text(json.dumps(doc), encoding="utf-8")
        size = path.stat().st_size
        started = time.perf_counter()
        windows = build_windows(path, doc, float(duration_s))
        parse_s = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "requests": requests,
        "cells": cells,
        "entries": entries,
        "file_kb": size / 1024,
        "parse_s": parse_s,
        "series": len(windows),
        "peak_mb": peak_mb,
    }


def run_case(duration_s: int, rate: int, window_s: float) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, __file__, "--child", str(duration_s), str(rate), str(window_s)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode:
        raise SystemExit(proc.stderr[-2000:])
    data: dict[str, Any] = json.loads(proc.stdout)
    return data


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rate", type=int, default=200, help="simulated requests per second")
    p.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(simulate(int(args.child[0]), int(args.child[1]), float(args.child[2]))))
        return 0
    cases = [
        ("5 min, default window", 300, args.rate, default_window_s(300)),
        ("30 min, default window", 1800, args.rate, default_window_s(1800)),
        ("30 min, default window, 10x rate", 1800, args.rate * 10, default_window_s(1800)),
        ("30 min, --window 1", 1800, args.rate, 1.0),
    ]
    results = {}
    for label, duration, rate, window in cases:
        r = results[label] = run_case(duration, rate, window)
        print(
            f"{label:34s} window {window:4.0f} s  {r['requests']:>9,} requests  {r['cells']:5d} cells  "
            f"{r['entries']:6d} histogram entries  file {r['file_kb']:7.0f} KB  parse {r['parse_s']:.2f} s  "
            f"peak {r['peak_mb']:.0f} MB"
        )
    base, tenfold = results[cases[1][0]], results[cases[2][0]]
    bounded = tenfold["entries"] < 2 * base["entries"] and tenfold["peak_mb"] < base["peak_mb"] + 10
    worst = max(r["peak_mb"] for r in results.values())
    ok = bounded and worst < MAX_PEAK_MB
    print(
        f"10x the requests: {tenfold['entries'] / base['entries']:.2f}x the entries, "
        f"{tenfold['peak_mb'] - base['peak_mb']:+.0f} MB peak (bounded by windows x endpoints x buckets); "
        f"worst peak {worst:.0f} MB (target < {MAX_PEAK_MB:.0f} MB): {'PASS' if ok else 'FAIL'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
