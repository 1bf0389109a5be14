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
from ci_perf.reports.common import delta_endpoint, delta_pct, metric_label, ms, sorted_endpoints

_SERVER_ERROR = re.compile(r"\b5\d\d\b")
_RATE_LIMITED = re.compile(r"\b429\b|too many requests", re.IGNORECASE)
_CONNECTION = re.compile(r"connection|refused|reset|timed? ?out|timeout", re.IGNORECASE)
_DB_HEAVY = re.compile(r"/servers")  # registration, listing and search hit PostgreSQL


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


def _breached(outcome: Outcome, prefix: str) -> bool:
    return any(c.name.startswith(prefix) for c in _checks(outcome, Status.FAIL, Status.WARN))


def _all_slow(endpoints: Sequence[EndpointStats], target_ms: float) -> bool:
    busy = [e for e in endpoints if e.requests]
    return len(busy) >= 2 and all(e.p95_ms >= target_ms for e in busy)


def _latency_creeps(outcome: Outcome) -> bool:
    """p95 of the last third of the run 50% above the first third (after ramp-up): a leak's signature."""
    ws = [w for w in outcome.result.total.windows if w.p95_ms is not None]
    third = len(ws) // 3
    if third < 2:
        return False
    first = sorted(w.p95_ms or 0 for w in ws[1 : third + 1])[third // 2]
    last = sorted(w.p95_ms or 0 for w in ws[-third:])[third // 2]
    return first > 0 and last > 1.5 * first


def recommendations(outcome: Outcome) -> list[str]:
    """Advice from the seed's Bottleneck Analysis, Troubleshooting and Optimization Tips."""
    if outcome.infra is not None:
        return [f"Fix what broke first ({outcome.infra.stage}); its message and the service logs (logs/) say how"]
    out: list[str] = []
    endpoints = outcome.result.endpoints
    slow_db = [e.key for e in endpoints if _DB_HEAVY.search(e.name) and e.p95_ms >= 100 and e.requests]
    if _breached(outcome, "Database") or _breached(outcome, "Server registration") or slow_db:
        out.append(
            "Database: look for slow queries and waiting connections (SELECT * FROM pg_stat_activity; "
            "EXPLAIN ANALYZE), add indexes for common filters, increase the connection pool"
            + (f" (slow: {', '.join(slow_db[:3])})" if slow_db else "")
        )
    if _breached(outcome, "Policy evaluation"):
        out.append(
            "Policy engine (OPA): policy evaluation is above 50 ms; optimize policies, cache decisions, "
            "use OPA bundles, give OPA more resources"
        )
    limited = _count(outcome, _RATE_LIMITED)
    if limited:
        out.append(
            f"Rate limiting: {limited} requests were answered 429; raise the limit for load-test keys, "
            "or treat 429 as expected (rate_limit_test does); check Redis latency (redis-cli --latency)"
        )
    if _all_slow(endpoints, 100):
        out.append(
            "Application: all endpoints are slow (p95 ≥ 100 ms); check API CPU and memory, increase "
            "workers (uvicorn --workers), add caching for frequently read data"
        )
    server_errors = _count(outcome, _SERVER_ERROR)
    if server_errors:
        out.append(f"Server errors: {server_errors} 5xx answers; the target is none: read the API logs for them")
    if _count(outcome, _CONNECTION):
        out.append(
            "Connections: requests were refused, reset or timed out; check the API's worker and "
            "connection limits and the database pool (seed troubleshooting: pool exhausted)"
        )
    if _latency_creeps(outcome):
        out.append("Stability: p95 grows over the run; look for memory leaks and pool exhaustion (run soak_test)")
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
