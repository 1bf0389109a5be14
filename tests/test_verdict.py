"""One Verdict drives every output: the exit code, the `status` step output, annotations, JUnit and the
comment headline agree in every case, and a re-render of results.json says the same, byte for byte."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

import pytest

from ci_perf import pipeline
from ci_perf.model import (
    AGGREGATE,
    Change,
    CheckResult,
    Comparison,
    Evaluation,
    Finding,
    Gating,
    Infra,
    MetricDelta,
    Outcome,
    Status,
)
from ci_perf.publish import annotations_for, outputs_for
from ci_perf.reports import render_all
from ci_perf.reports.common import HEADLINE_ICON
from report_fixtures import load_run
from synth import run


def check(name: str, status: Status, actual: float | None = 50.0, samples: int | None = 500) -> CheckResult:
    return CheckResult(name, "p95_ms", "all requests", "ms", "lower", 100.0, 200.0, actual, status, name, samples)


def outcome(
    checks: tuple[CheckResult, ...] = (),
    findings: tuple[Finding, ...] = (),
    regressed: bool = False,
    gating: bool = False,
    infra: Infra | None = None,
) -> Outcome:
    result = run(1)
    comparison = None
    if regressed:
        delta = MetricDelta(AGGREGATE, "p95", "lower", 50.0, 70.0, Change.DEGRADED, 40.0, 0.001)
        comparison = Comparison("file:base.json", result.meta, "Mann-Whitney U", (delta,))
    return Outcome(result, Evaluation(checks), comparison, None, findings, Gating(fail_on_regression=gating), infra)


PASS = check("API p95", Status.PASS)
CASES = {
    "pass": (outcome((PASS,)), "pass", 0),
    "warn": (outcome((PASS, check("Error rate", Status.WARN))), "warn", 0),
    "threshold fail": (outcome((check("API p95", Status.FAIL, 250.0),)), "fail", 1),
    "finding fail": (outcome((PASS,), (Finding("Memory leak [api]", Status.FAIL, "Memory leak in api"),)), "fail", 1),
    "regression, not gating": (outcome((PASS,), regressed=True), "warn", 0),
    "regression, gating": (outcome((PASS,), regressed=True, gating=True), "fail", 1),
    "not enough data": (outcome((check("API p95", Status.NO_DATA, None, 8),)), "no_data", 0),
    "infra error": (outcome(infra=Infra(3, "stack", "api exited before becoming healthy")), "error", 3),
}


@pytest.mark.parametrize("case", CASES)
def test_every_output_reads_the_one_verdict(case: str) -> None:
    out, status, code = CASES[case]
    verdict = out.verdict
    assert (verdict.status, verdict.exit_code) == (status, code)
    assert outputs_for(out, {})["status"] == status
    files = render_all(out)
    junit = ET.fromstring(files["junit.xml"])
    props = {p.get("name"): p.get("value") for p in junit.iter("property")}
    assert props["status"] == status
    broken = junit.findall(".//failure") + junit.findall(".//error")
    assert bool(broken) == (code != 0), [ET.tostring(b) for b in broken]
    errors = [a for a in annotations_for(out) if a.level == "error"]
    assert bool(errors) == (code != 0)
    headline = files["comment.md"].splitlines()[2]
    regressed = case == "regression, not gating"
    assert headline.startswith(f"### {HEADLINE_ICON['regressed' if regressed else status]}: "), headline
    again = Outcome.from_dict(json.loads(json.dumps(out.to_dict())))
    assert again.verdict == verdict


def test_failures_lead_and_name_their_endpoint() -> None:
    slow = CheckResult(
        "Policy evaluation p95", "p95_ms", "POST /api/v1/policy/evaluate", "ms", "lower", 50, 100, 130.0, Status.FAIL
    )
    other = replace(slow, scope="POST /api/v1/policy/evaluate (server action)", actual=120.0)
    verdict = outcome((check("Error rate", Status.WARN), slow, other), regressed=True).verdict
    assert [i.level for i in verdict.items] == ["fail", "fail", "warn", "warn"]
    assert verdict.headline == (
        "Policy evaluation p95 [POST /api/v1/policy/evaluate] 130 ms breaches critical < 100 ms (+1 more)"
    )
    assert "[POST /api/v1/policy/evaluate (server action)] 120 ms" in verdict.items[1].text
    assert verdict.items[2].kind == "regression" and "p95 of All requests +40.0%" in verdict.items[2].text


def test_report_rerenders_the_runs_verdicts_byte_for_byte(tmp_path: Path) -> None:
    original = outcome((PASS, check("Error rate", Status.WARN)), regressed=True, gating=True)
    first = pipeline.write_outputs(original, tmp_path / "run", [])
    loaded = pipeline.load_outcome(first["results.json"])
    second = pipeline.write_outputs(loaded, tmp_path / "again", [])
    assert loaded.verdict == original.verdict and loaded.verdict.exit_code == 1
    for name in ("results.json", "junit.xml", "comment.md", "summary.md", "report.md", "report.html"):
        assert second[name].read_bytes() == first[name].read_bytes(), name


def test_gating_is_kept_with_the_results() -> None:
    gated = outcome((PASS,), regressed=True, gating=True)
    data = json.loads(json.dumps(gated.to_dict()))
    assert data["gating"] == {"fail_on_regression": True, "min_effect": 0.1}
    assert data["verdict"]["status"] == "fail" and data["verdict"]["exit_code"] == 1
    assert Outcome.from_dict(data).gating.fail_on_regression


@pytest.mark.parametrize("tool", ["locust", "k6"])
def test_an_outage_fails_the_run_and_no_registration_latency_passes(tool: str) -> None:
    """Real runs of both tools against a target answering 500 to every registration and deny to every
    policy evaluation (tests/golden/*/outage)."""
    from ci_perf.analysis import findings_for
    from ci_perf.scenarios.catalog import get_scenario
    from ci_perf.thresholds import evaluate, parse_thresholds

    result = load_run(Path(__file__).parent / "golden" / tool / "outage" / "expected.json")
    evaluation = evaluate(result, parse_thresholds(None, None), get_scenario(result.meta.scenario))
    out = Outcome(result, evaluation, findings=findings_for(result, None, evaluation.checks))
    registration = [c for c in evaluation.checks if c.name.startswith("Server registration")]
    assert registration and all(c.status is Status.NO_DATA and c.samples == 0 for c in registration)
    found = {f.name: f for f in out.findings}
    down = found["Endpoint failed [POST /api/v1/servers/]"]
    assert down.status is Status.FAIL and "most common: HTTP 500" in down.text and "api.log" in down.advice
    denied = found["Policy decisions"]
    assert denied.status is Status.FAIL and "SARK fails closed" in denied.text and "OPA_URL" in denied.advice
    assert out.verdict.status == "fail" and out.verdict.exit_code == 1
    junit = render_all(out)["junit.xml"]
    assert 'type="no-data"' in junit and "finding: Policy decisions" in junit


@pytest.mark.parametrize(("field", "value"), [("p95_ms", float("nan")), ("max_ms", "12"), ("requests", 1.5)])
def test_a_results_file_with_a_bad_figure_is_a_result_error(field: str, value: object) -> None:
    from ci_perf.errors import ResultError

    data = outcome((PASS,)).to_dict()
    data["result"]["total"][field] = value
    with pytest.raises(ResultError, match=field):
        Outcome.from_dict(json.loads(json.dumps(data)))
