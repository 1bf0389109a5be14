"""`ci-perf run` as a user runs it: real tool processes against a SARK-like server, every file written,
exit codes from the gates, secrets kept out of every file, and `ci-perf report` re-rendering."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from conftest import start_stub

pytestmark = pytest.mark.integration

FILES = {
    "results.json",
    "junit.xml",
    "report.md",
    "report.html",
    "comment.md",
    "summary.md",
    "load-performance.json",
    "metrics.txt",
}
SECRET = "sk_live_do_not_print_me_1234"


def ci_perf(*args: str, env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {"PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin", "CI_PERF_API_KEY": SECRET, **(env_extra or {})}
    return subprocess.run(
        [sys.executable, "-m", "ci_perf", *args], capture_output=True, text=True, timeout=180, env=env
    )


@pytest.mark.parametrize("tool", ["locust", "k6"])
def test_run_writes_every_report_and_passes(tmp_path: Path, tool: str) -> None:
    proc, url = start_stub("--api-key", SECRET)
    try:
        run = ci_perf(
            "run",
            "--scenario",
            "smoke_test",
            "--tool",
            tool,
            "--host",
            url,
            "--users",
            "2",
            "--duration",
            "6s",
            "--report-dir",
            str(tmp_path),
        )
    finally:
        proc.terminate()
        proc.wait(10)
    assert run.returncode == 0, run.stderr + run.stdout
    assert {p.name for p in tmp_path.iterdir()} >= FILES
    outcome = json.loads((tmp_path / "results.json").read_text())
    total = outcome["result"]["total"]
    assert total["requests"] > 10 and total["failures"] == 0  # authenticated: no 401s
    assert outcome["result"]["availability"]["probes"] >= 3
    if tool == "locust":  # k6's progress comes every 10 s from its REST API: none in a 6 s run
        assert "req/s=" in run.stdout
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert SECRET not in path.read_text(errors="replace"), path
    assert SECRET not in run.stdout + run.stderr

    # `ci-perf report` re-renders the same files from the saved result, without rerunning.
    again = tmp_path / "again"
    rerun = ci_perf("report", str(tmp_path / "results.json"), "--report-dir", str(again))
    assert rerun.returncode == 0, rerun.stderr
    assert (again / "report.md").read_text() == (tmp_path / "report.md").read_text()


def test_critical_breach_exits_1_with_a_junit_failure(tmp_path: Path) -> None:
    proc, url = start_stub("--api-key", SECRET, "--latency-ms", "250")
    try:
        run = ci_perf(
            "run",
            "--scenario",
            "smoke_test",
            "--tool",
            "k6",
            "--host",
            url,
            "--users",
            "2",
            "--duration",
            "5s",
            "--report-dir",
            str(tmp_path),
        )
    finally:
        proc.terminate()
        proc.wait(10)
    assert run.returncode == 1, run.stderr + run.stdout
    assert "ci-perf: smoke_test/k6: fail: " in run.stdout and "API p95" in run.stdout, run.stdout
    failures = [
        tc.get("name") for tc in ET.parse(tmp_path / "junit.xml").iter("testcase") if tc.find("failure") is not None
    ]
    assert "API p95" in failures


def test_a_run_that_breaks_still_reports_why(tmp_path: Path) -> None:
    """Exit 3 from a stack that never came up still leaves JUnit (an error case), the summary and the
    comment, each naming what broke with the service's own last words."""
    run = ci_perf(
        "run", "--scenario", "smoke_test", "--backend", "local", "--users", "2", "--duration", "5s",
        "--api-command", "echo api-boom-marker; exit 3", "--report-dir", str(tmp_path),
    )  # fmt: skip
    assert run.returncode == 3, run.stderr + run.stdout
    assert "exited before becoming healthy" in run.stderr and "Traceback" not in run.stderr
    cases = list(ET.parse(tmp_path / "junit.xml").iter("testcase"))
    assert [c.get("name") for c in cases] == ["run: stack"]
    error = cases[0].find("error")
    assert error is not None and "api-boom-marker" in (error.text or "")
    for name in ("comment.md", "summary.md"):
        text = (tmp_path / name).read_text()
        assert "💥 broke" in text and "What broke" in text and "api-boom-marker" in text, name
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["verdict"]["status"] == "error" and results["verdict"]["exit_code"] == 3
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert SECRET not in path.read_text(errors="replace"), path
