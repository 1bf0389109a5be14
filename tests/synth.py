"""Synthetic RunResults with known per-window distributions, for comparison and baseline tests."""

from __future__ import annotations

import random

from ci_perf.model import AGGREGATE, EndpointStats, LatencyHistogram, RunMeta, RunResult, Window
from ci_perf.stats import median

ENDPOINTS = (("GET", "/api/v1/servers/"), ("POST", "/api/v1/policy/evaluate"))


def windows(
    rng: random.Random,
    n: int,
    p95_ms: float,
    rps: float,
    noise: float = 0.1,
    error_rate: float = 0.0,
    users: int = 10,
    length_s: float = 5.0,
) -> tuple[Window, ...]:
    """n windows whose p50/p95/p99 and rps are lognormal around the given centres; the first
    window is a ramp-up (fewer users, lower load), as real runs have."""
    out = []
    for i in range(n):
        scale = rng.lognormvariate(0, noise)
        ramp = i == 0
        reqs = max(1, round(rps * length_s * rng.lognormvariate(0, noise / 2) / (2 if ramp else 1)))
        fails = sum(rng.random() < error_rate for _ in range(reqs))
        out.append(
            Window(
                start_s=i * length_s,
                length_s=length_s,
                requests=reqs,
                failures=fails,
                users=users // 2 if ramp else users,
                p50_ms=p95_ms * 0.5 * scale,
                p95_ms=p95_ms * scale,
                p99_ms=p95_ms * 1.5 * scale,
            )
        )
    return tuple(out)


def stats_from(method: str, name: str, ws: tuple[Window, ...], with_histogram: bool = False) -> EndpointStats:
    steady = ws[1:] or ws
    req = sum(w.requests for w in ws)
    p95 = median([w.p95_ms or 0.0 for w in steady])
    hist = LatencyHistogram.from_values([p95 * 0.5, p95, p95 * 1.5] * 50) if with_histogram else None
    return EndpointStats(
        method=method,
        name=name,
        requests=req,
        failures=sum(w.failures for w in ws),
        rps=median([w.rps for w in steady]),
        min_ms=p95 * 0.1,
        avg_ms=p95 * 0.6,
        p50_ms=median([w.p50_ms or 0.0 for w in steady]),
        p90_ms=p95 * 0.9,
        p95_ms=p95,
        p99_ms=median([w.p99_ms or 0.0 for w in steady]),
        max_ms=p95 * 3,
        histogram=hist,
        windows=ws,
    )


def run(
    seed: int,
    shift: float = 0.0,
    n_windows: int = 12,
    noise: float = 0.1,
    error_rate: float = 0.0,
    rps_factor: float = 1.0,
    scenario: str = "smoke_test",
    users: int = 10,
    with_histogram: bool = False,
) -> RunResult:
    """A run with two endpoints; latency multiplied by (1 + shift), throughput by rps_factor."""
    rng = random.Random(seed)
    eps = []
    all_ws: list[tuple[Window, ...]] = []
    for i, (method, name) in enumerate(ENDPOINTS):
        ws = windows(rng, n_windows, (40 + 20 * i) * (1 + shift), 50 * rps_factor, noise, error_rate, users)
        all_ws.append(ws)
        eps.append(stats_from(method, name, ws, with_histogram))
    agg_ws = tuple(
        Window(
            a.start_s,
            a.length_s,
            a.requests + b.requests,
            a.failures + b.failures,
            a.users,
            ((a.p50_ms or 0) + (b.p50_ms or 0)) / 2,
            max(a.p95_ms or 0, b.p95_ms or 0),
            max(a.p99_ms or 0, b.p99_ms or 0),
        )
        for a, b in zip(*all_ws, strict=True)
    )
    total = stats_from("", AGGREGATE, agg_ws, with_histogram)
    meta = RunMeta(
        scenario=scenario,
        tool="locust",
        tool_version="2.47.0",
        users=users,
        spawn_rate=5,
        duration_s=n_windows * 5.0,
        host="http://127.0.0.1:8000",
        window_s=5.0,
        commit=f"{seed:040x}",
        ref="refs/heads/main",
    )
    return RunResult(meta=meta, total=total, endpoints=tuple(eps))
