"""report.md in the shape of the seed's "Performance Test Report" template, plus (re-exported from
reports.comment) the sticky pull-request comment and the job summary."""

from __future__ import annotations

from ci_perf.advice import findings, recommendations
from ci_perf.model import CheckResult, Outcome, RunMeta
from ci_perf.reports.comment import comment_marker, render_comment, render_summary
from ci_perf.reports.common import (
    JUNIT_XML,
    REPORT_HTML,
    RESULTS_JSON,
    STATUS_ICON,
    check_actual,
    duration,
    escape_md,
    limit_text,
    md_table,
    percentile_note,
    run_date,
)
from ci_perf.reports.mdparts import ENDPOINT_HEADER, check_metric, comparison_section, endpoint_rows
from ci_perf.reports.system import render_markdown as render_system

__all__ = ["comment_marker", "render_comment", "render_report", "render_summary"]


def _configuration(meta: RunMeta) -> str:
    lines = [
        f"- **Date**: {run_date(meta)}" + (f" ({escape_md(meta.started_at)})" if meta.started_at else ""),
        f"- **Duration**: {duration(meta.duration_s)}",
        f"- **Users**: {meta.users} concurrent",
        f"- **Spawn Rate**: {meta.spawn_rate:g} users/second",
        f"- **Scenario**: {escape_md(meta.scenario)}",
        f"- **Tool**: {escape_md(meta.tool)} {escape_md(meta.tool_version)}",
        f"- **Host**: {escape_md(meta.host)}",
    ]
    if meta.commit or meta.ref:
        lines.append(f"- **Commit**: {escape_md(meta.commit[:12])} {escape_md(meta.ref)}".rstrip())
    return "## Test Configuration\n\n" + "\n".join(lines)


def _summary(checks: tuple[CheckResult, ...]) -> str:
    rows = [
        [
            check_metric(c),
            f"{limit_text(c.target, c.unit, c.direction)} (critical {limit_text(c.critical, c.unit, c.direction)})",
            check_actual(c),
            STATUS_ICON[c.status],
        ]
        for c in checks
    ]
    table = md_table(("Metric", "Target", "Actual", "Status"), rows) if rows else "No threshold checks."
    return "## Results Summary\n\n" + table


def _numbered(title: str, items: list[str]) -> str:
    return f"## {title}\n\n" + "\n".join(f"{i}. {escape_md(item)}" for i, item in enumerate(items, 1))


def render_report(outcome: Outcome) -> str:
    """The full report.md: every endpoint, every check, every delta (no size limit)."""
    meta = outcome.result.meta
    parts = [
        f"# Performance Test Report - {run_date(meta)}",
        _configuration(meta),
        _summary(outcome.evaluation.checks),
        "## Endpoints\n\n"
        + md_table(ENDPOINT_HEADER, endpoint_rows(outcome))
        + (f"\n\n{percentile_note(meta)}" if percentile_note(meta) else ""),
        *([render_system(outcome.system)] if outcome.system else []),
        _numbered("Key Findings", findings(outcome)),
        _numbered("Recommendations", recommendations(outcome)),
    ]
    if outcome.comparison:
        parts.append(comparison_section(outcome.comparison))
    parts.append(
        "## Attachments\n\n"
        + "\n".join(
            [
                f"- [HTML report](./{REPORT_HTML})",
                f"- [Results (JSON)](./{RESULTS_JSON})",
                f"- [JUnit XML](./{JUNIT_XML})",
            ]
        )
    )
    return "\n\n".join(parts) + "\n"
