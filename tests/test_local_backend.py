"""The local backend with real PostgreSQL, Redis and API processes: up, down, and failure paths."""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path

import psutil
import pytest
import requests

from ci_perf.errors import ServiceError
from ci_perf.services import procs
from ci_perf.services.base import get_backend
from ci_perf.services.local import LocalStack, cleanup_local
from stack_helpers import HAVE_SERVICES, SKIP_REASON, family, local_config, running

pytestmark = [pytest.mark.integration, pytest.mark.skipif(not HAVE_SERVICES, reason=SKIP_REASON)]


@pytest.fixture(autouse=True)
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "state"
    monkeypatch.setenv("CI_PERF_STATE_DIR", str(folder))
    return folder


def test_up_serves_the_demo_and_down_leaves_nothing(tmp_path: Path, state_dir: Path) -> None:
    seed_marker = tmp_path / "seeded"
    seed = f"import os; open('{seed_marker}', 'w').write(os.environ['SARK_BASE_URL'])"
    config = local_config(
        tmp_path / "logs", api_key="boot", migrate_command=f"{sys.executable} -m ci_perf.demo migrate",
        seed_command=f'{sys.executable} -c "{seed}"',
    )  # fmt: skip
    stack = get_backend(config)
    assert isinstance(stack, LocalStack)
    info = stack.up()
    try:
        assert info.base_url.startswith("http://127.0.0.1:") and info.run_id == config.run_id
        assert seed_marker.read_text() == info.base_url
        detailed = requests.get(info.base_url + "/health/detailed", timeout=5).json()
        assert detailed["overall_healthy"]
        assert set(detailed["dependencies"]) == {"postgres", "timescale", "redis", "opa"}
        assert requests.get(info.base_url + "/api/v1/servers/", timeout=5).status_code == 401
        state = json.loads((state_dir / f"{config.run_id}.json").read_text())
        assert [p["name"] for p in state["processes"]] == ["postgres", "redis", "opa", "api"]
        pids = family(stack.pids())
        dirs = [Path(d) for d in state["temp_dirs"]]
        assert len(pids) > 3 and all(d.is_dir() for d in dirs)
    finally:
        stack.down()
    assert not running(pids)
    assert not any(d.exists() for d in dirs)
    assert not (state_dir / f"{config.run_id}.json").exists()
    logs = {p.name for p in (tmp_path / "logs").iterdir()}
    assert {"postgres.log", "redis.log", "api.log", "migrate.log", "seed.log"} <= logs
    stack.down()  # idempotent


def _assert_nothing_left(stack: LocalStack) -> None:
    assert not running(set(stack.pids()))
    assert not any(d.exists() for d in stack.temp_dirs)
    assert not stack.state.path.exists()


def test_api_that_exits_at_once_fails_with_its_log_and_cleans_up(tmp_path: Path) -> None:
    stack = LocalStack(local_config(tmp_path / "logs", api_command="echo boom-from-the-api; exit 3"))
    with pytest.raises(ServiceError) as err:
        stack.up()
    message = str(err.value)
    assert "api" in message and "exited before becoming healthy" in message and "boom-from-the-api" in message
    _assert_nothing_left(stack)


def test_api_that_never_becomes_healthy_times_out_and_cleans_up(tmp_path: Path) -> None:
    command = f"exec {sys.executable} -m http.server {{port}} --bind 127.0.0.1"
    stack = LocalStack(local_config(tmp_path / "logs", api_command=command, health_timeout_s=4))
    with pytest.raises(ServiceError, match=r"did not become healthy within 4s"):
        stack.up()
    log = (tmp_path / "logs" / "api.log").read_text()
    assert "404" in log  # the API did answer, just not 200 on /health/
    _assert_nothing_left(stack)


def test_taken_api_port_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        stack = LocalStack(local_config(tmp_path / "logs", api_port=port))
        with pytest.raises(ServiceError, match=rf"api_port: port {port} on 127.0.0.1 is already in use by pid "):
            stack.up()  # the machine's state: an infrastructure error (exit 3), naming who holds the port
    assert stack.pids() == [] and stack.temp_dirs == []


def test_an_api_answering_from_a_process_not_ours_is_refused(tmp_path: Path) -> None:
    """The port picked for the API gets taken (a race, or an API that ignores {port}): the health check
    passes against the holder, which must not be load-tested. Here the API's command starts a server in
    another session on the port and idles: the answer comes, but not from our process group."""
    marker = tmp_path / "squatter.pid"
    squat = f"{sys.executable} -m http.server {{port}} --bind 127.0.0.1"
    command = f"setsid {squat} >/dev/null 2>&1 & echo $! > {marker}; echo bind: address already in use; sleep 300"
    stack = LocalStack(local_config(tmp_path / "logs", api_command=command, health_path="/"))
    try:
        with pytest.raises(ServiceError) as err:
            stack.up()
    finally:
        stack.down()
        if marker.exists():
            psutil.Process(int(marker.read_text())).kill()
    message = str(err.value)
    assert "something else answers on 127.0.0.1:" in message and "not the process ci-perf started" in message
    assert "python" in message and "address already in use" in message  # who holds it, and the API's log
    _assert_nothing_left(stack)


def test_cleanup_local_removes_what_a_killed_run_left(tmp_path: Path, state_dir: Path) -> None:
    stack = LocalStack(local_config(tmp_path / "logs"))
    stack.up()
    try:
        pids = family(stack.pids())
        live = cleanup_local(stack.config.run_id)  # its owner (this process) lives: left alone
        assert live.removed == [] and "is still running" in live.skipped[stack.config.run_id]
        assert not stack.gone()
        removed = cleanup_local(stack.config.run_id, force=True).removed  # as `down --run-id --force` would
        assert any(r.startswith("process postgres") for r in removed)
        assert any(r.startswith("directory ") for r in removed)
        assert not running(pids)
        assert not any(d.exists() for d in stack.temp_dirs)
        assert cleanup_local(None).removed == []
        gone = {g.split(" (pid")[0] for g in stack.gone()}  # what a run would report as gone
        assert gone == {f"process {n}" for n in ("postgres", "redis", "opa", "api")}
    finally:
        stack.down()


def test_cleanup_local_ignores_a_reused_pid(state_dir: Path) -> None:
    state = procs.RunState("reused")
    state.processes.append({"name": "api", "pid": 1, "started": "not-the-real-start-time"})
    state.save()
    _orphan(state.path)
    assert cleanup_local(None).removed == []
    assert not state.path.exists()


def _orphan(path: Path) -> None:
    """As if the run's ci-perf had died: its owner record names a process that is gone."""
    data = json.loads(path.read_text())
    data["owner"]["started"] = "gone"
    path.write_text(json.dumps(data))


def test_down_all_leaves_live_runs_alone_and_removes_dead_ones(state_dir: Path) -> None:
    """Another job's `down --all` must not pull a live run's stack from under it (item 7); a run whose
    ci-perf died is cleaned up; --force removes live runs too. Owner identity is pid plus start time."""
    sleepers = [psutil.Popen(["sleep", "60"], start_new_session=True) for _ in range(2)]
    try:
        for name, proc in zip(("live", "dead"), sleepers, strict=True):
            state = procs.RunState(name)
            state.add_pid("api", proc.pid)
        _orphan(state_dir / "dead.json")
        done = cleanup_local(None)
        assert done.removed == [f"process api (pid {sleepers[1].pid})"] and list(done.skipped) == ["live"]
        assert f"pid {os.getpid()}) is still running" in done.skipped["live"]
        assert sleepers[0].is_running() and (state_dir / "live.json").exists()
        assert cleanup_local(None, force=True).removed == [f"process api (pid {sleepers[0].pid})"]
        assert not list(state_dir.glob("*.json"))
    finally:
        for proc in sleepers:
            proc.kill()
            proc.wait()


def test_processes_get_only_what_they_need_from_our_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tokens in ci-perf's environment (a CI job's, the user's auth) never reach PostgreSQL, Redis or the API."""
    monkeypatch.setenv("CI_PERF_BEARER_TOKEN", "bearer-must-not-leak")
    monkeypatch.setenv("GITHUB_TOKEN", "ghs_must_not_leak")
    stack = LocalStack(local_config(tmp_path / "logs"))
    stack.up()
    try:
        for proc in stack.processes:
            env = psutil.Process(proc.popen.pid).environ()
            assert "CI_PERF_BEARER_TOKEN" not in env and "GITHUB_TOKEN" not in env, proc.name
            assert env.get("PATH") or proc.name == "redis", proc.name  # redis rewrites its environ (proctitle)
        api = next(p for p in stack.processes if p.name == "api")
        assert "POSTGRES_HOST" in psutil.Process(api.popen.pid).environ()  # its own settings do arrive
    finally:
        stack.down()
