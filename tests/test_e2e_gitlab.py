"""The GitLab include template end to end: gitlab-ci-local runs a project's job that extends .ci-perf
(tests/fixtures/gitlab-project/.gitlab-ci.yml) with the shell executor, against the demo target on a
local stack, and the job leaves the reports GitLab reads: junit.xml, load-performance.json, metrics.txt.
"""

from __future__ import annotations

import json
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from e2e_helpers import clean_env, gitlab_ci_local, make_gitlab_project

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200)]

JOB = "performance-test"


def run_job(project: Path, *variables: str) -> subprocess.CompletedProcess[str]:
    env = clean_env()
    argv = [
        gitlab_ci_local(),
        "--shell-isolation",
        "--force-shell-executor",
        # A manual pipeline ("web"), one of the template's rules; gitlab-ci-local says "push".
        "--ignore-predefined-vars",
        "CI_PIPELINE_SOURCE",
        "--variable",
        "CI_PIPELINE_SOURCE=web",
        "--variable",
        f"PIP_CACHE_DIR={env['PIP_CACHE_DIR']}",
    ]
    for v in variables:
        argv += ["--variable", v]
    return subprocess.run([*argv, JOB], cwd=project, env=env, capture_output=True, text=True, timeout=1100)


def test_template_job_produces_gitlab_reports(tmp_path: Path) -> None:
    project = make_gitlab_project(tmp_path / "project")
    proc = run_job(project)
    log = proc.stdout + proc.stderr
    (tmp_path / "gitlab-ci-local.log").write_text(log, encoding="utf-8")
    tail = "\n".join(log.splitlines()[-60:])
    assert proc.returncode == 0, f"gitlab-ci-local exited {proc.returncode}:\n{tail}"
    assert f"PASS  {JOB}" in log, tail

    # gitlab-ci-local copies the job's artifacts (paths: reports/) back into the project folder.
    reports = project / "reports"
    junit = ET.parse(reports / "junit.xml").getroot()
    assert list(junit.iter("testcase")), "JUnit report without test cases"

    load_performance = json.loads((reports / "load-performance.json").read_text(encoding="utf-8"))
    metrics = load_performance["metrics"]  # k6 summary-export shape, what GitLab's MR widget reads
    assert metrics["http_reqs"]["count"] > 0
    assert "p(95)" in metrics["http_req_duration"]

    assert (reports / "metrics.txt").read_text(encoding="utf-8").strip()
    assert json.loads((reports / "results.json").read_text(encoding="utf-8"))
