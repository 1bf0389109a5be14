"""The verdict of one run, decided here and nowhere else (the exit code from the results alone).

fail (exit 1): a critical threshold breach, a failed finding, or a regression when gating on them.
warn (exit 0): a missed target, a finding worth a look, or a regression when not gating.
no_data (exit 0): nothing failed, but the run's own latency could not be judged (too few successful
requests): neither a pass nor a warning. error (exit 2 or 3): the run broke before it could be judged.
"""

from __future__ import annotations

from ci_perf.errors import EXIT_GATE_FAILED, EXIT_OK
from ci_perf.model import (
    AGGREGATE,
    CheckResult,
    MetricDelta,
    Outcome,
    Status,
    Verdict,
    VerdictItem,
)
from ci_perf.thresholds import format_value, limit_text

# The run-wide latency check: when it has too few samples, the run as a whole has not enough data.
RUN_LATENCY_CHECK = "API p95"


def check_text(c: CheckResult) -> str:
    actual = format_value(c.actual, c.unit)
    if c.status is Status.FAIL:
        return f"{c.label} {actual} breaches critical {limit_text(c.critical, c.unit, c.direction)}"
    return f"{c.label} {actual} misses target {limit_text(c.target, c.unit, c.direction)}"


_METRIC_NAME = {"error_rate": "error rate", "rps": "req/s"}


def delta_text(d: MetricDelta) -> str:
    where = "All requests" if d.endpoint == AGGREGATE else d.endpoint
    change = f"{d.delta_pct:+.1f}%" if d.delta_pct is not None else "changed"
    p_value = f" (p={d.p_value:.3g})" if d.p_value is not None else ""
    if d.ci_low_pct is not None and d.ci_high_pct is not None:  # same-runner A/B: the paired interval
        p_value = f" (interval {d.ci_low_pct:+.1f}%..{d.ci_high_pct:+.1f}%)"
    return f"{_METRIC_NAME.get(d.metric, d.metric)} of {where} {change} vs baseline{p_value}"


def items_of(outcome: Outcome) -> list[VerdictItem]:
    """Everything that is not a plain pass, failures first, in the order a reader should see them."""
    checks = outcome.evaluation.checks
    gate = "fail" if outcome.gating.fail_on_regression else "warn"
    regressions = sorted(outcome.comparison.regressions if outcome.comparison else (), key=_regression_order)
    items = [VerdictItem("fail", "finding", f.text) for f in outcome.findings if f.status is Status.FAIL]
    items += [VerdictItem("fail", "threshold", check_text(c)) for c in checks if c.status is Status.FAIL]
    items += [VerdictItem(gate, "regression", delta_text(d)) for d in regressions]  # type: ignore[arg-type]
    items += [VerdictItem("warn", "threshold", check_text(c)) for c in checks if c.status is Status.WARN]
    items += [VerdictItem("warn", "finding", f.text) for f in outcome.findings if f.status is Status.WARN]
    return sorted(items, key=lambda i: i.level != "fail")  # stable: failures first, order kept


_METRIC_ORDER = {"p95": 0, "p99": 1, "p50": 2, "error_rate": 3, "rps": 4}


def _regression_order(d: MetricDelta) -> tuple[int, bool, float]:
    """p95 before other metrics, a named endpoint before the aggregate (it says where to look), then
    the biggest change."""
    return (_METRIC_ORDER.get(d.metric, 9), d.endpoint == AGGREGATE, -abs(d.delta_pct or 0))


def _more(items: list[VerdictItem]) -> str:
    return f" (+{len(items) - 1} more)" if len(items) > 1 else ""


def decide(outcome: Outcome) -> Verdict:
    if outcome.infra is not None:
        infra = outcome.infra
        item = VerdictItem("fail", "infra", f"{infra.stage}: {infra.message}")
        return Verdict("error", infra.exit_code, f"the run broke ({infra.stage}): {infra.message}", (item,))
    items = items_of(outcome)
    failures = [i for i in items if i.level == "fail"]
    if failures:
        return Verdict("fail", EXIT_GATE_FAILED, failures[0].text + _more(failures), tuple(items))
    warnings = [i for i in items if i.level == "warn"]
    thin = next((c for c in outcome.evaluation.checks if c.name == RUN_LATENCY_CHECK), None)
    if thin is not None and thin.status is Status.NO_DATA:
        return Verdict("no_data", EXIT_OK, f"not enough data: {thin.message}", tuple(items))
    if warnings:
        return Verdict("warn", EXIT_OK, warnings[0].text + _more(warnings), tuple(items))
    thin_checks = sum(c.status is Status.NO_DATA for c in outcome.evaluation.checks)
    if thin_checks:  # say less, and say it true: those were not passed, just not judged
        return Verdict("pass", EXIT_OK, f"all judged checks passed; {thin_checks} had too few requests to judge", ())
    return Verdict("pass", EXIT_OK, "all checks passed", ())
