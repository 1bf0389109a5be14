"""Key findings and recommendations, derived from the numbers with the seed's Bottleneck Analysis;
each recommendation cites the measurement behind it.

Returned as plain-text items (no markup) so the markdown and HTML renderers escape them their way.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from ci_perf.model import CheckResult, EndpointStats, Outcome, Status
from ci_perf.reports import system
from ci_perf.reports.common import delta_endpoint, delta_pct, format_value, metric_label, ms, sorted_endpoints

_SERVER_ERROR = re.compile(r"\b5\d\d\b")
_RATE_LIMITED = re.compile(r"\b429\b|too many requests", re.IGNORECASE)
_CONNECTION = re.compile(r"connection|refused|reset|timed? ?out|timeout", re.IGNORECASE)
_DB_HEAVY = re.compile(r"/servers")  # registration, listing and search hit PostgreSQL
MATERIAL_QUERY_MS = 10.0  # half the seed's 20 ms query target: database time worth a recommendation


@dataclass(frozen=True)
class ErrorSource:
    endpoint: str
    error: str
    occurrences: int


def error_sources(outcome: Outcome, limit: int = 5) -> list[ErrorSource]:
    """The most frequent (endpoint, error) pairs; falls back to the run totals when endpoints carry none."""
    rows = [ErrorSource(e.key, x.error, x.occurrences) for e in outcome.result.endpoints for x in e.errors]
    if not rows:
        rows = [ErrorSource("All requests", x.error, x.occurrences) for x in outcome.result.total.errors]
    return sorted(rows, key=lambda r: (-r.occurrences, r.endpoint, r.error))[:limit]


def _count(outcome: Outcome, pattern: re.Pattern[str]) -> int:
    sources = [x for e in outcome.result.endpoints for x in e.errors] or list(outcome.result.total.errors)
    return sum(x.occurrences for x in sources if pattern.search(x.error))


def _checks(outcome: Outcome, *statuses: Status) -> list[CheckResult]:
    return [c for c in outcome.evaluation.checks if c.status in statuses]


def findings(outcome: Outcome) -> list[str]:
    """Numbered 'Key Findings' as in the seed's report template: performance, bottlenecks, errors."""
    if outcome.infra is not None:
        return [f"The run broke ({outcome.infra.stage}) before it measured anything: {_first_line(outcome)}"]
    result = outcome.result
    failed, warned = _checks(outcome, Status.FAIL), _checks(outcome, Status.WARN)
    if failed:
        perf = f"Performance: {len(failed)} check(s) breached the critical level: " + "; ".join(
            c.message for c in failed
        )
    elif warned:
        perf = f"Performance: no critical breach; {len(warned)} check(s) missed the target: " + "; ".join(
            c.message for c in warned
        )
    else:
        perf = "Performance: all measured metrics within targets"
    items = [perf]
    slow = [e for e in sorted_endpoints(result.endpoints) if e.requests][:3]
    if slow:
        items.append("Slowest endpoints by p95: " + ", ".join(f"{e.key} ({ms(e.p95_ms)})" for e in slow))
    sources = error_sources(outcome)
    if sources:
        items.append(
            f"Errors: {result.total.failures:,} of {result.total.requests:,} requests failed; main sources: "
            + "; ".join(f"{s.endpoint}: {s.error} ×{s.occurrences}" for s in sources)
        )
    else:
        items.append(f"Errors: none in {result.total.requests:,} requests")
    if outcome.comparison and outcome.comparison.regressions:
        items.append(
            "Regressions vs baseline: "
            + ", ".join(
                f"{delta_endpoint(d.endpoint)} {metric_label(d.metric)} {delta_pct(d)}"
                for d in outcome.comparison.regressions
            )
        )
    items += [f.text for f in outcome.findings]
    items += system.summary_lines(outcome.system)
    items += _scale_out_lines(result.meta.labels)
    return items


def _scale_out_lines(labels: dict[str, str]) -> list[str]:
    """A distributed run that lost part of its load generators says so: its totals are short."""
    out = []
    if labels.get("workers_lost", "0") != "0":
        ids = labels.get("workers_lost_ids", "")
        out.append(
            f"Load generators: {labels['workers_lost']} of {labels.get('workers', '?')} Locust workers were "
            f"lost mid-run{f' ({ids})' if ids else ''}; totals miss their share after they died"
        )
    if labels.get("shards_missing"):
        out.append(
            f"Load generators: shards {labels['shards_missing']} are missing from this merge; "
            "totals cover the other shards only"
        )
    return out


def _peak_cpu(outcome: Outcome, service: str) -> float | None:
    series = outcome.system.service(service) if outcome.system else None
    cpu = [c for _, c in series.cpu()] if series else []
    return max(cpu) if cpu else None


def _database_advice(outcome: Outcome) -> list[str]:
    """Database advice only on evidence: measured query time or PostgreSQL CPU a material share, or,
    when the database was not measured, slow endpoints that use it (worded as the guess it is)."""
    db = outcome.system.database if outcome.system else None
    mean = db.query_mean_ms if db else None
    cpu = _peak_cpu(outcome, "postgres")
    slow_db = [e for e in outcome.result.endpoints if _DB_HEAVY.search(e.name) and e.successes and e.p95_ms >= 100]
    tips = ("look for slow queries and waiting connections (pg_stat_activity, EXPLAIN ANALYZE), index the "
            "common filters, size the connection pool")  # fmt: skip
    evidence = []
    if mean is not None and (mean >= MATERIAL_QUERY_MS or _breached(outcome, "Database")):
        evidence.append(f"queries averaged {mean:.1f} ms")
    if cpu is not None and cpu >= system.HIGH_CPU_PCT:
        evidence.append(f"PostgreSQL CPU peaked at {cpu:.0f}%")
    busy = _pool_busy(outcome)
    if busy is not None:
        evidence.append(busy)
    if evidence:
        return [f"Database: {' and '.join(evidence)}; {tips}"]
    if mean is None and cpu is None and slow_db:
        names = ", ".join(f"{e.key} p95 {ms(e.p95_ms)}" for e in slow_db[:3])
        return [f"Database (a guess: it was not measured in this run): endpoints that use it are slow ({names}); "
                f"run with the local or docker backend to measure it, or {tips}"]  # fmt: skip
    return []


def _pool_busy(outcome: Outcome) -> str | None:
    """The database's connections saturated: at the busiest sample every open connection was active, and
    query time filled at least half of what those connections could serve over the run."""
    db = outcome.system.database if outcome.system else None
    busiest = db.busiest if db else None
    if db is None or busiest is None or db.query_mean_ms is None or not db.calls:
        return None
    active = busiest.by_state.get("active", 0)
    capacity_s = max(1, db.peak_connections or 0) * outcome.result.meta.duration_s
    busy_s = db.calls * db.query_mean_ms / 1000
    if not active or active < (db.peak_connections or 0) or not capacity_s or busy_s < 0.5 * capacity_s:
        return None
    return (
        f"its {db.peak_connections} connection(s) were all active at the busiest sample, and queries took "
        f"{busy_s:,.0f} s of the {capacity_s:,.0f} connection-seconds the run offered ({busy_s / capacity_s:.0%})"
    )


def _policy_advice(outcome: Outcome) -> list[str]:
    """Policy-engine advice only when the policy service was measured busy; otherwise say where to look."""
    slow = [c for c in _checks(outcome, Status.FAIL, Status.WARN) if c.name.startswith("Policy evaluation")]
    if not slow:
        return []
    figures = "; ".join(f"{c.label} {format_value(c.actual, c.unit)}" for c in slow[:2])
    cpu = _peak_cpu(outcome, "opa")
    if cpu is not None and cpu >= system.HIGH_CPU_PCT:
        return [f"Policy engine (OPA): its CPU peaked at {cpu:.0f}% while {figures}; simplify the policies, "
                "use bundles, give OPA more CPU"]  # fmt: skip
    seen = f"its CPU peaked at {cpu:.0f}%" if cpu is not None else "it was not measured in this run"
    return [f"Policy evaluation: {figures}; the policy service does not look like the cause ({seen}): look at the "
            "API's own path first (its decision cache, which is keyed by user, action and resource; database and "
            "Redis calls)"]  # fmt: skip


def _breached(outcome: Outcome, prefix: str) -> bool:
    return any(c.name.startswith(prefix) for c in _checks(outcome, Status.FAIL, Status.WARN))


def _all_slow(endpoints: Sequence[EndpointStats], target_ms: float) -> bool:
    busy = [e for e in endpoints if e.successes]
    return len(busy) >= 2 and all(e.p95_ms >= target_ms for e in busy)


def _latency_creeps(outcome: Outcome) -> tuple[float, float] | None:
    """(first, last): median window p95 of the first third of the run (after ramp-up) and of the last,
    when the last is 50% above the first (a leak's signature); else None."""
    ws = [w for w in outcome.result.total.windows if w.p95_ms is not None]
    third = len(ws) // 3
    if third < 2:
        return None
    first = sorted(w.p95_ms or 0 for w in ws[1 : third + 1])[third // 2]
    last = sorted(w.p95_ms or 0 for w in ws[-third:])[third // 2]
    return (first, last) if first > 0 and last > 1.5 * first else None


def recommendations(outcome: Outcome) -> list[str]:
    """Advice from the seed's Bottleneck Analysis, Troubleshooting and Optimization Tips."""
    if outcome.infra is not None:
        return [f"Fix what broke first ({outcome.infra.stage}); its message and the service logs (logs/) say how"]
    out: list[str] = []
    endpoints = outcome.result.endpoints
    out += _database_advice(outcome)
    out += _policy_advice(outcome)
    limited = _count(outcome, _RATE_LIMITED)
    if limited:
        out.append(
            f"Rate limiting: {limited} requests were answered 429; raise the limit for load-test keys, "
            "or treat 429 as expected (rate_limit_test does); check Redis latency (redis-cli --latency)"
        )
    if _all_slow(endpoints, 100):
        fastest = min((e for e in endpoints if e.successes), key=lambda e: e.p95_ms)
        out.append(
            f"Application: every endpoint has p95 ≥ 100 ms (the fastest, {fastest.key}, {ms(fastest.p95_ms)}); "
            "check API CPU and memory, increase workers (uvicorn --workers), cache frequently read data"
        )
    server_errors = _count(outcome, _SERVER_ERROR)
    if server_errors:
        out.append(f"Server errors: {server_errors} 5xx answers; the target is none: read the API logs for them")
    refused = _count(outcome, _CONNECTION)
    if refused:
        out.append(
            f"Connections: {refused} requests were refused, reset or timed out; check the API's worker and "
            "connection limits and the database pool (seed troubleshooting: pool exhausted)"
        )
    creep = _latency_creeps(outcome)
    if creep:
        out.append(
            f"Stability: p95 grew from {ms(creep[0])} (first third) to {ms(creep[1])} (last third); look for "
            "memory leaks and pool exhaustion (run soak_test)"
        )
    regressed = sorted({d.endpoint for d in outcome.comparison.regressions}) if outcome.comparison else []
    if regressed:
        out.append(
            f"Regression against the baseline in {', '.join(regressed[:3])}"
            + (f" and {len(regressed) - 3} more" if len(regressed) > 3 else "")
            + ": review what this change does on those endpoints' code paths before merging; "
            "do not save this run as the new baseline"
        )
    out += [f.advice for f in outcome.findings if f.advice and f.status is not Status.PASS]
    out += system.advice(outcome.system)
    if not out and outcome.verdict.status == "pass" and not outcome.result.total.failures:
        out.append("No bottleneck identified: a clean run, fit to keep as the baseline and to track trends with")
    elif not out:
        out.append(f"No bottleneck identified from the measurements; the verdict is {outcome.verdict.status}: "
                   f"{outcome.verdict.headline}")  # fmt: skip
    return out


def _first_line(outcome: Outcome) -> str:
    return outcome.infra.message.splitlines()[0] if outcome.infra and outcome.infra.message else ""
