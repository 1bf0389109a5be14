"""Properties of the renderers that golden files cannot show: size limits, escaping, offline HTML,
GitLab's expected keys, JUnit semantics."""

from __future__ import annotations

import json
import re
import shlex
import xml.etree.ElementTree as ET
from dataclasses import replace

import pytest

from ci_perf.model import Change, Comparison, EndpointStats, Infra, MetricDelta, Outcome, Window
from ci_perf.reports import RENDERERS, render_all
from ci_perf.reports.common import escape_md
from ci_perf.reports.gitlab import load_performance, render_load_performance, render_metrics
from ci_perf.reports.html import render_html
from ci_perf.reports.junit import render_junit
from ci_perf.reports.markdown import comment_marker, render_comment, render_report, render_summary
from ci_perf.scenarios.catalog import get_scenario
from ci_perf.thresholds import evaluate, parse_thresholds
from report_fixtures import TESTS, load_run, outcome_for

HOSTILE = "GET /x|y `z` <script>alert(1)</script> @team *b* _i_ [l](https://evil.example) #1\n| --- |"


def with_endpoints(base: Outcome, endpoints: list[EndpointStats], deltas: bool = True) -> Outcome:
    result = replace(base.result, endpoints=tuple(endpoints))
    evaluation = evaluate(result, parse_thresholds(None, None), get_scenario(result.meta.scenario))
    comparison = None
    if deltas and base.comparison:
        moved = [
            MetricDelta(e.key, m, "lower", 10.0, 20.0, Change.DEGRADED, 100.0)
            for e in endpoints
            for m in ("p50", "p95", "p99", "rps", "error_rate")
        ]
        comparison = Comparison(base.comparison.source, base.comparison.baseline, "method", tuple(moved))
    return Outcome(result, evaluation, comparison)


def many_endpoints(n: int) -> list[EndpointStats]:
    window = Window(0, 5, 10, 1, 1, 1.0, 2.0, 3.0)
    return [
        EndpointStats(
            "POST",
            f"/api/v1/servers/{i:05d}/" + "long-segment/" * 8,
            100,
            1,
            1.0,
            1,
            2,
            3,
            4,
            5,
            6,
            7,
            windows=(window,),
        )
        for i in range(n)
    ]


def test_comment_stays_under_limit_with_2000_endpoints_and_keeps_headline() -> None:
    outcome = with_endpoints(outcome_for("handmade_regression"), many_endpoints(2000))
    comment = render_comment(outcome, {"Full report": "https://ci.example/r"})
    assert len(comment) <= 65000
    lines = comment.splitlines()
    assert lines[0] == comment_marker("load_test_moderate", "locust")
    assert lines[2].startswith("### ❌ failed:") or lines[2].startswith("### 📉 regressed:")
    assert "more rows in the full report" in comment
    assert comment.rstrip().endswith("[Full report](https://ci.example/r)")
    assert comment.count("<details>") == comment.count("</details>")
    small = render_comment(outcome, max_chars=3000)
    assert len(small) <= 3000 and small.startswith("<!-- ci-perf:") and "### " in small


def test_summary_is_the_comment_without_marker() -> None:
    outcome = outcome_for("handmade_regression")
    summary = render_summary(outcome)
    assert not summary.startswith("<!--")
    assert render_comment(outcome).split("\n", 2)[2] == summary


def _table_rows(markdown: str) -> list[str]:
    return [line for line in markdown.splitlines() if line.startswith("| ")]


def test_hostile_endpoint_name_cannot_break_markdown() -> None:
    base = outcome_for("handmade_regression")
    hostile = replace(base.result.endpoints[0], method="", name=HOSTILE)
    outcome = with_endpoints(base, [hostile, *base.result.endpoints[1:]])
    for text in (render_comment(outcome), render_report(outcome)):
        assert "<script>" not in text and "@team" not in text
        assert "[l](" not in text and "\\[l\\](" in text  # no live link, only escaped brackets
        for row in _table_rows(text):
            header_cells = len(re.split(r"(?<!\\)\|", row))
            assert header_cells in {5, 6, 7, 8, 9, 12}, row  # only the tables' own column counts
    escaped = escape_md(HOSTILE)
    assert "\n" not in escaped and "\\|" in escaped and "&lt;script&gt;" in escaped and "\\`" in escaped


def test_hostile_name_in_html_and_metrics() -> None:
    base = outcome_for("handmade_regression")
    hostile = replace(base.result.endpoints[0], method="", name=HOSTILE)
    outcome = with_endpoints(base, [hostile])
    html = render_html(outcome)
    assert "<script>" not in html and "&lt;script&gt;" in html
    for line in render_metrics(outcome).splitlines():
        if line.startswith("#"):
            continue
        assert "#" not in line  # GitLab's parser would cut the line there
        _name, value = shlex.split(line)  # GitLab shell-splits each line into name and value
        float(value)


def test_html_is_self_contained() -> None:
    for case in ("handmade_regression", "locust_failures"):
        html = render_html(outcome_for(case))
        assert not re.search(r"\b(src|href|action|srcset)\s*=", html, re.IGNORECASE)
        assert not re.search(r"<(script|link|iframe|img|object|embed)\b", html, re.IGNORECASE)
        assert "@import" not in html and "url(" not in html
        assert html.count("<svg") == 4


def test_load_performance_has_the_keys_gitlab_reads() -> None:
    outcome = outcome_for("locust_failures")
    data = json.loads(render_load_performance(outcome))
    metrics = data["metrics"]
    assert set(metrics["http_reqs"]) == {"count", "rate"}
    trend = {"avg", "min", "med", "max", "p(90)", "p(95)"}
    assert set(metrics["http_req_duration"]) == trend
    assert "http_req_waiting" not in metrics  # Locust measures no time to first byte: no TTFB shown
    assert set(metrics["checks"]) == {"passes", "fails", "value"}
    # What GitLab's widget computes (normalizeLoadPerformanceMetrics):
    checks = metrics["checks"]["passes"] / (metrics["checks"]["passes"] + metrics["checks"]["fails"]) * 100
    total = outcome.result.total
    assert total.failures > 0
    assert checks == pytest.approx((total.requests - total.failures) / total.requests * 100)
    assert metrics["http_reqs"]["rate"] == round(total.rps, 4)
    assert load_performance(outcome_for("locust_failures")) == data


def test_load_performance_ttfb_is_k6s_own_waiting_trend() -> None:
    """A real k6 run (tests/golden/k6/smoke_test): http_req_waiting is k6's http_req_waiting as k6
    wrote it in its summary, carried through the parser, not a copy of the response time."""
    folder = TESTS / "golden" / "k6" / "smoke_test"
    k6_own = json.loads((folder / "k6-summary.json").read_text())["metrics"]["http_req_waiting"]["values"]
    result = load_run(folder / "expected.json")
    outcome = Outcome(result, evaluate(result, parse_thresholds(None, None), get_scenario(result.meta.scenario)))
    metrics = json.loads(render_load_performance(outcome))["metrics"]
    assert metrics["http_req_waiting"] == {
        k: round(k6_own[k], 4) for k in ("avg", "min", "med", "max", "p(90)", "p(95)")
    }
    assert metrics["http_req_waiting"] != metrics["http_req_duration"]
    assert list(metrics).index("http_req_waiting") == list(metrics).index("http_req_duration") + 1


def _case_times(xml: str) -> list[float]:
    return [float(case.attrib["time"]) for case in ET.fromstring(xml).iter("testcase")]


def test_junit_cases_have_times_that_add_up_to_the_run() -> None:
    """GitLab sums the cases' times into the suite's duration: the run's duration on the first case,
    0 s on the others (judgments of the same measurement); a broken run measured nothing."""
    outcome = outcome_for("handmade_regression")
    xml = render_junit(outcome)
    times = _case_times(xml)
    assert len(times) == 14 and times[0] == outcome.result.meta.duration_s == 300.0
    assert set(times[1:]) == {0.0}
    suite = ET.fromstring(xml).find("testsuite")
    assert suite is not None and float(suite.attrib["time"]) == sum(times) == 300.0
    broken = replace(outcome, infra=Infra(3, "stack", "the API never became healthy"))
    assert set(_case_times(render_junit(broken))) == {0.0}


def _junit(outcome: Outcome, fail_on_regression: bool) -> ET.Element:
    gated = replace(outcome, gating=replace(outcome.gating, fail_on_regression=fail_on_regression))
    return ET.fromstring(render_junit(gated))


def test_junit_failures_warnings_skips() -> None:
    outcome = outcome_for("handmade_regression")
    critical = sum(c.status.value == "fail" for c in outcome.evaluation.checks)
    degraded = len(outcome.comparison.regressions) if outcome.comparison else 0
    gated = _junit(outcome, True)
    assert len(gated.findall(".//failure")) == critical + degraded
    relaxed = _junit(outcome, False)
    assert len(relaxed.findall(".//failure")) == critical == 1
    cases = relaxed.findall(".//testcase")
    assert all(c.get("classname", "").startswith("ci-perf.load_test_moderate.locust") for c in cases)
    warn = next(c for c in cases if c.get("name") == "API p95")
    assert warn.get("status") == "warn" and (warn.findtext("system-out") or "").startswith("WARN: ")
    assert len(relaxed.findall(".//skipped")) == 1
    failure = relaxed.find(".//failure")
    assert failure is not None and "254 ms" in failure.get("message", "") and "< 200 ms" in failure.get("message", "")


def test_render_all_gives_every_file() -> None:
    files = render_all(outcome_for("locust_failures"))
    assert set(files) == set(RENDERERS)
    assert files["comment.md"].startswith("<!-- ci-perf:smoke_test:locust -->\n")
    assert "➖ not measured" in files["report.md"]


def test_lost_workers_and_missing_shards_are_key_findings() -> None:
    from dataclasses import replace

    from ci_perf.advice import findings

    outcome = outcome_for("locust_failures")
    meta = replace(
        outcome.result.meta,
        labels={"workers": "2", "workers_lost": "1", "workers_lost_ids": "w-2", "shards_missing": "2/3"},
    )
    lost = replace(outcome, result=replace(outcome.result, meta=meta))
    lines = findings(lost)
    assert any("1 of 2 Locust workers were lost mid-run (w-2)" in line for line in lines)
    assert any("shards 2/3 are missing" in line for line in lines)
    assert not any("Load generators" in line for line in findings(outcome))
