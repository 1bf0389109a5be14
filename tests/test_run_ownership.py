"""Whose run is it: `ci-perf down --all` leaves a live run of another job alone, a run whose stack is
pulled from under it ends as an infrastructure error, and a SIGKILLed ci-perf leaves no Locust behind
(issue 14 items 7 and 8). Real runs: the demo on the local backend, Locust, a private state folder."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from ci_perf.services import procs
from stack_helpers import HAVE_SERVICES, SKIP_REASON

pytestmark = [pytest.mark.integration, pytest.mark.skipif(not HAVE_SERVICES, reason=SKIP_REASON)]


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """A private state folder (so `down --all` sees this test's runs only) and no Docker engine (so it
    never reaches the containers of other runs on this machine)."""
    return {**os.environ, "CI_PERF_STATE_DIR": str(tmp_path / "state"), "DOCKER_HOST": "unix:///nonexistent.sock"}


@pytest.fixture
def start(tmp_path: Path, env: dict[str, str]) -> Iterator[Callable[..., subprocess.Popen[str]]]:
    runs: list[subprocess.Popen[str]] = []

    def run(*extra: str) -> subprocess.Popen[str]:
        argv = [sys.executable, "-m", "ci_perf", "run", "--backend", "local", "--tool", "locust", "--users", "2",
                "--duration", "120s", "--report-dir", str(tmp_path / "reports"), *extra]  # fmt: skip
        log = (tmp_path / "run.log").open("w")
        runs.append(subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, text=True))
        return runs[-1]

    yield run
    for proc in runs:  # a failed assertion must not leave a run going
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    down(env, "--all", "--force")


def down(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "ci_perf", "down", *args], env=env, capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def load_running(state: Path, run: subprocess.Popen[str]) -> tuple[str, dict[str, list[tuple[int, str]]]]:
    """Once Locust's master and both forked workers are recorded: the run id and the recorded pids by file."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert run.poll() is None, "the run ended before its load started"
        locust = list(state.glob("*.locust.json"))
        if locust and len(_pids(locust[0])) >= 3:
            run_id = locust[0].name.split(".")[0]
            return run_id, {p.name: _pids(p) for p in state.glob(f"{run_id}*.json")}
        time.sleep(0.5)
    raise AssertionError("Locust never started")


def _pids(path: Path) -> list[tuple[int, str]]:
    try:
        return [(p["pid"], p["started"]) for p in json.loads(path.read_text())["processes"]]
    except (OSError, ValueError):
        return []  # being rewritten


def alive(pids: list[tuple[int, str]]) -> list[str]:
    """The recorded processes still running (same pid, same start time, not a zombie), with their command."""
    found = []
    for pid, started in pids:
        with contextlib.suppress(psutil.Error):
            proc = psutil.Process(pid)
            if procs.start_time(pid) == started and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(f"{pid} {' '.join(proc.cmdline())[:100]}")
    return found


def test_down_all_skips_a_live_run_and_a_forced_one_ends_it_as_infra(
    tmp_path: Path, env: dict[str, str], start: Callable[..., subprocess.Popen[str]]
) -> None:
    run = start()
    run_id, recorded = load_running(tmp_path / "state", run)
    pids = [pid for part in recorded.values() for pid in part]

    skipped = down(env, "--all")
    assert f"skipped run {run_id}: its ci-perf (pid {run.pid}) is still running" in skipped, skipped
    assert "--force" in skipped and "removed 0 item(s)" in skipped
    time.sleep(2)
    assert run.poll() is None and len(alive(pids)) == len(pids)

    forced = down(env, "--all", "--force")
    assert "removed process api" in forced and "removed process locust master" in forced, forced
    assert run.wait(60) == 3  # an infrastructure error, not a threshold failure
    out = (tmp_path / "run.log").read_text()
    assert "ci-perf: error: the stack went away during the load: process " in out, out[-3000:]
    infra = json.loads((tmp_path / "reports" / "results.json").read_text())["infra"]
    assert infra["stage"] == "stack" and "went away" in infra["message"]
    assert alive(pids) == [] and not list((tmp_path / "state").glob("*.json"))


def test_sigkill_of_ci_perf_takes_locust_with_it_and_down_removes_the_rest(
    tmp_path: Path, env: dict[str, str], start: Callable[..., subprocess.Popen[str]]
) -> None:
    run = start()
    run_id, recorded = load_running(tmp_path / "state", run)
    locust = recorded[f"{run_id}.locust.json"]
    assert len(locust) == 3  # the master and the two workers it forked (--processes 2: one per user)

    run.send_signal(signal.SIGKILL)
    run.wait()
    deadline = time.monotonic() + 30  # Locust stops gracefully on the parent-death signal
    while alive(locust) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert alive(locust) == [], "Locust outlived the ci-perf that started it"

    stack = recorded[f"{run_id}.json"]
    assert alive(stack), "the stack has no parent-death signal: down is what removes it"
    removed = down(env, "--run-id", run_id)  # its owner is dead: no --force needed
    assert "removed process postgres" in removed and "skipped run" not in removed, removed
    assert alive(stack) == [] and not list((tmp_path / "state").glob("*.json"))
    assert not list(Path("/tmp").glob(f"ci-perf-{run_id}-*"))
