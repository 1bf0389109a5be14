"""The sticky pull-request comment and the job summary.

The comment must stay under GitHub's 65,536-character limit whatever the endpoint count, so it is
assembled under a budget: the marker, headline and links always stay; then sections get what is
left in order of importance (thresholds, compact table, method, charts, full tables), and tables
cut rows (saying how many) rather than disappear.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ci_perf.model import Change, Comparison, MetricDelta, Outcome, Status, Window
from ci_perf.reports.common import (
    CHANGE_ICON,
    HEADLINE_ICON,
    STATUS_ICON,
    check_actual,
    delta_endpoint,
    delta_pct,
    delta_value,
    downsample,
    duration,
    endpoint_label,
    escape_md,
    fit_table,
    headline_reason,
    limit_text,
    metric_label,
    ms,
    pct,
    rps,
    shorten,
    sorted_endpoints,
)
from ci_perf.reports.mdparts import ENDPOINT_HEADER, check_metric, endpoint_rows

GITHUB_LIMIT = 65536
MORE = "… {n} more rows in the full report"
_COMPACT_METRICS = ("p50", "p95", "p99", "rps", "error_rate")
_CHANGE_ORDER = {Change.DEGRADED: 0, Change.IMPROVED: 1, Change.INCONCLUSIVE: 2, Change.UNCHANGED: 3}


def comment_marker(scenario: str, tool: str) -> str:
    """Hidden first line by which the publisher finds (and edits) this scenario's comment."""
    safe = "".join(ch for ch in f"{scenario}:{tool}" if ch.isalnum() or ch in "_.:-")
    return f"<!-- ci-perf:{safe} -->"


def _headline(outcome: Outcome) -> str:
    meta = outcome.result.meta
    verdict, why = headline_reason(outcome)
    name = escape_md(shorten(f"{meta.scenario} ({meta.tool})", 120))
    return f"### {HEADLINE_ICON[verdict]}: {name} — {escape_md(why)}"


def _meta_line(outcome: Outcome) -> str:
    meta, total = outcome.result.meta, outcome.result.total
    parts = [
        f"{meta.users} users",
        duration(meta.duration_s),
        f"{total.requests:,} requests",
        f"{escape_md(meta.tool)} {escape_md(meta.tool_version)}",
    ]
    if meta.commit:
        parts.append(f"commit {escape_md(meta.commit[:12])}")
    comparison = outcome.comparison
    if comparison:
        base = comparison.baseline
        ref = " ".join(x for x in (base.commit[:12], base.ref) if x) or comparison.source
        parts.append(f"baseline {escape_md(shorten(ref, 80))}")
    if outcome.side_by_side:
        parts.append(f"measured side by side on this runner, {len(outcome.side_by_side.order)} rounds")
    return "<sub>" + " · ".join(parts) + "</sub>"


def _links(links: Mapping[str, str]) -> str:
    items = [f"[{escape_md(label)}]({url.replace(')', '%29').replace(' ', '%20')})" for label, url in links.items()]
    return "📄 " + " · ".join(items) if items else ""


def _thresholds(outcome: Outcome, budget: int) -> str:
    rows = [
        [
            check_metric(c),
            check_actual(c),
            limit_text(c.target, c.unit, c.direction),
            limit_text(c.critical, c.unit, c.direction),
            STATUS_ICON[c.status],
        ]
        for c in sorted(outcome.evaluation.checks, key=_check_order)
    ]
    if not rows:
        return ""
    table = fit_table(("Check", "Actual", "Target", "Critical", "Status"), rows, budget - 20, MORE)
    return f"**Thresholds**\n\n{table}" if table else ""


def _check_order(check: Any) -> int:
    return {Status.FAIL: 0, Status.WARN: 1, Status.PASS: 2, Status.NO_DATA: 3, Status.SKIP: 4}[check.status]


def _delta_row(d: MetricDelta) -> list[str]:
    return [
        escape_md(delta_endpoint(d.endpoint)),
        metric_label(d.metric),
        delta_value(d, d.baseline),
        delta_value(d, d.current),
        delta_pct(d),
        CHANGE_ICON[d.change],
    ]


_DELTA_HEADER = ("Endpoint", "Metric", "Baseline", "Current", "Δ", "Verdict")


def _compact(outcome: Outcome, budget: int) -> str:
    """Aggregate metrics plus what moved (with a baseline) or the slowest endpoints (without)."""
    comparison = outcome.comparison
    if comparison:
        total_key = outcome.result.total.key
        ordered = sorted(comparison.deltas, key=lambda d: (d.endpoint != total_key, _CHANGE_ORDER[d.change]))
        picked = [
            d
            for d in ordered
            if d.metric in _COMPACT_METRICS
            and (d.endpoint == total_key or d.change in (Change.DEGRADED, Change.IMPROVED))
        ]
        table = fit_table(_DELTA_HEADER, [_delta_row(d) for d in picked], budget - 40, MORE)
        return f"**Current vs baseline**\n\n{table}" if table else ""
    endpoints = [outcome.result.total, *sorted_endpoints(outcome.result.endpoints)[:10]]
    rows = [
        [escape_md(endpoint_label(e)), ms(e.p50_ms), ms(e.p95_ms), ms(e.p99_ms), rps(e.rps), pct(e.error_rate)]
        for e in endpoints
    ]
    table = fit_table(("Endpoint", "p50", "p95", "p99", "req/s", "Error rate"), rows, budget - 40, MORE)
    return f"**Results** (no baseline to compare with)\n\n{table}" if table else ""


def _details(summary: str, body: str) -> str:
    return f"<details><summary>{summary}</summary>\n\n{body}\n\n</details>"


def _full_endpoints(outcome: Outcome, budget: int) -> str:
    title = f"All endpoints ({len(outcome.result.endpoints)})"
    table = fit_table(ENDPOINT_HEADER, endpoint_rows(outcome), budget - len(title) - 60, MORE)
    return _details(title, table) if table else ""


def _all_deltas(outcome: Outcome, budget: int) -> str:
    if not outcome.comparison:
        return ""
    deltas = outcome.comparison.deltas
    title = f"All baseline deltas ({len(deltas)})"
    table = fit_table(_DELTA_HEADER, [_delta_row(d) for d in deltas], budget - len(title) - 60, MORE)
    return _details(title, table) if table else ""


def _series_chart(title: str, unit: str, windows: list[Window], value: Callable[[Window], float | None]) -> str:
    points = [(w.start_s, v) for w in windows if (v := value(w)) is not None]
    if len(points) < 2:
        return ""
    xs = ", ".join(f"{x:g}" for x, _ in points)
    ys = ", ".join(f"{y:.1f}" for _, y in points)
    return (
        f'```mermaid\nxychart-beta\n    title "{title}"\n    x-axis "elapsed (s)" [{xs}]\n'
        f'    y-axis "{unit}"\n    line [{ys}]\n```'
    )


def _charts(outcome: Outcome, budget: int) -> str:
    windows = downsample(outcome.result.total.windows, 60)
    charts = [
        _series_chart("p95 latency, all requests", "ms", windows, lambda w: w.p95_ms),
        _series_chart("Throughput, all requests", "req/s", windows, lambda w: w.rps),
    ]
    body = "\n\n".join(c for c in charts if c)
    text = _details("Over time", body) if body else ""
    return text if len(text) <= budget else ""


def _method(comparison: Comparison | None, budget: int) -> str:
    if not comparison:
        return ""
    lines = [f"Baseline source: {escape_md(comparison.source)}"]
    if comparison.warning:
        lines.append(f"⚠️ {escape_md(comparison.warning)}")
    lines.append(escape_md(comparison.method))
    text = _details("How the comparison was made", "\n\n".join(lines))
    return text if len(text) <= budget else ""


def _findings(outcome: Outcome, budget: int) -> str:
    """What the scenario is for (breaking point, leak, recovery...), one line each."""
    items = [f"- {STATUS_ICON[f.status].split()[0]} {escape_md(f.text)}" for f in outcome.findings]
    text = "**Findings**\n\n" + "\n".join(items) if items else ""
    return text if len(text) <= budget else ""


def _broke(outcome: Outcome, budget: int) -> str:
    """A run that broke has no results to show: what broke, with the log lines its error carries."""
    assert outcome.infra is not None
    message = outcome.infra.message.replace("~~~~", "~ ~ ~ ~")[: max(0, budget - 300)]
    return (
        f"**What broke** ({escape_md(outcome.infra.stage)}, exit {outcome.infra.exit_code})\n\n"
        f"~~~~text\n{message}\n~~~~\n\n"
        "No load results were measured; the report folder keeps each service's log (logs/)."
    )


def _body(outcome: Outcome, links: Mapping[str, str], max_chars: int, fixed: list[str]) -> str:
    """Fill the budget in priority order, then lay the sections out in reading order."""
    head = [*fixed, _headline(outcome), _meta_line(outcome)]
    tail = _links(links)
    if outcome.infra is not None:
        remaining = max_chars - sum(len(p) + 2 for p in [*head, tail]) - 1
        return "\n\n".join(p for p in [*head, _broke(outcome, remaining), tail] if p)[:max_chars] + "\n"
    remaining = max_chars - sum(len(p) + 2 for p in [*head, tail]) - 1
    built: dict[str, str] = {}
    builders: list[tuple[str, Callable[[int], str]]] = [
        ("thresholds", lambda b: _thresholds(outcome, b)),
        ("findings", lambda b: _findings(outcome, b)),
        ("compact", lambda b: _compact(outcome, b)),
        ("method", lambda b: _method(outcome.comparison, b)),
        ("charts", lambda b: _charts(outcome, b)),
        ("deltas", lambda b: _all_deltas(outcome, b)),
        ("endpoints", lambda b: _full_endpoints(outcome, b)),
    ]
    for name, build in builders:
        text = build(remaining) if remaining > 0 else ""
        built[name] = text
        remaining -= len(text) + 2 if text else 0
    order = ("compact", "thresholds", "findings", "endpoints", "deltas", "charts", "method")
    parts = [*head, *(built[n] for n in order if built[n]), tail]
    return "\n\n".join(p for p in parts if p)[:max_chars] + "\n"


def render_comment(outcome: Outcome, links: Mapping[str, str] | None = None, max_chars: int = 65000) -> str:
    """The sticky comment: marker line first, one headline, compact tables, details, links."""
    meta = outcome.result.meta
    return _body(outcome, links or {}, min(max_chars, GITHUB_LIMIT) - 1, [comment_marker(meta.scenario, meta.tool)])


def render_summary(outcome: Outcome, links: Mapping[str, str] | None = None) -> str:
    """The job summary: the comment's content without the marker (summaries allow 1 MiB)."""
    return _body(outcome, links or {}, 1_000_000, [])
