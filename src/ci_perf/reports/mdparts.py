"""Markdown pieces shared by report.md, the pull-request comment and the job summary."""

from __future__ import annotations

from ci_perf.model import CheckResult, Comparison, EndpointStats, Outcome
from ci_perf.reports.common import (
    CHANGE_ICON,
    delta_endpoint,
    delta_pct,
    delta_value,
    endpoint_label,
    escape_md,
    md_table,
    metric_label,
    ms,
    pct,
    rps,
    run_date,
    sorted_endpoints,
)

ENDPOINT_HEADER = ("Endpoint", "Requests", "Failures", "Error rate", "req/s", "p50", "p90", "p95", "p99", "max")


def check_metric(check: CheckResult) -> str:
    """The check's name, with its endpoint when the check is about one endpoint."""
    scoped = check.scope[:1].isupper() and check.scope not in check.name
    return escape_md(f"{check.name} ({check.scope})" if scoped else check.name)


def endpoint_row(e: EndpointStats, bold: bool = False) -> list[str]:
    name = escape_md(endpoint_label(e))
    return [
        f"**{name}**" if bold else name,
        f"{e.requests:,}",
        f"{e.failures:,}",
        pct(e.error_rate),
        rps(e.rps),
        ms(e.p50_ms),
        ms(e.p90_ms),
        ms(e.p95_ms),
        ms(e.p99_ms),
        ms(e.max_ms),
    ]


def endpoint_rows(outcome: Outcome) -> list[list[str]]:
    """Slowest endpoint first, the aggregate last."""
    rows = [endpoint_row(e) for e in sorted_endpoints(outcome.result.endpoints)]
    return [*rows, endpoint_row(outcome.result.total, bold=True)]


def comparison_section(comparison: Comparison, heading: str = "## Baseline Comparison") -> str:
    base = comparison.baseline
    counts = {c: sum(d.change is c for d in comparison.deltas) for c in CHANGE_ICON}
    lines = [
        heading,
        "",
        f"Baseline: {escape_md(comparison.source)} — {escape_md(base.tool)} {escape_md(base.tool_version)}, "
        f"{run_date(base)}, commit {escape_md(base.commit[:12] or 'unknown')} {escape_md(base.ref)}".rstrip(),
        "",
        "Verdicts: " + ", ".join(f"{CHANGE_ICON[c]} {n}" for c, n in counts.items()),
    ]
    if comparison.warning:
        lines += ["", f"> ⚠️ {escape_md(comparison.warning)}"]
    rows = [
        [
            escape_md(delta_endpoint(d.endpoint)),
            metric_label(d.metric),
            delta_value(d, d.baseline),
            delta_value(d, d.current),
            delta_pct(d),
            CHANGE_ICON[d.change],
            escape_md(d.note),
        ]
        for d in comparison.deltas
    ]
    lines += [
        "",
        md_table(("Endpoint", "Metric", "Baseline", "Current", "Δ", "Verdict", "Note"), rows),
        "",
        f"Method: {escape_md(comparison.method)}",
    ]
    return "\n".join(lines)
