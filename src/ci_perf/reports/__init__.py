"""Renderers: pure functions from an Outcome to the text of one report file.

RENDERERS maps a file name to its renderer; render_all gives every file of an Outcome (results.json
itself is written by the pipeline). Writing files and calling APIs happen elsewhere.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from ci_perf.model import Outcome
from ci_perf.reports.common import (
    COMMENT_MD,
    JUNIT_XML,
    LOAD_PERFORMANCE_JSON,
    METRICS_TXT,
    REPORT_HTML,
    REPORT_MD,
    SUMMARY_MD,
)
from ci_perf.reports.gitlab import render_load_performance, render_metrics
from ci_perf.reports.html import render_html
from ci_perf.reports.junit import render_junit
from ci_perf.reports.markdown import comment_marker, render_comment, render_report, render_summary

Renderer = Callable[[Outcome], str]

RENDERERS: dict[str, Renderer] = {
    REPORT_MD: render_report,
    REPORT_HTML: render_html,
    COMMENT_MD: render_comment,
    SUMMARY_MD: render_summary,
    JUNIT_XML: render_junit,
    LOAD_PERFORMANCE_JSON: render_load_performance,
    METRICS_TXT: render_metrics,
}


def render_all(outcome: Outcome, *, links: Mapping[str, str] | None = None) -> dict[str, str]:
    """{file name: content} for every report of one run; links reach the renderers that use them."""
    special: dict[str, Renderer] = {
        COMMENT_MD: lambda o: render_comment(o, links or {}),
        SUMMARY_MD: lambda o: render_summary(o, links or {}),
    }
    return {name: special.get(name, render)(outcome) for name, render in RENDERERS.items()}


__all__ = [
    "RENDERERS",
    "Renderer",
    "comment_marker",
    "render_all",
    "render_comment",
    "render_html",
    "render_junit",
    "render_load_performance",
    "render_metrics",
    "render_report",
    "render_summary",
]
