"""Inputs of the report golden files: Outcomes built from results JSON fixtures.

`locust_failures` is a real Locust 2.47.0 run (tests/golden/locust/failures, captured by
tests/golden/capture_locust.py); `handmade_regression` is a handmade 5-minute run with a saved
Comparison (made once with compare.compare) and an endpoint override that breaches its critical level;
`stress_system` is a real 40 s stress_test of the demo with its database made the bottleneck (knobs
db=10 ms, pool 2) and the system sampler's figures (histograms left out of the input to keep it small).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ci_perf.analysis import findings_for
from ci_perf.model import Gating, Outcome, RunResult, _decode_comparison, _encode
from ci_perf.observe.model import SystemMetrics
from ci_perf.reports import render_all
from ci_perf.scenarios.catalog import get_scenario
from ci_perf.thresholds import evaluate, parse_thresholds

TESTS = Path(__file__).parent
GOLDEN = TESTS / "golden" / "reports"
INPUT = GOLDEN / "input"
LINKS = {"Full HTML report": "https://ci.example/artifacts/report.html", "Job log": "https://ci.example/job/1"}

CASES: dict[str, dict[str, Any]] = {
    "locust_failures": {"run": TESTS / "golden" / "locust" / "failures" / "expected.json"},
    "handmade_regression": {
        "run": INPUT / "handmade_run.json",
        "comparison": INPUT / "handmade_comparison.json",
        "thresholds": {"endpoints": {"POST /api/v1/servers/": {"p95": {"target": "150ms", "critical": "200ms"}}}},
        "fail_on_regression": True,
    },
    "stress_system": {"run": INPUT / "stress_system_run.json", "system": INPUT / "stress_system_metrics.json"},
}


def load_run(path: Path) -> RunResult:
    return RunResult.from_dict(json.loads(path.read_text(encoding="utf-8")))


def outcome_for(case: str) -> Outcome:
    spec = CASES[case]
    result = load_run(spec["run"])
    thresholds = parse_thresholds(spec.get("thresholds"), None)
    system = None
    if "system" in spec:
        system = SystemMetrics.from_dict(json.loads(spec["system"].read_text(encoding="utf-8")))
    evaluation = evaluate(
        result, thresholds, get_scenario(result.meta.scenario), db_query_ms=system.db_query_ms if system else None
    )
    comparison = None
    if "comparison" in spec:
        comparison = _decode_comparison(json.loads(spec["comparison"].read_text(encoding="utf-8")))
    findings = findings_for(result, system, evaluation.checks)
    gating = Gating(fail_on_regression=spec.get("fail_on_regression", False))
    return Outcome(result, evaluation, comparison, system, findings, gating)


def _json(value: Any) -> str:
    return json.dumps(_encode(value), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


# The judging stages, each a golden file beside the rendered ones: a judging change shows up in these,
# a rendering change only in the reports.
STAGES = ("evaluation.json", "findings.json", "verdict.json")


def rendered(case: str) -> dict[str, str]:
    outcome = outcome_for(case)
    stages = {
        "evaluation.json": _json(outcome.evaluation),
        "findings.json": _json(outcome.findings),
        "verdict.json": _json(outcome.verdict),
    }
    return {**stages, **render_all(outcome, links=LINKS)}
