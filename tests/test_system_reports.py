"""SystemMetrics in results.json and in every report: markdown tables, HTML charts, JUnit findings."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import replace

from ci_perf.analysis import findings_for
from ci_perf.model import Outcome
from ci_perf.observe.model import ResourceSample, ServiceSeries
from ci_perf.reports import render_all
from report_fixtures import outcome_for
from test_observe import sample_metrics


def with_system(scenario: str = "soak_test") -> Outcome:
    base = outcome_for("locust_failures")
    leak = tuple(ResourceSample(i * 2.0, 20.0, 50 + i * 2.0) for i in range(20))
    metrics = sample_metrics()
    metrics = replace(metrics, services=(ServiceSeries("api", leak), *metrics.services[1:]))
    result = replace(base.result, meta=replace(base.result.meta, scenario=scenario))
    findings = findings_for(result, metrics, base.evaluation.checks)  # as the evaluate stage would
    return replace(base, result=result, system=metrics, findings=findings)


def test_outcome_with_system_round_trips_and_without_it_writes_as_before() -> None:
    outcome = with_system()
    again = Outcome.from_dict(json.loads(json.dumps(outcome.to_dict())))
    assert again.system == outcome.system
    assert "system" not in outcome_for("locust_failures").to_dict()


def test_reports_show_resources_database_redis_and_the_findings() -> None:
    files = render_all(with_system())
    md = files["report.md"]
    assert "## System Under Test" in md and "| api |" in md and "50.0 → 88.0 MB" in md
    assert "PostgreSQL: 10 queries, mean 0.50 ms per query" in md
    assert "Redis: 120 ops/s median" in md and "| SELECT 1 | 10 |" in md
    assert "Memory leak in api: 58 → 88 MB" in md  # Key Findings (after the warm-up fifth)
    assert "Memory: api grows steadily under load" in md  # Recommendations
    html = files["report.html"]
    assert 'aria-label="CPU per service"' in html and 'aria-label="Memory per service (anonymous RSS)"' in html
    assert 'aria-label="PostgreSQL connections"' in html and 'aria-label="Redis"' in html
    assert "**Findings**\n\n- ❌ Memory leak in api" in files["comment.md"]  # the PR comment says it too
    suite = ET.fromstring(files["junit.xml"])
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    leak = cases["finding: Memory leak [api]"]
    assert leak.find("failure") is not None and leak.get("status") == "fail"


def test_db_query_figure_is_what_the_threshold_judges() -> None:
    from ci_perf.config import Settings
    from ci_perf.pipeline import evaluate
    from ci_perf.scenarios.catalog import get_scenario

    outcome = with_system("smoke_test")
    settings = Settings()
    judged = evaluate(settings, get_scenario("smoke_test"), outcome.result, outcome.system)
    (db,) = [c for c in judged.evaluation.checks if c.name == "Database queries"]
    assert db.actual == 0.5 and db.status.value == "pass"
    assert judged.system == outcome.system


def test_samples_are_put_on_the_load_tools_time_axis() -> None:
    from ci_perf.reports.system import offset_s

    meta = with_system().result.meta  # started 2026-01-01T00:00:00Z
    start = 1767225600.0
    metrics = replace(sample_metrics(), started_at=start + 3.5)
    assert offset_s(metrics, replace(meta, started_at="2026-01-01T00:00:00Z")) == 3.5
    assert offset_s(metrics, replace(meta, started_at="not a date")) == 0.0
    assert offset_s(replace(metrics, started_at=start + 86400), meta) == 0.0  # another clock: aligned at 0
