"""Locust plugin loaded beside any locustfile (`-f locust_plugin.py,theirs.py`): per-window statistics
per endpoint and a progress line, for our scenarios and for users' own locustfiles alike. Latencies here
are of successful requests only (contract C1); Locust's own stats, which keep every request, give the
all-requests figures. Policy decisions come in the request's context (`decision`) from our locustfile.

It defines no User or shape class, so it never changes what a locustfile runs. Contract (env):
CI_PERF_WINDOW_S (window length, s), CI_PERF_WINDOWS_FILE (written by the master or the local runner
at quit), CI_PERF_PROGRESS_S (progress line interval, s), CI_PERF_TOTAL_S (planned run time, s).

With `--processes N` or real workers (`--master` / `--worker`) every worker keeps its own windows and
ships them to the master inside Locust's regular stats report, so the windows and Locust's totals
travel in the same messages and add up. The master also counts each worker's requests and notes a
worker that goes missing or quits while the test runs, so a lost worker is reported, not hidden.
"""

# Locust ships type hints but leaves some of its API unannotated.
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import json
import os
import signal
import time
from typing import Any

import gevent
import locust.stats
from locust import events
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from ci_perf.runners.base import Progress
from ci_perf.services.procs import die_with_parent

WINDOWS_FORMAT = 2  # 2: histograms, sums, min and max over successful requests; policy decisions
REPORT_KEY = "ci_perf_windows"


def _env_float(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name) or default)
    except ValueError:
        return default


WINDOW_S = max(_env_float("CI_PERF_WINDOW_S", 5.0), 0.1)
PROGRESS_S = max(_env_float("CI_PERF_PROGRESS_S", 10.0), 0.1)
TOTAL_S = _env_float("CI_PERF_TOTAL_S", 0.0)
WINDOWS_FILE = os.environ.get("CI_PERF_WINDOWS_FILE", "")

# (window index, method, name) -> [requests, failures, {bucketed ms: count}, 429 answers, sum ms, min ms,
# max ms, {decision: count}]: latencies of successful requests only (Locust's own stats keep all of them).
Bucket = list[Any]
OK_SUM, OK_MIN, OK_MAX, DECISIONS = 4, 5, 6, 7


def _new_bucket() -> Bucket:
    return [0, 0, {}, 0, 0.0, None, None, {}]


class _State:
    env: Environment | None = None
    t0: float | None = None  # this process's test start: window 0 begins here
    started_at: float | None = None  # master/local only
    stopped_at: float | None = None
    buckets: dict[tuple[int, str, str], Bucket] = {}  # noqa: RUF012  (module-wide state, by design)
    users: dict[int, int] = {}  # noqa: RUF012
    sampler: gevent.Greenlet | None = None
    worker_requests: dict[str, int] = {}  # noqa: RUF012  (master: requests each worker reported)
    workers_seen: set[str] = set()  # noqa: RUF012
    workers_lost: set[str] = set()  # noqa: RUF012


S = _State


def _on_request(
    request_type: str,
    name: str,
    response_time: float | None,
    response_length: int,
    exception: BaseException | None = None,
    response: Any = None,
    context: Any = None,
    **_: Any,
) -> None:
    # Hot path: one dict lookup and a few increments per request.
    t0 = S.t0
    now = time.time()
    if t0 is None:
        t0 = S.t0 = now
    key = (int((now - t0) / WINDOW_S), request_type, name)
    bucket = S.buckets.get(key)
    if bucket is None:
        bucket = S.buckets[key] = _new_bucket()
    bucket[0] += 1
    if getattr(response, "status_code", None) == 429:  # counted even where 429 is expected (rate limits)
        bucket[3] += 1
    decision = context.get("decision") if isinstance(context, dict) else None
    if decision is not None:  # set by our locustfile on 2xx policy answers
        bucket[DECISIONS][decision] = bucket[DECISIONS].get(decision, 0) + 1
    if exception:  # the same test Locust's own stats use to count a failure
        bucket[1] += 1
    elif response_time is not None:
        # Looked up on the module each time so a custom bucketing stays in step with Locust's.
        rt = locust.stats.bucket_response_time(response_time)
        hist = bucket[2]
        hist[rt] = hist.get(rt, 0) + 1
        bucket[OK_SUM] += response_time
        if bucket[OK_MIN] is None or response_time < bucket[OK_MIN]:
            bucket[OK_MIN] = response_time
        if bucket[OK_MAX] is None or response_time > bucket[OK_MAX]:
            bucket[OK_MAX] = response_time


def drain() -> list[list[Any]]:
    """This process's windows as plain lists (msgpack- and JSON-safe); empties them."""
    out = [
        [
            idx,
            method,
            name,
            b[0],
            b[1],
            sorted(b[2].items()),
            b[3],
            b[OK_SUM],
            b[OK_MIN],
            b[OK_MAX],
            sorted(b[DECISIONS].items()),
        ]
        for (idx, method, name), b in S.buckets.items()
    ]
    S.buckets = {}
    return out


def _extreme(pick: Any, a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else pick(a, b)


def absorb(rows: list[list[Any]]) -> None:
    """Add windows drained elsewhere (a worker) into this process's."""
    for idx, method, name, requests, failures, hist, limited, ok_sum, ok_min, ok_max, decisions in rows:
        bucket = S.buckets.get((int(idx), method, name))
        if bucket is None:
            bucket = S.buckets[(int(idx), method, name)] = _new_bucket()
        bucket[0] += requests
        bucket[1] += failures
        bucket[3] += int(limited)
        for rt, count in hist:
            bucket[2][rt] = bucket[2].get(rt, 0) + count
        bucket[OK_SUM] += ok_sum
        bucket[OK_MIN] = _extreme(min, bucket[OK_MIN], ok_min)
        bucket[OK_MAX] = _extreme(max, bucket[OK_MAX], ok_max)
        for decision, count in decisions:
            bucket[DECISIONS][decision] = bucket[DECISIONS].get(decision, 0) + count


def _is_coordinator() -> bool:
    """The master, or the only process: the one that samples users, prints progress, writes the file."""
    return S.env is not None and S.env.runner is not None and not isinstance(S.env.runner, WorkerRunner)


def _on_test_start(environment: Environment, **_: Any) -> None:
    now = time.time()
    S.t0 = now
    if _is_coordinator() and S.sampler is None:
        S.started_at = now
        S.sampler = gevent.spawn(_sample_loop)


def _on_test_stop(environment: Environment, **_: Any) -> None:
    if _is_coordinator() and S.started_at is not None:
        S.stopped_at = time.time()
        if S.sampler is not None:
            S.sampler.kill(block=False)
            S.sampler = None
        _print_progress(S.stopped_at, None)


def _sample_loop() -> None:
    """Record the user count per window and print progress every PROGRESS_S."""
    next_progress = time.time() + PROGRESS_S
    last: tuple[float, int] | None = (time.time(), 0)
    step = min(1.0, WINDOW_S / 2, PROGRESS_S)
    while True:
        gevent.sleep(step)
        now = time.time()
        runner = S.env.runner if S.env else None
        if runner is None or S.t0 is None:
            continue
        idx = int((now - S.t0) / WINDOW_S)
        S.users[idx] = max(S.users.get(idx, 0), runner.user_count)
        if isinstance(runner, MasterRunner):
            _watch_workers(runner)
        if now >= next_progress:
            last = _print_progress(now, last)
            next_progress += PROGRESS_S


def _watch_workers(runner: MasterRunner) -> None:
    """While the test runs: a worker that vanished or stopped sending heartbeats is lost."""
    present = {c.id for c in runner.clients.all if c.state != "missing"}
    S.workers_lost |= S.workers_seen - present
    S.workers_seen |= present


def progress_now(now: float, last: tuple[float, int] | None) -> Progress:
    """Progress from Locust's own running totals; req/s over the span since `last` (time, requests)."""
    assert S.env is not None and S.env.runner is not None
    total = S.env.runner.stats.total
    requests = total.num_requests
    since, before = last if last else (S.started_at or now, 0)
    span = now - since
    return Progress(
        elapsed_s=now - (S.started_at or now),
        total_s=TOTAL_S or float(getattr(S.env.parsed_options, "run_time", 0) or 0),
        users=S.env.runner.user_count,
        rps=(requests - before) / span if span > 0 else 0.0,
        p95_ms=float(total.get_response_time_percentile(0.95)) if requests else None,
        requests=requests,
        failures=total.num_failures,
    )


def _print_progress(now: float, last: tuple[float, int] | None) -> tuple[float, int]:
    p = progress_now(now, last)
    print(p.line(), flush=True)
    return now, p.requests


def _on_report_to_master(client_id: str, data: dict[str, Any], **_: Any) -> None:
    data[REPORT_KEY] = drain()


def _on_worker_report(client_id: str, data: dict[str, Any], **_: Any) -> None:
    absorb(data.get(REPORT_KEY) or [])
    total = data.get("stats_total") or {}
    S.worker_requests[client_id] = S.worker_requests.get(client_id, 0) + int(total.get("num_requests") or 0)


def workers_section() -> dict[str, Any] | None:
    """Master only: how many workers were expected and seen, which were lost, what each sent."""
    runner = S.env.runner if S.env else None
    if not isinstance(runner, MasterRunner):
        return None
    options = S.env.parsed_options if S.env else None
    return {
        "expected": int(getattr(options, "expect_workers", 0) or 0),
        "seen": len(S.workers_seen | set(S.worker_requests)),
        "lost": sorted(S.workers_lost),
        "requests": dict(sorted(S.worker_requests.items())),
    }


def windows_document() -> dict[str, Any]:
    """What CI_PERF_WINDOWS_FILE holds; errors come from Locust's final stats (its CSV lags)."""
    assert S.env is not None and S.env.runner is not None
    rows = sorted(drain(), key=lambda r: (r[0], r[1], r[2]))
    errors = [e.to_dict() for e in S.env.runner.stats.errors.values()]
    return {
        "format": WINDOWS_FORMAT,
        "window_s": WINDOW_S,
        "started_at": S.started_at,
        "stopped_at": S.stopped_at,
        "users": sorted(S.users.items()),
        "windows": [
            {
                "index": i,
                "method": m,
                "name": n,
                "requests": r,
                "failures": f,
                "response_times": h,
                "limited": lim,
                "ok_sum_ms": total,
                "ok_min_ms": low,
                "ok_max_ms": high,
                "decisions": dict(dec),
            }
            for i, m, n, r, f, h, lim, total, low, high, dec in rows
        ],
        "errors": [
            {k: e[k] for k in ("method", "name", "error", "occurrences")}
            for e in sorted(errors, key=lambda e: (e["method"], e["name"], e["error"]))
        ],
        "workers": workers_section(),
    }


def _on_quit(exit_code: int = 0, **_: Any) -> None:
    if not WINDOWS_FILE or not _is_coordinator():
        return
    if S.stopped_at is None:
        S.stopped_at = time.time()
    tmp = WINDOWS_FILE + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(windows_document(), fh)
    os.replace(tmp, WINDOWS_FILE)  # never a half-written file for the parser


def _on_init(environment: Environment, **_: Any) -> None:
    S.env = environment


# The workers Locust forks (--processes) die with their master, even by SIGKILL, from the fork on (not
# later: a worker whose master is gone may wait for it a long time before Locust's init).
_forked_by = [0]


def _before_fork() -> None:
    _forked_by[0] = os.getpid()


def _in_forked_worker() -> None:
    die_with_parent(_forked_by[0], signal.SIGKILL)


os.register_at_fork(before=_before_fork, after_in_child=_in_forked_worker)

events.init.add_listener(_on_init)
events.request.add_listener(_on_request)
events.test_start.add_listener(_on_test_start)
events.test_stop.add_listener(_on_test_stop)
events.report_to_master.add_listener(_on_report_to_master)
events.worker_report.add_listener(_on_worker_report)
events.quit.add_listener(_on_quit)
