"""Formatting shared by every renderer: status icons, numbers with units, metric labels, escaping."""

from __future__ import annotations

import re
from collections.abc import Sequence

from ci_perf.model import AGGREGATE, Change, CheckResult, EndpointStats, MetricDelta, Outcome, RunMeta, Status, Window
from ci_perf.thresholds import format_value, limit_text

__all__ = ["format_value", "limit_text"]

STATUS_ICON: dict[Status, str] = {
    Status.PASS: "✅ PASS",
    Status.WARN: "⚠️ WARN",
    Status.FAIL: "❌ FAIL",
    Status.SKIP: "➖ not measured",
    Status.NO_DATA: "❔ not enough data",
}
HEADLINE_ICON: dict[str, str] = {
    "pass": "✅ passed",
    "warn": "⚠️ passed with warnings",
    "regressed": "📉 regressed",
    "fail": "❌ failed",
    "no_data": "❔ not enough data",
    "error": "💥 broke",
}
CHANGE_ICON: dict[Change, str] = {
    Change.DEGRADED: "🔴 degraded",
    Change.IMPROVED: "🟢 improved",
    Change.UNCHANGED: "⚪ unchanged",
    Change.INCONCLUSIVE: "❔ inconclusive",
}
# Comparison metric names (compare.METRICS and EndpointStats attributes) -> label and unit.
METRIC_LABEL: dict[str, tuple[str, str]] = {
    "p50": ("p50", "ms"),
    "p90": ("p90", "ms"),
    "p95": ("p95", "ms"),
    "p99": ("p99", "ms"),
    "p50_ms": ("p50", "ms"),
    "p90_ms": ("p90", "ms"),
    "p95_ms": ("p95", "ms"),
    "p99_ms": ("p99", "ms"),
    "avg_ms": ("avg", "ms"),
    "max_ms": ("max", "ms"),
    "rps": ("req/s", "req/s"),
    "error_rate": ("error rate", "%"),
}


def check_actual(check: CheckResult) -> str:
    """The Actual cell of a check: its value, or how few successful requests it had to stand on."""
    if check.status is Status.NO_DATA:
        return f"n={check.samples}" if check.samples else "no successes"
    return format_value(check.actual, check.unit)


def percentile_note(meta: RunMeta) -> str:
    """Locust keeps response times in buckets (1 ms under 100 ms, 10 ms under 1 s, then 100 ms): its
    percentiles are bucket values, shown never above the measured maximum."""
    if meta.tool != "locust":
        return ""
    return ("Latency figures are over successful requests. Locust's percentiles are bucket values (1 ms steps "
            "under 100 ms, 10 ms under 1 s, 100 ms above), never shown above the maximum.")  # fmt: skip


def metric_label(metric: str) -> str:
    return METRIC_LABEL.get(metric, (metric, ""))[0]


def delta_value(delta: MetricDelta, value: float | None) -> str:
    """A baseline/current value of a comparison delta in its unit (error rates are fractions there)."""
    unit = METRIC_LABEL.get(delta.metric, ("", ""))[1]
    if value is not None and unit == "%":
        value *= 100
    return format_value(value, unit) if unit else ("-" if value is None else f"{value:g}")


def delta_pct(delta: MetricDelta) -> str:
    if delta.delta_pct is None:
        return "-"
    if delta.ci_low_pct is not None and delta.ci_high_pct is not None:  # same-runner A/B: with its interval
        return f"{delta.delta_pct:+.1f}% [{delta.ci_low_pct:+.1f}%, {delta.ci_high_pct:+.1f}%]"
    return f"{delta.delta_pct:+.1f}%"


def ms(value: float) -> str:
    return format_value(value, "ms")


def pct(fraction: float) -> str:
    return format_value(fraction * 100, "%")


def rps(value: float) -> str:
    return format_value(value, "req/s")


def duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    if minutes and secs:
        return f"{minutes} min {secs} s"
    return f"{minutes} minutes" if minutes else f"{secs} seconds"


def run_date(meta: RunMeta) -> str:
    return meta.started_at[:10] if len(meta.started_at) >= 10 else "undated"


def endpoint_label(stats: EndpointStats) -> str:
    return "All requests" if stats.name == AGGREGATE else stats.key


def delta_endpoint(key: str) -> str:
    return "All requests" if key == AGGREGATE else key


def headline_reason(outcome: Outcome, limit: int = 120) -> tuple[str, str]:
    """The verdict for a headline: its status ("regressed" for a warning that is a regression) and why,
    shortened to `limit` characters."""
    verdict = outcome.verdict
    regressed = verdict.status == "warn" and any(i.kind == "regression" for i in verdict.warnings)
    return ("regressed" if regressed else verdict.status), shorten(verdict.headline, limit)


def shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def sorted_endpoints(endpoints: Sequence[EndpointStats]) -> list[EndpointStats]:
    """Slowest first (p95), the order every endpoint table uses."""
    return sorted(endpoints, key=lambda e: (-e.p95_ms, e.key))


def downsample(windows: Sequence[Window], points: int) -> list[Window]:
    """At most `points` windows, evenly picked, for charts that must stay readable and small."""
    if len(windows) <= points:
        return list(windows)
    step = len(windows) / points
    return [windows[int(i * step)] for i in range(points)]


# Only what can change rendering: emphasis, code, links, HTML, mentions, table pipes, headings.
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>#|~&@])")
_MD_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", "@": "&#64;", "|": "\\|"}


def escape_md(text: str) -> str:
    """Text that renders literally in GitHub markdown, also inside table cells: no pipes breaking
    columns, no HTML, no @mentions, no emphasis, no links; newlines become spaces."""
    text = " ".join(text.split())

    def sub(m: re.Match[str]) -> str:
        ch = m.group(1)
        return _MD_ENTITIES.get(ch, "\\" + ch)

    return _MD_SPECIAL.sub(sub, text)


# File names of the rendered reports (the report links to its siblings by these names).
REPORT_MD = "report.md"
REPORT_HTML = "report.html"
COMMENT_MD = "comment.md"
SUMMARY_MD = "summary.md"
JUNIT_XML = "junit.xml"
LOAD_PERFORMANCE_JSON = "load-performance.json"
METRICS_TXT = "metrics.txt"
RESULTS_JSON = "results.json"


def md_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = [md_row(header), md_row(["---"] * len(header)), *(md_row(r) for r in rows)]
    return "\n".join(lines)


def fit_table(header: Sequence[str], rows: Sequence[Sequence[str]], budget: int, more: str) -> str:
    """A table of as many rows as fit in `budget` characters, then one row saying how many were cut
    (`more` is formatted with n=the count). Empty when not even the header and that row fit."""
    head = md_table(header, [])
    lines = [head]
    used = len(head)
    for i, row in enumerate(rows):
        line = md_row(row)
        note = md_row([more.format(n=len(rows) - i - 1)] + [""] * (len(header) - 1))
        if used + 1 + len(line) + (1 + len(note) if i < len(rows) - 1 else 0) > budget:
            cut = md_row([more.format(n=len(rows) - i)] + [""] * (len(header) - 1))
            if used + 1 + len(cut) > budget:
                return ""
            lines.append(cut)
            break
        lines.append(line)
        used += 1 + len(line)
    return "\n".join(lines)
