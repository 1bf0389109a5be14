"""ci_perf.findings and scenario_findings on synthetic data with known answers."""

from __future__ import annotations

import json
import random
from dataclasses import replace
from pathlib import Path

from ci_perf import findings as fx
from ci_perf.model import AGGREGATE, EndpointStats, ErrorCount, RunMeta, RunResult, Status, Window
from ci_perf.observe.model import DatabaseMetrics, ResourceSample, ServiceSeries, SystemMetrics
from ci_perf.parsers.locust import parse_locust
from ci_perf.runners.base import RunArtifacts
from ci_perf.scenario_findings import for_run, limited_per_window, registrations


def w(i: int, users: int, p95: float, requests: int = 100, failures: int = 0, length: float = 5.0) -> Window:
    return Window(
        start_s=i * length,
        length_s=length,
        requests=requests,
        failures=failures,
        users=users,
        p50_ms=p95 / 2,
        p95_ms=p95,
        p99_ms=p95 * 1.5,
    )


def stats(name: str, windows: tuple[Window, ...] = (), method: str = "", requests: int = 0, failures: int = 0,
          errors: tuple[ErrorCount, ...] = ()) -> EndpointStats:  # fmt: skip
    return EndpointStats(method, name, requests or sum(x.requests for x in windows),
                         failures or sum(x.failures for x in windows), 10.0, 1, 2, 3, 4, 5, 6, 7,
                         windows=windows, errors=errors)  # fmt: skip


def result(scenario: str, windows: tuple[Window, ...], endpoints: tuple[EndpointStats, ...] = (),
           errors: tuple[ErrorCount, ...] = ()) -> RunResult:  # fmt: skip
    meta = RunMeta(scenario, "locust", "2.47.0", 100, 10, 60.0, "http://x")
    return RunResult(meta, stats(AGGREGATE, windows, errors=errors), endpoints)


def test_breaking_point_is_the_first_window_over_the_critical_p95() -> None:
    ws = [w(0, 25, 40), w(1, 50, 60, requests=400), w(2, 75, 150, requests=550), w(3, 100, 320, requests=560)]
    bp = fx.breaking_point(ws)
    assert bp.found and bp.users == 100 and bp.at_s == 15.0 and "p95 320 ms > 200 ms" in bp.reason
    assert bp.capacity_users == 75 and bp.capacity_rps == 110.0
    errors = [w(0, 25, 40), w(1, 50, 60, failures=9)]  # 9% errors
    assert fx.breaking_point(errors).reason == "error rate 9.0% > 5%"
    spiky = [w(0, 25, 250), w(1, 25, 40), w(2, 50, 230), w(3, 50, 60), w(4, 75, 210), w(5, 75, 260)]
    bp = fx.breaking_point(spiky)  # single slow windows (cold start, spawning) are not the breaking point
    assert (bp.users, bp.at_s, bp.capacity_users) == (75, 20.0, 50)
    none = fx.breaking_point(ws[:3])
    assert not none.found and none.capacity_users == 75 and none.max_users == 75


def test_spike_recovery_time_after_the_spike_ends() -> None:
    users = [10, 10, 10, 10, 100, 100, 100, 10, 10, 10, 10]
    p95 = [30, 40, 42, 38, 300, 400, 350, 200, 80, 45, 41]
    r = fx.spike_recovery([w(i, u, p) for i, (u, p) in enumerate(zip(users, p95, strict=True))])
    assert r.baseline_p95_ms == 40 and r.peak_p95_ms == 400 and r.spike_end_s == 35.0
    assert r.recovered and r.recovered_at_s == 50.0 and r.recovery_s == 15.0  # 45 ms ≤ 48 ms at window 9
    never = fx.spike_recovery([w(i, u, p) for i, (u, p) in enumerate(zip(users, [*p95[:7], 200, 200, 150, 90],
                                                                        strict=True))])  # fmt: skip
    assert not never.recovered and never.note == "p95 did not come back"
    assert fx.spike_recovery([w(0, 100, 50), w(1, 100, 50)]).note.startswith("no phase before")


def noisy(rng: random.Random, slope_mb_s: float, n: int = 40, base: float = 60.0, noise: float = 0.3,
          interval: float = 2.0) -> list[tuple[float, float]]:  # fmt: skip
    return [(i * interval, base + slope_mb_s * i * interval + rng.gauss(0, noise)) for i in range(n)]


def test_memory_leak_is_a_significant_sustained_slope_beyond_a_minimum_growth() -> None:
    rng = random.Random(1)
    leak = fx.memory_trend("api", noisy(rng, 0.5))  # 30 MB/min over 80 s
    assert leak.leak and leak.trend is not None and 25 < leak.trend.slope_per_min < 35
    assert leak.trend.ci_low < 30 < leak.trend.ci_high
    flat = fx.memory_trend("api", noisy(rng, 0.0, noise=2.0))
    assert not flat.leak
    tiny = fx.memory_trend("api", noisy(rng, 0.02, noise=0.01))  # significant but ~1 MB: not a leak
    assert not tiny.leak and "below" in tiny.why
    step = [(i * 2.0, 60.0 if i < 20 else 80.0) for i in range(40)]  # one jump, flat either side
    assert not fx.memory_trend("api", step).leak
    warmup = [(i * 2.0, 40 + min(i, 6) * 5.0 + rng.gauss(0, 0.2)) for i in range(40)]  # caches fill, then flat
    assert not fx.memory_trend("api", warmup).leak
    assert fx.memory_trend("api", noisy(rng, 1.0, n=4)).why == "too few samples for a trend"


def test_latency_drift_and_rate_limit_onset() -> None:
    ws = [w(i, 10, p) for i, p in enumerate([10, 20, 20, 21, 25, 30, 40, 42, 45, 44])]
    assert fx.latency_drift(ws) == (20, 44)
    onset = fx.rate_limit_onset([w(0, 10, 5, 100), w(1, 10, 5, 300), w(2, 10, 5, 300)], [0, 200, 250])
    assert (onset.limited, onset.first_at_s, onset.offered_rps, onset.accepted_rps) == (450, 5.0, 60.0, 15.0)
    assert fx.rate_limit_onset([w(0, 10, 5)], [0]).first_at_s is None


def test_consistency_counts_lost_and_extra_rows() -> None:
    assert fx.consistency(100, 5, 105).consistent is True
    lost = fx.consistency(100, 5, 95)
    assert (lost.missing, lost.consistent) == (10, False)
    assert fx.consistency(100, 0, 103).extra == 3
    assert fx.consistency(100, None, 3).consistent is None


def test_scenario_findings_dispatch_by_purpose() -> None:
    ramp = (w(0, 25, 40), w(1, 50, 60), w(2, 75, 250))
    (stress,) = for_run(result("stress_test", ramp), None)
    assert stress.status is Status.WARN and "supports up to 50 concurrent users" in stress.text
    samples = tuple(ResourceSample(i * 2.0, 10.0, 50 + i * 1.0) for i in range(30))
    system = SystemMetrics(0.0, 2.0, (ServiceSeries("api", samples), ServiceSeries("redis", note="not measured")))
    soak = for_run(result("soak_test", tuple(w(i, 10, 20) for i in range(9))), system)
    assert [f.name for f in soak] == ["Memory leak [api]", "Latency drift"]
    assert soak[0].status is Status.FAIL and soak[1].status is Status.PASS
    reg = stats("/api/v1/servers/ (then read back)", method="POST", requests=50, failures=2)
    db = DatabaseMetrics(servers_before=10, servers_after=55)
    system_db = SystemMetrics(0.0, 2.0, database=db)
    (cons,) = for_run(result("concurrent_operations", ramp, (reg, stats("/api/v1/servers/{id}", method="GET",
                                                                          requests=9))), system_db)  # fmt: skip
    assert cons.status is Status.FAIL and "3 of 48" in cons.text
    assert registrations(result("x", (), (reg,))) == 48


def test_429s_per_window_from_failures_when_they_count_as_errors() -> None:
    ws = (w(0, 10, 5, failures=0), w(1, 10, 5, failures=40), w(2, 10, 5, failures=60))
    r = result("smoke_test", ws, errors=(ErrorCount("CatchResponseError('HTTP 429')", 100),))
    assert limited_per_window(r) == [0, 40, 60]
    (f,) = for_run(r, None)
    assert f.status is Status.WARN and "from 5s at 20 req/s offered" in f.text
    (skipped,) = for_run(result("rate_limit_test", ws[:1]), None)
    assert skipped.status is Status.SKIP


def test_429s_recorded_per_window_drive_the_rate_limit_test_finding() -> None:
    ws = (replace(w(0, 10, 5), limited=0), replace(w(1, 10, 5), limited=30), replace(w(2, 10, 5), limited=60))
    r = result("rate_limit_test", ws)  # no failures: 429 is expected here
    assert limited_per_window(r) == [0, 30, 60]
    (f,) = for_run(r, None)
    assert f.status is Status.PASS and "90 of 300 requests answered 429, from 5s" in f.text
    (none,) = for_run(result("rate_limit_test", tuple(replace(x, limited=0) for x in ws)), None)
    assert none.status is Status.WARN and "no request was answered 429" in none.text
    again = RunResult.from_dict(json.loads(json.dumps(r.to_dict())))
    assert [x.limited for x in again.total.windows] == [0, 30, 60]
    assert "limited" not in json.dumps(result("smoke_test", (w(0, 1, 5),)).to_dict())  # absent stays absent


def test_locust_windows_file_with_429_counts(tmp_path: Path) -> None:
    golden = Path(__file__).parent / "golden" / "locust" / "rate_limit"
    doc = json.loads((golden / "locust_windows.json").read_text())
    for row in doc["windows"]:
        row["limited"] = row["requests"] // 2
    (tmp_path / "locust_windows.json").write_text(json.dumps(doc))
    meta = RunMeta(**json.loads((golden / "meta.json").read_text()))
    files = {"locust_json": golden / "locust.json", "windows": tmp_path / "locust_windows.json"}
    parsed = parse_locust(RunArtifacts("locust", meta.tool_version, meta.started_at, 0, files), meta)
    expected = sum(row["requests"] // 2 for row in doc["windows"])
    assert sum(x.limited or 0 for x in parsed.total.windows) == expected > 0


def test_connections_opening_one_by_one_are_not_a_leak() -> None:
    # PostgreSQL's pool growing: each new backend adds ~2 MB once, three times over the run.
    stairs = [(i * 2.0, 69.0 + 2.0 * (i >= 15) + 2.0 * (i >= 25) + 2.0 * (i >= 35)) for i in range(45)]
    t = fx.memory_trend("postgres", stairs)
    assert not t.leak, t.why
