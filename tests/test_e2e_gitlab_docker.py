"""The GitLab template where GitLab runs it: gitlab-ci-local's docker executor runs the fixture project's
job (extends .ci-perf) in `python:3.11` (scripts/build-test-images makes a stand-in: Debian, python3,
root, no PostgreSQL, no Redis), as a merge-request pipeline without CI_PERF_GITLAB_TOKEN.

The template installs PostgreSQL and Redis with apt-get, ci-perf runs the local backend, skips the MR note
with one warning, and the job passes with GitLab's reports. The job's container uses host networking, so
all its traffic stays on 127.0.0.1; CI_API_V4_URL points at a local stand-in that must get no request.
The template's install step alone, in the same image without a network, shows its two failures.
"""

from __future__ import annotations

import glob
import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from ci_perf.publish.github import comment_marker
from e2e_helpers import ROOT, clean_env, gitlab_ci_local, make_gitlab_project
from fake_api import fake_api

pytestmark = [pytest.mark.e2e, pytest.mark.docker, pytest.mark.timeout(1500)]

JOB = "performance-test"
IMAGE = "python:3.11"  # the template's image, built locally (no registry)
HELPER = "ci-perf-test/gcl-helper:bookworm"  # gitlab-ci-local's own helper image cannot be pulled here
CONTAINER_CA = "/etc/ssl/certs/ca-certificates.crt"  # where gitlab-ci-local's --ca-file mounts the host's
# What a merge-request pipeline sets that gitlab-ci-local does not (or sets otherwise).
MR_VARIABLES = {
    "CI_PIPELINE_SOURCE": "merge_request_event",
    "CI_MERGE_REQUEST_IID": "7",
    "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME": "feature",
    "CI_MERGE_REQUEST_TARGET_BRANCH_NAME": "main",
    "GITLAB_CI": "true",
}


def require_images() -> None:
    if subprocess.run(["docker", "image", "inspect", IMAGE, HELPER], capture_output=True).returncode == 0:
        return
    problem = f"no {IMAGE} or {HELPER} image (or no Docker engine): run scripts/build-test-images"
    if os.environ.get("CI_PERF_REQUIRE_DOCKER") == "1":
        pytest.fail(f"CI_PERF_REQUIRE_DOCKER=1 but {problem}")
    pytest.skip(problem)


def pip_variables() -> dict[str, str]:
    """This machine's pip index settings for pip inside the job: network indexes only (file:// indexes and
    find-links name this machine's folders), and the CA bundle that --ca-file mounts."""
    listed = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True).stdout
    config = {}
    for line in listed.splitlines():
        key, _, value = line.partition("=")
        config[key.rpartition(".")[2]] = value.strip().strip("'\"")
    out = {"PIP_CERT": CONTAINER_CA, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    for name in ("index-url", "extra-index-url", "trusted-host", "default-timeout"):
        env_name = "PIP_" + name.upper().replace("-", "_")
        value = os.environ.get(env_name) or config.get(name, "")
        if "index-url" in name:
            value = " ".join(u for u in value.split() if u.startswith(("http://", "https://")))
        if value:
            out[env_name] = value
    return out


def host_ca() -> str:
    return os.environ.get("PIP_CERT") or os.environ.get("SSL_CERT_FILE") or CONTAINER_CA


def docker_lines(*argv: str) -> list[str]:
    return subprocess.run(["docker", *argv], capture_output=True, text=True, check=True).stdout.splitlines()


def leftovers(run_id: str = "") -> set[str]:
    """What gitlab-ci-local (containers of the job's images, gcl-* volumes, its networks, file-variable
    folders) and ci-perf (labelled containers, the run's temp folders) could leave on this machine. Other
    runs on a shared machine make their own; these names are ours."""
    ours = (IMAGE, HELPER)
    found = {f"container {line}" for line in docker_lines("ps", "-a", "--format", "{{.Names}} {{.Image}}")
             if line.split()[-1] in ours}  # fmt: skip
    found |= {f"container {name}" for name in docker_lines("ps", "-aq", "--filter", "label=ci-perf.run-id")}
    found |= {f"volume {v}" for v in docker_lines("volume", "ls", "-q") if v.startswith("gcl-")}
    found |= {f"network {n}" for n in docker_lines("network", "ls", "--format", "{{.Name}}")
              if n.startswith("gitlab-ci-local")}  # fmt: skip
    patterns = ["/tmp/gitlab-ci-local*"] + [f"/tmp/ci-perf-{run_id}-*"] * bool(run_id)
    return found | {f"temp {path}" for pattern in patterns for path in glob.glob(pattern)}


def test_merge_request_job_in_python_image_without_token(tmp_path: Path) -> None:
    gcl = gitlab_ci_local()
    require_images()
    project = make_gitlab_project(tmp_path / "project")
    before = leftovers()
    with fake_api() as api:
        variables = {**MR_VARIABLES, **pip_variables(), "CI_API_V4_URL": f"{api.url}/api/v4",
                     "PIP_CACHE_DIR": "/pip-cache"}  # fmt: skip
        argv = [gcl, "--pull-policy", "if-not-present", "--helper-image", HELPER, "--network", "host",
                "--ca-file", host_ca(), "--volume", f"{clean_env()['PIP_CACHE_DIR']}:/pip-cache",
                "--ignore-predefined-vars", ",".join(MR_VARIABLES | {"CI_API_V4_URL": ""})]  # fmt: skip
        for key, value in variables.items():
            argv += ["--variable", f"{key}={value}"]
        proc = subprocess.run([*argv, JOB], cwd=project, env=clean_env(), capture_output=True, text=True,
                              timeout=1400)  # fmt: skip
    log = proc.stdout + proc.stderr
    (tmp_path / "gitlab-ci-local.log").write_text(log, encoding="utf-8")
    tail = "\n".join(log.splitlines()[-60:])
    assert proc.returncode == 0, f"gitlab-ci-local exited {proc.returncode}:\n{tail}"
    assert f"PASS  {JOB}" in log, tail
    assert f"starting {IMAGE}" in log, "the job did not run in the python:3.11 container"
    # The image lacks both: the template installed them (and the local backend then found them).
    assert "ci-perf: installing postgresql redis-server with apt-get" in log, tail

    token_lines = [line for line in log.splitlines() if "CI_PERF_GITLAB_TOKEN" in line]
    assert len(token_lines) == 1 and "warning" in token_lines[0], token_lines
    assert api.requests == [], "no token: the GitLab API must not be called"

    reports = project / "reports"
    assert list(ET.parse(reports / "junit.xml").getroot().iter("testcase")), "JUnit report without test cases"
    metrics = json.loads((reports / "load-performance.json").read_text(encoding="utf-8"))["metrics"]
    assert metrics["http_reqs"]["count"] > 0
    assert (reports / "metrics.txt").read_text(encoding="utf-8").strip()
    # The note it would have posted is written, as without a token it cannot be.
    assert comment_marker("smoke_test", "locust") in (reports / "comment.md").read_text(encoding="utf-8")
    meta = json.loads((reports / "results.json").read_text(encoding="utf-8"))["result"]["meta"]
    assert meta["host"].startswith("http://127.0.0.1:"), meta["host"]  # the load stayed on loopback

    run_id = re.search(r"starting the local stack \(run id (\w+)\)", log)
    assert run_id, tail
    assert leftovers(run_id[1]) - before == set()


def install_step() -> str:
    template = yaml.safe_load((ROOT / "gitlab" / "ci-perf.gitlab-ci.yml").read_text(encoding="utf-8"))
    return next(item for item in template[".ci-perf"]["script"] if "ci_perf.services.needs" in item)


@pytest.mark.parametrize(
    ("user", "code", "message"),
    [
        ("runner", 2, "neither root nor has sudo to install them"),  # a non-root image without sudo
        ("root", 3, "apt-get could not install postgresql redis-server (its last lines above)"),  # no mirror
    ],
)
def test_install_step_failures_say_what_to_do(tmp_path: Path, user: str, code: int, message: str) -> None:
    """The template's install step, in the job image without a network: a job that cannot install
    stops there with one line naming the fix, instead of failing later in `ci-perf run`."""
    require_images()
    (tmp_path / "step.sh").write_text(install_step(), encoding="utf-8")
    # ci-perf's own answer (python -m ci_perf.services.needs) for an image with neither service.
    (tmp_path / "python").write_text("#!/bin/sh\necho postgresql redis-server\n", encoding="utf-8")
    (tmp_path / "python").chmod(0o755)
    script = f"""useradd -m runner; mkdir -p /venv/bin; cp /in/python /venv/bin/; cp /in/step.sh /venv/
        su {user} -c 'cd /tmp && CI_PERF_INSTALL_SERVICES=true CI_PERF_VENV=/venv bash -eo pipefail /venv/step.sh'"""
    proc = subprocess.run(
        ["docker", "run", "--rm", "--network", "none", "-v", f"{tmp_path}:/in:ro", IMAGE, "bash", "-c", script],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    lines = [line for line in proc.stdout.splitlines() if line.startswith("ci-perf:")]
    assert proc.returncode == code, proc.stdout + proc.stderr
    assert message in lines[-1] and "CI_PERF_BACKEND" in lines[-1], lines
