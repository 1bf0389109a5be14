"""report.html: one self-contained file (inline CSS and SVG, no script, nothing fetched), so it works
offline, as a CI artifact and behind strict content-security policies. All text is escaped."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from html import escape
from importlib import resources
from string import Template

from ci_perf.advice import findings, recommendations
from ci_perf.model import Comparison, EndpointStats, Outcome, RunMeta, Window
from ci_perf.reports import system as system_report
from ci_perf.reports.common import (
    CHANGE_ICON,
    STATUS_ICON,
    check_actual,
    delta_endpoint,
    delta_pct,
    delta_value,
    duration,
    endpoint_label,
    headline_reason,
    limit_text,
    metric_label,
    ms,
    pct,
    percentile_note,
    rps,
    run_date,
    sorted_endpoints,
)
from ci_perf.reports.svg import Series, line_chart

Cell = tuple[str, str]  # (text, css class); text is escaped when rendered


def _table(header: Sequence[str], rows: Sequence[Sequence[Cell]], row_class: Sequence[str] = ()) -> str:
    head = "".join(f'<th class="{"name" if i == 0 else ""}">{escape(h)}</th>' for i, h in enumerate(header))
    body = []
    for i, row in enumerate(rows):
        cls = f' class="{row_class[i]}"' if i < len(row_class) and row_class[i] else ""
        cells = "".join(f'<td class="{c}">{escape(t)}</td>' for t, c in row)
        body.append(f"<tr{cls}>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _meta(meta: RunMeta) -> str:
    items = [
        ("Date", meta.started_at or "unknown"),
        ("Scenario", meta.scenario),
        ("Tool", f"{meta.tool} {meta.tool_version}"),
        ("Host", meta.host),
        ("Users", f"{meta.users} concurrent"),
        ("Spawn rate", f"{meta.spawn_rate:g} users/second"),
        ("Duration", duration(meta.duration_s)),
    ]
    if meta.commit or meta.ref:
        items.append(("Commit", f"{meta.commit} {meta.ref}".strip()))
    return '<dl class="meta">' + "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in items) + "</dl>"


def _thresholds(outcome: Outcome) -> str:
    rows = []
    for c in outcome.evaluation.checks:
        rows.append(
            [
                (c.name, "name"),
                (c.scope, "name"),
                (check_actual(c), ""),
                (limit_text(c.target, c.unit, c.direction), ""),
                (limit_text(c.critical, c.unit, c.direction), ""),
                (STATUS_ICON[c.status], f"status-{c.status.value}"),
            ]
        )
    if not rows:
        return "<p>No threshold checks.</p>"
    return _table(("Check", "Scope", "Actual", "Target", "Critical", "Status"), rows)


def _endpoint_cells(e: EndpointStats) -> list[Cell]:
    return [
        (endpoint_label(e), "name"),
        (f"{e.requests:,}", ""),
        (f"{e.failures:,}", ""),
        (pct(e.error_rate), ""),
        (rps(e.rps), ""),
        (ms(e.p50_ms), ""),
        (ms(e.p90_ms), ""),
        (ms(e.p95_ms), ""),
        (ms(e.p99_ms), ""),
        (ms(e.max_ms), ""),
    ]


def _endpoints(outcome: Outcome) -> str:
    ordered = sorted_endpoints(outcome.result.endpoints)
    rows = [_endpoint_cells(e) for e in ordered] + [_endpoint_cells(outcome.result.total)]
    header = ("Endpoint", "Requests", "Failures", "Error rate", "req/s", "p50", "p90", "p95", "p99", "max")
    return _table(header, rows, [""] * len(ordered) + ["total"])


def _errors(outcome: Outcome) -> str:
    rows = [
        [(e.key, "name"), (x.error, "name"), (f"{x.occurrences:,}", "")]
        for e in outcome.result.endpoints
        for x in e.errors
    ]
    if not rows:
        rows = [
            [("All requests", "name"), (x.error, "name"), (f"{x.occurrences:,}", "")]
            for x in outcome.result.total.errors
        ]
    if not rows:
        return "<p>No errors.</p>"
    rows.sort(key=lambda r: -int(r[2][0].replace(",", "")))
    return _table(("Endpoint", "Error", "Count"), rows)


def _series(windows: Sequence[Window], label: str, color: str, value: Callable[[Window], float | None]) -> Series:
    points = [(w.start_s + w.length_s, v) for w in windows if (v := value(w)) is not None]
    return Series(label, color, points)


def _charts(total: EndpointStats) -> str:
    ws = total.windows
    if not ws:
        return '<p class="note">No time series in this result.</p>'
    charts = [
        line_chart(
            "Response time",
            "ms",
            [
                _series(ws, "p50", "#0969da", lambda w: w.p50_ms),
                _series(ws, "p95", "#9a6700", lambda w: w.p95_ms),
                _series(ws, "p99", "#cf222e", lambda w: w.p99_ms),
            ],
        ),
        line_chart("Throughput", "req/s", [_series(ws, "req/s", "#1a7f37", lambda w: w.rps)]),
        line_chart("Users", "users", [_series(ws, "users", "#8250df", lambda w: float(w.users))]),
        line_chart("Errors", "%", [_series(ws, "error rate", "#cf222e", lambda w: w.error_rate * 100)]),
    ]
    return '<div class="charts">' + "".join(charts) + "</div>"


def _system(outcome: Outcome) -> list[str]:
    """CPU and memory per service, PostgreSQL and Redis, on the same time axis as the load charts."""
    if outcome.system is None:
        return []
    ws = outcome.result.total.windows
    x_max = max((w.start_s + w.length_s for w in ws), default=None)
    return [
        "<h2>System Under Test</h2>",
        system_report.render_charts(outcome.system, outcome.result.meta, x_max),
        system_report.render_html_tables(outcome.system),
    ]


def _comparison(comparison: Comparison) -> str:
    base = comparison.baseline
    parts = [
        f"<p>Baseline: {escape(comparison.source)} — {escape(base.tool)} {escape(base.tool_version)}, "
        f"{escape(run_date(base))}, commit {escape(base.commit or 'unknown')} {escape(base.ref)}</p>"
    ]
    if comparison.warning:
        parts.append(f'<p class="warning">{escape(comparison.warning)}</p>')
    rows = [
        [
            (delta_endpoint(d.endpoint), "name"),
            (metric_label(d.metric), ""),
            (delta_value(d, d.baseline), ""),
            (delta_value(d, d.current), ""),
            (delta_pct(d), ""),
            (CHANGE_ICON[d.change], f"change-{d.change.value}"),
            (d.note, "name"),
        ]
        for d in comparison.deltas
    ]
    parts.append(_table(("Endpoint", "Metric", "Baseline", "Current", "Δ", "Verdict", "Note"), rows))
    parts.append(f'<p class="note">{escape(comparison.method)}</p>')
    return "".join(parts)


def _ordered(items: list[str]) -> str:
    return "<ol>" + "".join(f"<li>{escape(i)}</li>" for i in items) + "</ol>"


def render_html(outcome: Outcome) -> str:
    meta = outcome.result.meta
    verdict, why = headline_reason(outcome)
    title = f"Performance Test Report - {run_date(meta)} - {meta.scenario} ({meta.tool})"
    sections = [
        f"<h1>{escape(title)}</h1>",
        f'<div class="verdict {escape(str(verdict))}">{escape(str(verdict)).upper()}: {escape(why)}</div>',
        "<h2>Test Configuration</h2>",
        _meta(meta),
        "<h2>Thresholds</h2>",
        _thresholds(outcome),
        "<h2>Over Time</h2>",
        _charts(outcome.result.total),
        *_system(outcome),
        "<h2>Endpoints</h2>",
        _endpoints(outcome),
        *([f"<p>{escape(percentile_note(meta))}</p>"] if percentile_note(meta) else []),
        "<h2>Errors</h2>",
        _errors(outcome),
        "<h2>Key Findings</h2>",
        _ordered(findings(outcome)),
        "<h2>Recommendations</h2>",
        _ordered(recommendations(outcome)),
    ]
    if outcome.comparison:
        sections += ["<h2>Baseline Comparison</h2>", _comparison(outcome.comparison)]
    template = Template(resources.files("ci_perf.reports").joinpath("report.html").read_text(encoding="utf-8"))
    return template.substitute(title=escape(title), body="\n".join(sections))
