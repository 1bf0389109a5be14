"""Locust runner and locustfile pieces that need no load: argv, environment, progress lines, crash
detection, and the locustfile's headers, weights and stages (checked in a subprocess, because
importing locust monkey-patches the importing process with gevent)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ci_perf.auth import Auth
from ci_perf.errors import RunnerError
from ci_perf.runners import locust as runner
from ci_perf.runners.base import Progress, RunSpec
from ci_perf.scenarios.catalog import SCENARIOS, get_scenario


def _spec(tmp_path: Path, name: str = "smoke_test", **kw: object) -> RunSpec:
    return RunSpec(
        get_scenario(name).with_load(users=3, spawn_rate=2, duration_s=7), "http://127.0.0.1:9", tmp_path, **kw
    )  # type: ignore[arg-type]


def test_argv_uses_plugin_and_common_options(tmp_path: Path) -> None:
    spec = _spec(tmp_path, processes=2, extra_args=("--loglevel", "DEBUG"))
    argv = runner.build_argv("locust", spec, runner.output_files(tmp_path))
    assert argv[:3] == ["locust", "-f", f"{runner.PLUGIN},{runner.LOCUSTFILE}"]
    joined = " ".join(argv)
    assert "--users 3 --spawn-rate 2 --run-time 7s" in joined
    assert f"--json-file {tmp_path / 'locust'} " in joined  # Locust appends .json itself
    assert "--processes 2" in joined and argv[-2:] == ["--loglevel", "DEBUG"]


def test_staged_scenario_leaves_load_to_the_shape_but_own_script_does_not(tmp_path: Path) -> None:
    argv = runner.build_argv("locust", _spec(tmp_path, "spike_test", processes=1), runner.output_files(tmp_path))
    assert "--users" not in argv and "--processes" not in argv
    own = tmp_path / "mine.py"
    argv = runner.build_argv("locust", _spec(tmp_path, "spike_test", script=own), runner.output_files(tmp_path))
    assert argv[2] == f"{runner.PLUGIN},{own.resolve()}" and "--users" in argv


def test_env_carries_scenario_auth_and_plugin_settings(tmp_path: Path) -> None:
    spec = _spec(tmp_path, auth=Auth(api_key="k123"), window_s=2.5, progress_every_s=3)
    files = runner.output_files(tmp_path)
    env = runner.build_env(spec, files, base={"PYTHONPATH": "/x"})
    assert json.loads(env["CI_PERF_SCENARIO"])["name"] == "smoke_test"
    assert json.loads(env["CI_PERF_AUTH"])["api_key"] == "k123"
    assert (env["CI_PERF_WINDOW_S"], env["CI_PERF_PROGRESS_S"], env["CI_PERF_TOTAL_S"]) == ("2.5", "3", "7")
    assert env["CI_PERF_WINDOWS_FILE"] == str(files["windows"])
    assert env["PYTHONPATH"].endswith("/x") and "src" in env["PYTHONPATH"]


@pytest.mark.parametrize("p95", [12.4, None])
def test_progress_line_round_trips(p95: float | None) -> None:
    p = Progress(12.0, 30.0, 5, 47.25, p95, 1234, 3)
    parsed = runner.parse_progress(p.line() + "\n")
    assert parsed is not None and parsed.line() == p.line()
    assert runner.parse_progress("[2026-01-01 ...] INFO locust.main: Starting") is None


def test_missing_locust_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(RunnerError, match=r"pip install 'ci-perf\[runners\]'"):
        runner.find_locust()


def test_check_outputs_tells_crash_from_failed_requests(tmp_path: Path) -> None:
    files = runner.output_files(tmp_path)
    with pytest.raises(RunnerError, match=r"exit code 1\) and wrote no locust\.json.*SyntaxError: boom"):
        runner.check_outputs(1, files, ["Traceback (most recent call last):", "SyntaxError: boom"])
    files["locust_json"].write_text("[]")
    files["windows"].write_text("{}")
    runner.check_outputs(1, files, [])  # exit 1 with results: some requests failed, not a crash
    with pytest.raises(RunnerError, match="killed by signal 9"):
        runner.check_outputs(-9, files, [])


LOCUSTFILE_PROBE = """
import json, ci_perf.scenarios.locustfile as lf
print(json.dumps({
    "read": lf.READ_HEADERS, "write": lf.WRITE_HEADERS,
    "tasks": [f.__name__ for f in lf.SarkUser.tasks],
    "stages": getattr(getattr(lf, "StagesShape", None), "stages", None),
    "expected": sorted(lf.EXPECTED), "body": lf.server_body(2, "owner-1"),
}))
"""


def _probe(scenario: str, auth: Auth) -> dict[str, object]:
    env = {
        "CI_PERF_SCENARIO": SCENARIOS[scenario].to_json(),
        "CI_PERF_AUTH": auth.to_json(),
        "PATH": "",
        "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
    }  # this checkout's sources, not the installed ones
    out = subprocess.run(
        [sys.executable, "-c", LOCUSTFILE_PROBE], env=env, capture_output=True, text=True, timeout=60, check=True
    )
    data: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return data


def test_locustfile_auth_weights_and_shape() -> None:
    auth = Auth(
        api_key="k", bearer_token="jwt", headers={"X-Team": "perf"}, cookies={"session": "s1"}, csrf_token="tok"
    )
    data = _probe("stress_test", auth)
    assert data["read"] == {"X-Team": "perf", "X-API-Key": "k", "Authorization": "Bearer jwt", "Cookie": "session=s1"}
    assert data["write"] == {**auth.request_headers(write=True), "Cookie": "session=s1; csrf_token=tok"}
    tasks = data["tasks"]
    assert isinstance(tasks, list) and tasks.count("list_servers") == 30 and tasks.count("health") == 3
    assert data["stages"] == [[180.0, 250], [360.0, 500], [540.0, 750], [720.0, 1000], [900.0, 1000]]
    body = data["body"]
    assert isinstance(body, dict) and body["transport"] == "http" and len(body["tools"]) == 2
    assert body["version"] == "2025-06-18" and body["metadata"]["owner_id"] == "owner-1"


def test_locustfile_without_stages_has_no_shape_and_knows_expected_statuses() -> None:
    data = _probe("rate_limit_test", Auth())
    assert data["stages"] is None and data["expected"] == [429]
    tasks = data["tasks"]
    assert isinstance(tasks, list) and set(tasks) == {"burst_list", "evaluate_tool_invocation"}
    assert data["read"] == {}


def test_processes_default_to_one_per_core_up_to_users(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    assert runner.processes(_spec(tmp_path)) == 3  # 3 users: a fourth process would idle
    assert "--processes 3" in " ".join(runner.build_argv("locust", _spec(tmp_path), runner.output_files(tmp_path)))
    many = RunSpec(get_scenario("load_test_moderate"), "http://h", tmp_path)
    assert runner.processes(many) == 4
    assert runner.processes(_spec(tmp_path, processes=1)) == 1
    assert runner.processes(_spec(tmp_path, workers=2)) == 1  # distributed: the workers are the processes
    one = RunSpec(get_scenario("smoke_test"), "http://h", tmp_path)
    assert "--processes" not in runner.build_argv("locust", one, runner.output_files(tmp_path))
