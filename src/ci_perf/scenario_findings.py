"""The findings of one run, per scenario purpose (ci_perf.findings does the analysis), as judged
items the reports show: Key Findings, Recommendations, and a JUnit test case each."""

from __future__ import annotations

import re
from collections.abc import Sequence

from ci_perf import findings as fx
from ci_perf.model import CheckResult, Finding, RunResult, Status
from ci_perf.observe.model import SystemMetrics

_REGISTRATION = re.compile(r"^/api/v1/servers/?( \(.*\))?$")
_RATE_LIMITED = re.compile(r"\b429\b|too many requests", re.IGNORECASE)  # "HTTP 429", Locust's repr of it
_CONSISTENCY_SCENARIOS = ("concurrent_operations", "database_stress", "server_registration_focused")


def critical_limits(checks: Sequence[CheckResult]) -> tuple[float, float]:
    """The run's critical aggregate p95 (ms) and error rate (fraction): the breaking point's limits."""
    p95, errors = 200.0, 0.05
    for c in checks:
        if c.name == "API p95":
            p95 = c.critical
        elif c.name == "Error rate":
            errors = c.critical / 100
    return p95, errors


def for_run(result: RunResult, system: SystemMetrics | None, checks: Sequence[CheckResult] = ()) -> list[Finding]:
    scenario = result.meta.scenario
    out: list[Finding] = []
    if scenario == "stress_test":
        out.append(stress(result, *critical_limits(checks)))
    elif scenario == "spike_test":
        out.append(spike(result))
    elif scenario == "soak_test":
        out += soak(result, system)
    out += rate_limit(result)
    if scenario in _CONSISTENCY_SCENARIOS:
        out.append(stored_registrations(result, system))
    return out


def stress(result: RunResult, p95_limit_ms: float, error_limit: float) -> Finding:
    bp = fx.breaking_point(result.total.windows, p95_limit_ms, error_limit)
    if not bp.found:
        return Finding("Breaking point", Status.PASS,
                       f"No breaking point up to {bp.max_users} users"
                       + (f" ({bp.capacity_rps:g} req/s)" if bp.capacity_rps else "")
                       + f": p95 stayed under {p95_limit_ms:g} ms and errors under {error_limit:.0%}")  # fmt: skip
    supports = (
        f"supports up to {bp.capacity_users} concurrent users ({bp.capacity_rps:g} req/s)"
        if bp.capacity_users
        else "no load level held"
    )
    return Finding(
        "Breaking point", Status.WARN,
        f"Breaking point at {bp.users} users, {bp.rps:g} req/s, {bp.at_s:.0f}s into the run ({bp.reason}); "
        f"{'the API ' if bp.capacity_users else ''}{supports}",
        "Capacity: scale out or optimize the slowest endpoints before traffic reaches the breaking point; "
        "check CPU and database figures at that moment for the bottleneck",
    )  # fmt: skip


def spike(result: RunResult) -> Finding:
    r = fx.spike_recovery(result.total.windows)
    if r.baseline_p95_ms is None:
        return Finding("Spike recovery", Status.SKIP, f"Spike recovery not measured: {r.note}")
    if r.recovered:
        return Finding("Spike recovery", Status.PASS,
                       f"Recovered {r.recovery_s:g}s after the spike: p95 back to ≤120% of the pre-spike "
                       f"{r.baseline_p95_ms:.0f} ms (peak {r.peak_p95_ms:.0f} ms)")  # fmt: skip
    return Finding("Spike recovery", Status.FAIL,
                   f"No recovery after the spike: {r.note} (pre-spike p95 {r.baseline_p95_ms:.0f} ms, "
                   f"peak {r.peak_p95_ms:.0f} ms)",
                   "Recovery: look for queues that do not drain (connection pools, worker backlog) and "
                   "for autoscaling that lags the load")  # fmt: skip


def soak(result: RunResult, system: SystemMetrics | None) -> list[Finding]:
    out = [memory(s.service, s.rss()) for s in (system.services if system else ()) if s.rss()]
    if not out:
        out.append(Finding("Memory leak", Status.SKIP, "Memory leak not measured: no memory samples of the services"))
    drift = fx.latency_drift(result.total.windows)
    if drift is not None:
        first, last = drift
        grows = first > 0 and last > 1.5 * first
        out.append(
            Finding(
                "Latency drift",
                Status.WARN if grows else Status.PASS,
                f"Latency drift: p95 {first:.0f} ms in the first third, {last:.0f} ms in the last third",
                "Stability: p95 grows over the run; look for leaks and pool exhaustion" if grows else "",
            )
        )
    return out


def memory(service: str, points: list[tuple[float, float]]) -> Finding:
    t = fx.memory_trend(service, points)
    name = f"Memory leak [{service}]"
    if t.leak:
        return Finding(name, Status.FAIL, f"Memory leak in {service}: {t.start_mb:.0f} → {t.end_mb:.0f} MB, {t.why}",
                       f"Memory: {service} grows steadily under load; take heap snapshots (tracemalloc, "
                       "memray) early and late in a soak run and compare them")  # fmt: skip
    return Finding(name, Status.PASS, f"No memory leak in {service} ({t.start_mb:.0f} → {t.end_mb:.0f} MB; {t.why})")


def limited_per_window(result: RunResult) -> list[int] | None:
    """429s per window: as the tool recorded them (Locust), else, when 429 counts as a failure, the
    windows' failures split by the share of 429 among all failures (exact when every failure was a
    429). None when neither tells (k6 in rate_limit_test, where 429 is a success)."""
    windows = result.total.windows
    if any(w.limited is not None for w in windows):
        return [w.limited or 0 for w in windows]
    errors = [x for e in result.endpoints for x in e.errors] or list(result.total.errors)
    limited = sum(x.occurrences for x in errors if _RATE_LIMITED.search(x.error))
    failures = result.total.failures
    if not limited or not failures:
        return None
    share = limited / failures
    return [round(w.failures * share) for w in result.total.windows]


def rate_limit(result: RunResult) -> list[Finding]:
    counts = limited_per_window(result)
    expected = result.meta.scenario == "rate_limit_test"
    if counts is None:
        if expected:
            return [Finding("Rate limit onset", Status.SKIP,
                            "Rate limit onset not measured: 429 answers are counted as expected in this scenario, "
                            "so the tools do not report them per window")]  # fmt: skip
        return []
    r = fx.rate_limit_onset(result.total.windows, counts)
    if not r.limited:
        if not expected:
            return []
        return [Finding("Rate limit onset", Status.WARN,
                        f"Rate limiting: no request was answered 429 at up to {_peak_rps(result):g} req/s",
                        "Rate limits: rate_limit_test saw no 429; check that the limit is enabled "
                        "(RATE_LIMIT_ENABLED, the key's rate_limit) and below the rate this test reaches")]  # fmt: skip
    text = (
        f"Rate limiting: {r.limited:,} of {r.requests:,} requests answered 429, from {r.first_at_s:.0f}s "
        f"at {r.offered_rps:g} req/s offered; about {r.accepted_rps:g} req/s accepted while limited"
    )
    return [Finding("Rate limit onset", Status.PASS if expected else Status.WARN, text)]


def _peak_rps(result: RunResult) -> float:
    return round(max((w.rps for w in result.total.windows), default=result.total.rps), 1)


def registrations(result: RunResult) -> int:
    return sum(e.requests - e.failures for e in result.endpoints
               if e.method == "POST" and _REGISTRATION.match(e.name))  # fmt: skip


def stored_registrations(result: RunResult, system: SystemMetrics | None) -> Finding:
    db = system.database if system else None
    c = fx.consistency(registrations(result), db.servers_before if db else None, db.servers_after if db else None)
    if c.stored is None:
        return Finding("Consistency", Status.SKIP, "Consistency not measured: the servers table was not readable")
    if c.missing:
        return Finding("Consistency", Status.FAIL,
                       f"Consistency: {c.missing:,} of {c.registered:,} successful registrations are missing "
                       f"from the database ({c.stored:,} rows added)",
                       "Consistency: registrations answered 201 but not stored; check transactions and "
                       "commit handling under concurrency")  # fmt: skip
    extra = (
        f"; {c.extra:,} more rows than successful answers (likely requests still in flight when the load "
        "stopped, or answers that failed after the commit)"
        if c.extra
        else ""
    )
    return Finding(
        "Consistency", Status.PASS, f"Consistency: all {c.registered:,} successful registrations are stored{extra}"
    )
