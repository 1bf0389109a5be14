"""Write a realistic k6 1.1.0 `--out json` NDJSON file, plus the exact percentiles of what it holds.

The shape copies a real k6 1.1.0 run of ci-perf's k6 script (load_test_moderate against
tests/sark_stub.py): one `Metric` declaration line before each metric's first point (the http_reqs,
http_req_duration and http_req_failed ones carry the script's per-name/per-window/per-status
sub-metrics), then per request the nine http_req* points with k6's tags (error_code on 4xx/5xx,
expected_response, group, method, name, proto, scenario, status, url, win), per iteration
data_sent/data_received/iteration_duration/iterations, and vus/vus_max once a second. Times are
RFC 3339 with nanoseconds (trailing zeros cut, as Go prints them), values as Go prints float64.

Next to FILE it writes FILE.reference.json: request counts and the exact p50/p90/p95/p99 of
http_req_duration, overall and per endpoint, from the sorted values as written (the order statistic
s[int(n*q)], the rule ci-perf's histograms use), so a parser's accuracy can be checked.

  python bench/ndjson_gen.py /tmp/k6.ndjson                     # 1,000,000 requests, ~3.8 GB
  python bench/ndjson_gen.py /tmp/k6.ndjson.gz --gzip --requests 100000
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import random
import sys
import time
from array import array
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

SCENARIO = "load_test_moderate"
ERROR_STATUSES = (0, 400, 401, 403, 404, 405, 408, 409, 413, 415, 422, 429, 500, 501, 502, 503, 504)
# (method, name, weight, median ms, log-normal sigma, success status): load_test_moderate's mix.
ENDPOINTS: tuple[tuple[str, str, int, float, float, int], ...] = (
    ("GET", "/api/v1/servers/", 30, 4.0, 0.45, 200),
    ("GET", "/api/v1/servers/?search", 10, 6.5, 0.5, 200),
    ("GET", "/api/v1/servers/{id}", 20, 2.2, 0.4, 200),
    ("POST", "/api/v1/policy/evaluate", 20, 1.6, 0.6, 200),
    ("POST", "/api/v1/policy/evaluate (server action)", 5, 1.9, 0.6, 200),
    ("POST", "/api/v1/servers/", 10, 9.0, 0.7, 201),
    ("GET", "/health/", 5, 0.8, 0.35, 200),
)
FAILURES = ((0.004, (500, 503)), (0.016, (404, 422, 429)))  # cumulative chance -> statuses
QUANTILES = {"p50": 0.50, "p90": 0.90, "p95": 0.95, "p99": 0.99}
MAX_WINDOWS = 30  # as k6_script.js: window width grows so a run has at most 30
GRACE_S = 5


def go_float(x: float) -> str:
    """float64 as Go's encoding/json writes it; values here are 0 or >= 1e-4, where repr agrees."""
    return "0" if x == 0 else repr(x)


def ns_round(ms: float) -> float:
    """k6 measures in ns and reports ms: keep six decimals, never below 1e-4 (see go_float)."""
    return 0.0 if ms < 1e-4 else round(ms * 1e6) / 1e6


def tags_json(method: str, name: str, status: int, win: int, ok_status: int) -> str:
    """k6's request tags, sorted by key as k6 writes them; name also replaces the url."""
    failed = status != ok_status
    tags = {"error_code": str(1000 + status)} if failed else {}
    tags |= {
        "expected_response": "false" if failed else "true",
        "group": "",
        "method": method,
        "name": name,
        "proto": "HTTP/1.1",
        "scenario": SCENARIO,
        "status": str(status),
        "url": name,
        "win": str(win),
    }
    return json.dumps(tags, separators=(",", ":"))


def metric_line(name: str, kind: str, contains: str, selectors: list[dict[str, str]] | None) -> str:
    subs = (
        None
        if selectors is None
        else [
            {"name": f"{name}{{{suffix}}}", "suffix": suffix, "tags": dict(sorted(sel.items()))}
            for sel in selectors
            for suffix in [",".join(f"{k}:{v}" for k, v in sel.items())]
        ]
    )
    data = {"name": name, "type": kind, "contains": contains, "thresholds": [], "submetrics": subs}
    return json.dumps({"type": "Metric", "data": data, "metric": name}, separators=(",", ":")) + "\n"


def declarations(windows: int) -> dict[str, str]:
    """The Metric lines, with the sub-metrics ci-perf's k6 script declares as (empty) thresholds."""
    per_name: list[dict[str, str]] = []
    statuses: list[dict[str, str]] = []
    for method, name, *_ in ENDPOINTS:
        base = {"name": name, "method": method}
        per_name += [base] + [{**base, "win": str(w)} for w in range(windows)]
        statuses += [{**base, "status": str(s)} for s in ERROR_STATUSES]
    per_name += [{"win": str(w)} for w in range(windows)]
    trends = (
        "http_req_blocked",
        "http_req_connecting",
        "http_req_tls_handshaking",
        "http_req_sending",
        "http_req_waiting",
        "http_req_receiving",
        "iteration_duration",
    )
    out = {
        "http_reqs": metric_line("http_reqs", "counter", "default", per_name + statuses),
        "http_req_duration": metric_line("http_req_duration", "trend", "time", per_name),
        "http_req_failed": metric_line("http_req_failed", "rate", "default", per_name),
        "vus": metric_line("vus", "gauge", "default", None),
        "vus_max": metric_line("vus_max", "gauge", "default", None),
        "data_sent": metric_line("data_sent", "counter", "data", None),
        "data_received": metric_line("data_received", "counter", "data", None),
        "iterations": metric_line("iterations", "counter", "default", None),
    }
    out |= {t: metric_line(t, "trend", "time", None) for t in trends}
    return out


class Clock:
    """RFC 3339 timestamps with nanoseconds; the date part is formatted once per second."""

    def __init__(self, start_ns: int) -> None:
        self.start_ns = start_ns
        self._sec = -1
        self._prefix = ""

    def stamp(self, ns: int) -> str:
        sec, frac = divmod(ns, 1_000_000_000)
        if sec != self._sec:
            self._sec = sec
            self._prefix = datetime.fromtimestamp(sec, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        return f"{self._prefix}.{frac:09d}".rstrip("0").rstrip(".") + "Z"


def percentiles(values: list[float]) -> dict[str, float]:
    values.sort()
    n = len(values)
    return {k: values[min(int(n * q), n - 1)] for k, q in QUANTILES.items()} if n else {}


def generate(out: IO[str], requests: int, rate: float = 3000.0, vus: int = 100, seed: int = 1) -> dict[str, Any]:
    """Write `requests` requests at `rate` req/s; returns the reference (counts and exact percentiles)."""
    rng = random.Random(seed)
    duration_s = max(1, math.ceil(requests / rate))
    window_s = max(5, math.ceil((duration_s + GRACE_S) / MAX_WINDOWS))
    n_windows = math.ceil((duration_s + GRACE_S) / window_s)
    decl = declarations(n_windows)
    declared: set[str] = set()

    def point(metric: str, ts: str, value: str, tags: str) -> str:
        head = "" if metric in declared else decl[metric]
        declared.add(metric)
        return f'{head}{{"metric":"{metric}","type":"Point","data":{{"time":"{ts}","value":{value},"tags":{tags}}}}}\n'

    slots = [i for i, ep in enumerate(ENDPOINTS) for _ in range(ep[2])]
    tag_cache: dict[tuple[int, int, int], str] = {}
    iter_tags = json.dumps({"group": "", "scenario": SCENARIO}, separators=(",", ":"))
    durations, which = array("d"), array("B")
    failures = 0
    clock = Clock(time.time_ns())
    step_ns = 1e9 / rate
    next_vus_s = -1
    for i in range(requests):
        ns = clock.start_ns + int(i * step_ns)
        ts = clock.stamp(ns)
        elapsed_s = (ns - clock.start_ns) // 1_000_000_000
        if elapsed_s > next_vus_s:  # k6 samples vus/vus_max once a second
            next_vus_s = elapsed_s
            out.write(point("vus", ts, str(vus), "{}") + point("vus_max", ts, str(vus), "{}"))
        e = rng.choice(slots)
        method, name, _, median, sigma, ok = ENDPOINTS[e]
        status, r = ok, rng.random()
        for chance, codes in FAILURES:
            if r < chance:
                status = codes[int(r * 1e6) % len(codes)]
                break
        failures += status != ok
        key = (e, status, min(elapsed_s // window_s, n_windows - 1))
        tags = tag_cache.get(key) or tag_cache.setdefault(key, tags_json(method, name, status, key[2], ok))
        duration = ns_round(median * math.exp(sigma * rng.gauss(0.0, 1.0)))
        durations.append(duration)
        which.append(e)
        sending, receiving = ns_round(0.01 + rng.random() * 0.05), ns_round(0.015 + rng.random() * 0.08)
        waiting = ns_round(max(duration - sending - receiving, 0.0))
        fresh = rng.random() < 0.001  # a new connection: blocked includes connecting
        connecting = ns_round(0.3 + rng.random() * 0.5) if fresh else 0.0
        blocked = ns_round(connecting + 0.02 + rng.random() * 0.02) if fresh else ns_round(0.001 + rng.random() * 0.004)
        out.write(
            "".join(
                (
                    point("http_reqs", ts, "1", tags),
                    point("http_req_duration", ts, go_float(duration), tags),
                    point("http_req_blocked", ts, go_float(blocked), tags),
                    point("http_req_connecting", ts, go_float(connecting), tags),
                    point("http_req_tls_handshaking", ts, "0", tags),
                    point("http_req_sending", ts, go_float(sending), tags),
                    point("http_req_waiting", ts, go_float(waiting), tags),
                    point("http_req_receiving", ts, go_float(receiving), tags),
                    point("http_req_failed", ts, "1" if status != ok else "0", tags),
                )
            )
        )
        its = clock.stamp(ns + int(duration * 1e6) + 500_000)  # the iteration ends after its think time
        think = 500.0 + rng.random() * 1500.0
        out.write(
            "".join(
                (
                    point("data_sent", its, str(180 + rng.randrange(400) if method == "POST" else 140), iter_tags),
                    point("data_received", its, str(120 + rng.randrange(200)), iter_tags),
                    point("iteration_duration", its, go_float(ns_round(duration + think)), iter_tags),
                    point("iterations", its, "1", iter_tags),
                )
            )
        )
    return reference(durations, which, failures, window_s)


def reference(durations: array[float], which: array[int], failures: int, window_s: int) -> dict[str, Any]:
    by_endpoint: dict[int, list[float]] = {}
    for d, e in zip(durations, which, strict=True):
        by_endpoint.setdefault(e, []).append(d)
    endpoints = {
        f"{ENDPOINTS[e][0]} {ENDPOINTS[e][1]}": {"requests": len(v), **percentiles(v)}
        for e, v in sorted(by_endpoint.items())
    }
    return {
        "requests": len(durations),
        "failures": failures,
        "window_s": window_s,
        "quantiles": QUANTILES,
        "total": {"requests": len(durations), **percentiles(list(durations))},
        "endpoints": endpoints,
    }


def reference_path(path: Path) -> Path:
    return path.with_name(path.name + ".reference.json")


def write(path: Path, requests: int, gzipped: bool = False, seed: int = 1) -> dict[str, Any]:
    """Generate into `path` (gzip when asked) and save the reference beside it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # gzip level 1: k6's own gzip output is written about that fast.
    with (
        gzip.open(path, "wt", compresslevel=1, encoding="utf-8")
        if gzipped
        else path.open("w", encoding="utf-8", buffering=8 << 20)
    ) as out:
        ref = generate(out, requests, seed=seed)
    reference_path(path).write_text(json.dumps(ref, indent=1), encoding="utf-8")
    return ref


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("path", type=Path, help="where to write the NDJSON (the reference goes beside it)")
    p.add_argument("--requests", type=int, default=1_000_000)
    p.add_argument("--gzip", action="store_true", help="gzip the file, as ci-perf's k6 runner does")
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args()
    started = time.perf_counter()
    ref = write(args.path, args.requests, args.gzip, args.seed)
    size = args.path.stat().st_size
    print(
        f"wrote {args.path}: {ref['requests']:,} requests, {size / 1e9:.2f} GB, "
        f"{size / ref['requests']:.0f} B/request, {time.perf_counter() - started:.1f} s",
        file=sys.stderr,
    )
    print(json.dumps(ref["total"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
