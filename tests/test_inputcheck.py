"""The action's input check (ci_perf.inputcheck): ci-perf's own config code on a bare Python, before the
install. Run as action.yml runs it: `python3 -B -S -m ci_perf.inputcheck` with PYTHONPATH=src, so no
site-packages (no PyYAML, no PyJWT) are there to lean on."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ci_perf.cli import main
from ci_perf.inputcheck import missing_services

ROOT = Path(__file__).resolve().parent.parent
GITHUB = {"GITHUB_ACTIONS": "true"}


def check(**env: str) -> subprocess.CompletedProcess[str]:
    base = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run(
        [sys.executable, "-B", "-S", "-m", "ci_perf.inputcheck"],
        env={**base, **env}, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_good_inputs_pass_on_the_stdlib_alone() -> None:
    proc = check(**GITHUB, CI_PERF_DURATION="1h30m", CI_PERF_HEALTH_TIMEOUT="2m", CI_PERF_COMMENT="false",
                 CI_PERF_API_ENV="# the demo's latency\nCI_PERF_DEMO_LATENCY_MS=40\n\nA=b=c", CI_PERF_BACKEND="auto",
                 CI_PERF_PRESET="sark", CI_PERF_INSTALL_SERVICES="false")  # fmt: skip
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")


@pytest.mark.parametrize(
    "var,value,message",
    [
        ("CI_PERF_COMMENT", "maybe", "comment 'maybe' is not true or false"),
        ("CI_PERF_DURATION", "10 minutes", "duration '10 minutes' is not a duration; write it like 30s, 5m or 1h30m"),
        ("CI_PERF_HEALTH_TIMEOUT", "0s", "health timeout '0s' must be longer than 0s"),
        ("CI_PERF_API_ENV", "A=1\nnot a pair", "CI_PERF_API_ENV line 'not a pair' must look like KEY=VALUE"),
        ("CI_PERF_BACKEND", "kubernetes", "unknown backend 'kubernetes'; choose one of: docker, local, external, auto"),
        ("CI_PERF_INSTALL_SERVICES", "sometimes", "install-services 'sometimes' is not true or false"),
    ],
)
def test_a_bad_input_is_one_error_annotation_and_exit_2(var: str, value: str, message: str) -> None:
    proc = check(**GITHUB, **{var: value})
    assert proc.returncode == 2, proc
    assert proc.stdout == f"::error title=ci-perf::{message}\n"
    assert proc.stderr == f"ci-perf: error: {message}\n"


def test_off_github_no_annotation() -> None:
    proc = check(CI_PERF_COMMENT="maybe")
    assert proc.returncode == 2 and proc.stdout == "" and "not true or false" in proc.stderr


def test_ci_perf_itself_annotates_a_config_error_on_github(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    (tmp_path / "ci-perf.yml").write_text("users: many\n", encoding="utf-8")
    assert main(["run", "--backend", "external", "--host", "http://127.0.0.1:9"]) == 2
    out, err = capsys.readouterr()
    problem = "ci-perf.yml: users is 'many', expected a whole number from 1 to 100000"
    assert out == f"::error title=ci-perf::{problem}\n"
    assert err == f"ci-perf: error: {problem}\n"


def test_missing_services_only_for_the_local_backend_and_only_when_asked(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from ci_perf.services import local

    monkeypatch.setattr(local, "find_pg_bindir", lambda: None)
    monkeypatch.setenv("PATH", str(tmp_path))  # no redis-server
    assert missing_services({"CI_PERF_BACKEND": "local"}) == ["postgresql", "redis-server"]
    assert missing_services({"CI_PERF_BACKEND": "local", "CI_PERF_INSTALL_SERVICES": "false"}) == []
    assert missing_services({"CI_PERF_BACKEND": "external", "CI_PERF_HOST": "http://127.0.0.1:9"}) == []
    assert missing_services({"CI_PERF_BACKEND": "docker"}) == []
    (tmp_path / "redis-server").write_text("#!/bin/sh\n")
    (tmp_path / "redis-server").chmod(0o755)
    assert missing_services({"CI_PERF_BACKEND": "local"}) == ["postgresql"]


@pytest.mark.parametrize(
    "backend,host,docker,expected",
    [
        (None, "", True, "local"),  # the CLI's default: local processes, Docker or not
        (None, "http://127.0.0.1:9", True, "external"),
        ("auto", "", True, "docker"),  # the action's default: containers where Docker answers
        ("auto", "", False, "local"),
        ("auto", "http://127.0.0.1:9", True, "external"),
        ("local", "", True, "local"),
        ("docker", "", False, "docker"),
    ],
)
def test_the_backend_rule(
    monkeypatch: pytest.MonkeyPatch, backend: str | None, host: str, docker: bool, expected: str
) -> None:
    from ci_perf import config

    monkeypatch.setattr(config, "docker_answers", lambda: docker)
    assert config.Settings(backend=backend, host=host).resolved_backend == expected  # type: ignore[arg-type]


def test_docker_answers_is_false_without_an_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    from ci_perf.config import docker_answers

    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    docker_answers.cache_clear()
    try:
        assert docker_answers() is False
    finally:
        docker_answers.cache_clear()


def action_run(**env: str) -> subprocess.CompletedProcess[str]:
    """scripts/action-run up to where it stops: these inputs never reach the install."""
    base = {"PATH": "/usr/bin:/bin", "CI_PERF_ACTION_PATH": str(ROOT), "GITHUB_ACTIONS": "true"}
    return subprocess.run(["bash", str(ROOT / "scripts" / "action-run")], env={**base, **env},
                          capture_output=True, text=True, timeout=60)  # fmt: skip


def test_action_run_stops_on_a_bad_input_before_the_install() -> None:
    proc = action_run(CI_PERF_PYTHON=sys.executable, CI_PERF_SHARD="5/4")
    assert proc.returncode == 2 and "Install ci-perf" not in proc.stdout, proc
    assert proc.stdout == "::error title=ci-perf::shard '5/4' must look like i/N with 1 <= i <= N, e.g. 1/4\n"


def test_action_run_names_a_missing_or_too_old_python(tmp_path: Path) -> None:
    proc = action_run(CI_PERF_PYTHON="/nonexistent/python3")
    assert proc.returncode == 2
    assert proc.stdout.startswith("::error title=ci-perf::input python: '/nonexistent/python3' is not found;")
    old = tmp_path / "python3"
    old.write_text('#!/bin/sh\ncase "$2" in *exit*) exit 1;; *) echo 3.10;; esac\n')
    old.chmod(0o755)
    proc = action_run(CI_PERF_PYTHON=str(old))
    assert proc.returncode == 2
    assert proc.stdout.startswith(f"::error title=ci-perf::input python: '{old}' is Python 3.10; ci-perf needs 3.11")
