"""JUnit XML: one test case per threshold check, per finding, and per baseline delta that moved; an
error case when the run broke (Outcome.infra).

A critical breach is a failure; a warning passes (CI systems have no "warning" result) but carries
status="warn" and a WARN line in system-out; a check that was not measured is skipped, and so is one
with too few samples, except when its endpoint had no successful request at all (a failure). A
degraded metric fails only when the run gates on regressions (Outcome.gating).

Times: every case has a `time`. The load is measured once, for all the checks together, and GitLab
adds the cases' times up into the suite's duration (Jenkins too, per class and package). So the run's
duration goes on the first case (the run-wide check, API p95 with the built-in thresholds) and every
other case, a judgment of that same measurement, takes 0 s: the suite then lasts as long as the load
did, where a duration on every case would show 14 five-minute checks as a 70-minute suite. A broken
run measured nothing: all its cases take 0 s.
"""

from __future__ import annotations

from typing import Any

from junit_xml import TestCase, TestSuite, to_xml_report_string

from ci_perf.model import Change, CheckResult, Finding, Infra, MetricDelta, Outcome, Status
from ci_perf.reports.common import (
    delta_endpoint,
    delta_pct,
    delta_value,
    duration,
    metric_label,
)


def _check_case(check: CheckResult, classname: str) -> TestCase:
    scoped = check.scope[:1].isupper() and check.scope not in check.name
    name = f"{check.name} [{check.scope}]" if scoped else check.name
    case = TestCase(name, classname=classname, status=check.status.value)
    text = check.message  # carries the measured value, the target and the critical level
    if check.status is Status.FAIL:
        case.add_failure_info(message=f"critical breach: {check.message}", output=text, failure_type="threshold")
    elif check.status is Status.NO_DATA and check.samples == 0:
        case.add_failure_info(message=check.message, output=text, failure_type="no-data")
    elif check.status is Status.NO_DATA:
        case.add_skipped_info(message=check.message)
    elif check.status is Status.SKIP:
        case.add_skipped_info(message=f"not measured: {check.message}")
    elif check.status is Status.WARN:
        case.stdout = f"WARN: {text}"
    else:
        case.stdout = f"PASS: {text}"
    return case


def _delta_case(delta: MetricDelta, classname: str, fail_on_regression: bool) -> TestCase:
    where = delta_endpoint(delta.endpoint)
    name = f"baseline: {metric_label(delta.metric)} of {where}"
    text = (
        f"{metric_label(delta.metric)} of {where}: {delta_value(delta, delta.baseline)} -> "
        f"{delta_value(delta, delta.current)} ({delta_pct(delta)}), {delta.change.value}"
        + (f"; {delta.note}" if delta.note else "")
    )
    case = TestCase(name, classname=classname, status=delta.change.value)
    if delta.change is Change.DEGRADED and fail_on_regression:
        case.add_failure_info(message=f"regression: {text}", output=text, failure_type="regression")
    elif delta.change is Change.DEGRADED:
        case.stdout = f"DEGRADED (not gating): {text}"
    else:
        case.stdout = f"IMPROVED: {text}"
    return case


def _finding_case(finding: Finding, classname: str) -> TestCase:
    """What the scenario is for, as its own check: a leak, lost writes or no recovery fail."""
    case = TestCase(f"finding: {finding.name}", classname=classname, status=finding.status.value)
    if finding.status is Status.FAIL:
        case.add_failure_info(message=finding.text, output=finding.advice or finding.text, failure_type="finding")
    elif finding.status is Status.SKIP:
        case.add_skipped_info(message=finding.text)
    else:
        case.stdout = f"{finding.status.value.upper()}: {finding.text}"
    return case


def _infra_case(infra: Infra, classname: str) -> TestCase:
    """The run broke: one error case naming the stage and what broke, so a red job shows why."""
    case = TestCase(f"run: {infra.stage}", classname=classname, status="error")
    case.add_error_info(message=infra.message, output=infra.message, error_type=infra.stage)
    return case


def render_junit(outcome: Outcome) -> str:
    meta = outcome.result.meta
    classname = f"ci-perf.{meta.scenario}.{meta.tool}"
    fail_on_regression = outcome.gating.fail_on_regression
    cases = [_infra_case(outcome.infra, classname)] if outcome.infra else []
    cases += [_check_case(c, classname) for c in outcome.evaluation.checks]
    properties = {
        "scenario": meta.scenario,
        "tool": f"{meta.tool} {meta.tool_version}",
        "users": str(meta.users),
        "duration": duration(meta.duration_s),
        "host": meta.host,
        "status": outcome.verdict.status,
        "warnings": "; ".join(i.text for i in outcome.verdict.warnings) or "none",
    }
    cases += [_finding_case(f, f"{classname}.findings") for f in outcome.findings]
    if outcome.comparison:
        moved = [d for d in outcome.comparison.deltas if d.change in (Change.DEGRADED, Change.IMPROVED)]
        cases += [_delta_case(d, f"{classname}.baseline", fail_on_regression) for d in moved]
        properties["baseline"] = outcome.comparison.source
    if cases and outcome.infra is None:
        cases[0].elapsed_sec = meta.duration_s
    suite = _TimedSuite(
        f"ci-perf {meta.scenario} ({meta.tool})", cases, timestamp=meta.started_at or None, properties=properties
    )
    return str(to_xml_report_string([suite], prettyprint=True))


class _TimedSuite(TestSuite):  # type: ignore[misc]  # junit_xml has no type hints
    """junit_xml leaves `time` out of a case that took 0 s; the JUnit schema requires it on every case."""

    def build_xml_doc(self, encoding: str | None = None) -> Any:
        doc = super().build_xml_doc(encoding)
        for element, case in zip(doc.iter("testcase"), self.test_cases, strict=True):
            element.attrib.pop("time", None)  # the same place in every case: last
            element.set("time", f"{case.elapsed_sec or 0:.3f}")
        return doc
