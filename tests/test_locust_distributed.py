"""Distributed Locust through the real CLI against the SARK stub: a master with local workers
(`--workers N`), a master-only run with a `ci-perf worker` beside it, a worker killed mid-run, and
teardown of every process on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from ci_perf.config import Settings
from ci_perf.errors import ConfigError
from ci_perf.parsers.locust import worker_labels
from ci_perf.pipeline import check_scale_out
from ci_perf.runners.base import RunSpec
from ci_perf.runners.locust_dist import check_spec, master_args
from ci_perf.scenarios.catalog import get_scenario
from conftest import free_port

CLI = [sys.executable, "-m", "ci_perf"]
ENV = {**os.environ, "CI_PERF_API_KEY": "test-key", "CI_PERF_PUBLISH": "files"}


def run_args(url: str, out: Path, seconds: int, *extra: str) -> list[str]:
    return [
        *CLI,
        "run",
        "--host",
        url,
        "--scenario",
        "smoke_test",
        "--users",
        "4",
        "--spawn-rate",
        "4",
        "--duration",
        f"{seconds}s",
        "--window",
        "1",
        "--report-dir",
        str(out),
        *extra,
    ]


def results(out: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((out / "results.json").read_text())["result"]
    return data


def locust_processes(root: psutil.Process) -> list[psutil.Process]:
    return [p for p in root.children(recursive=True) if "locust" in " ".join(p.cmdline())]


# --- unit -------------------------------------------------------------------------------------------


def test_scale_out_flags_belong_to_their_tool() -> None:
    with pytest.raises(ConfigError, match="distribute Locust"):
        check_scale_out(Settings(tool="k6", workers=2))
    with pytest.raises(ConfigError, match="splits a k6 run"):
        check_scale_out(Settings(tool="locust", shard="1/2"))
    with pytest.raises(ConfigError, match="goes with --master"):
        check_scale_out(Settings(tool="locust", expect_workers=2))
    check_scale_out(Settings(tool="locust", master=True, expect_workers=2))


def test_master_flags() -> None:
    sc = get_scenario("smoke_test")
    local = RunSpec(sc, "http://h", Path("raw"), workers=3)
    assert master_args(local, 4000)[:5] == ["--master", "--expect-workers", "3", "--master-bind-host", "127.0.0.1"]
    remote = RunSpec(sc, "http://h", Path("raw"), expect_workers=2)
    assert master_args(remote, 5557) == ["--master", "--expect-workers", "2", "--master-bind-port", "5557"]
    assert master_args(RunSpec(sc, "http://h", Path("raw")), 1) == []
    with pytest.raises(ConfigError, match="not both"):
        check_spec(RunSpec(sc, "http://h", Path("raw"), workers=2, processes=2))


def test_worker_labels() -> None:
    assert worker_labels({"expected": 2, "seen": 2, "lost": [], "requests": {}}) == {"workers": "2"}
    lost = worker_labels({"expected": 2, "seen": 2, "lost": ["w1"], "requests": {}})
    assert lost == {"workers": "2", "workers_lost": "1", "workers_lost_ids": "w1"}


# --- real processes ---------------------------------------------------------------------------------


@pytest.mark.integration
def test_two_workers_give_one_result_that_adds_up(sark_stub: str, tmp_path: Path) -> None:
    proc = subprocess.run(
        run_args(sark_stub, tmp_path, 6, "--workers", "2"), env=ENV, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = results(tmp_path)
    entries = json.loads((tmp_path / "raw" / "locust.json").read_text())  # the master's totals
    workers = json.loads((tmp_path / "raw" / "locust_windows.json").read_text())["workers"]
    per_worker = workers["requests"]
    assert len(per_worker) == 2 and all(n > 0 for n in per_worker.values()), per_worker
    assert result["total"]["requests"] == sum(e["num_requests"] for e in entries) == sum(per_worker.values())
    assert sum(w["requests"] for w in result["total"]["windows"]) == result["total"]["requests"]
    assert result["meta"]["labels"] == {"workers": "2"}
    assert max(w["users"] for w in result["total"]["windows"]) == 4
    assert len(list((tmp_path / "raw").glob("locust-worker-*.log"))) == 2
    assert "warning" not in proc.stderr


@pytest.mark.integration
def test_a_worker_killed_mid_run_is_reported(sark_stub: str, tmp_path: Path) -> None:
    proc = subprocess.Popen(
        run_args(sark_stub, tmp_path, 10, "--workers", "2"),
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    me = psutil.Process(proc.pid)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len([p for p in locust_processes(me) if "--worker" in p.cmdline()]) < 2:
        time.sleep(0.2)
    time.sleep(4)  # let both workers report at least once
    victim = next(p for p in locust_processes(me) if "--worker" in p.cmdline())
    victim.kill()
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, out + err
    labels = results(tmp_path)["meta"]["labels"]
    assert labels["workers"] == "2" and labels["workers_lost"] == "1", labels
    assert "1 of 2 Locust worker(s) were lost" in err


@pytest.mark.integration
def test_sigterm_stops_master_and_workers(sark_stub: str, tmp_path: Path) -> None:
    proc = subprocess.Popen(
        run_args(sark_stub, tmp_path, 60, "--workers", "2"),
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    me = psutil.Process(proc.pid)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(locust_processes(me)) < 3:
        time.sleep(0.2)
    started = locust_processes(me)
    assert len(started) >= 3
    time.sleep(2)
    proc.send_signal(signal.SIGTERM)
    proc.wait(60)
    _gone, alive = psutil.wait_procs(started, timeout=20)
    assert not alive, [p.cmdline() for p in alive]


@pytest.mark.integration
def test_master_only_with_a_ci_perf_worker(sark_stub: str, tmp_path: Path) -> None:
    port = str(free_port())
    env = {**ENV, "CI_PERF_MASTER_PORT": port}
    master = subprocess.Popen(
        run_args(sark_stub, tmp_path / "master", 5, "--master", "--expect-workers", "1"),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(1)  # the worker retries its connection anyway; this only keeps the logs tidy
    worker = subprocess.Popen(
        [
            *CLI,
            "worker",
            "--master-host",
            "127.0.0.1",
            "--master-port",
            port,
            "--scenario",
            "smoke_test",
            "--report-dir",
            str(tmp_path / "worker"),
        ],
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    out, err = master.communicate(timeout=120)
    w_out, _ = worker.communicate(timeout=60)
    assert master.returncode == 0, out + err
    assert "waiting for 1 worker(s)" in out
    result = results(tmp_path / "master")
    assert result["meta"]["labels"] == {"workers": "1"} and result["total"]["requests"] > 10
    assert worker.returncode == 0, w_out


def test_forked_processes_get_a_port_of_their_own() -> None:
    from ci_perf.runners.locust import build_argv, output_files

    spec = RunSpec(get_scenario("smoke_test"), "http://h", Path("raw"), processes=2)
    argv = build_argv("locust", spec, output_files(Path("raw")), 41234)
    i = argv.index("--processes")
    assert argv[i : i + 8] == [
        "--processes",
        "2",
        "--master-bind-host",
        "127.0.0.1",
        "--master-bind-port",
        "41234",
        "--master-port",
        "41234",
    ]


@pytest.mark.integration
def test_two_runs_with_processes_on_one_machine_keep_their_workers(tmp_path: Path) -> None:
    """Before each run got its own port, both masters listened on 5557 and took each other's workers
    (with the other run's API key: 401s)."""
    from conftest import start_stub

    stubs = [start_stub("--api-key", f"key-{i}") for i in (1, 2)]
    try:
        procs = [
            subprocess.Popen(
                [
                    *run_args(url, tmp_path / f"run{i}", 6)[:-2],
                    "--processes",
                    "2",
                    "--report-dir",
                    str(tmp_path / f"run{i}"),
                ],
                env={**ENV, "CI_PERF_API_KEY": f"key-{i}"},
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for i, (_, url) in zip((1, 2), stubs, strict=True)
        ]
        outs = [p.communicate(timeout=120) for p in procs]
    finally:
        for stub, _ in stubs:
            stub.terminate()
            stub.wait(10)
    for i, (proc, (out, err)) in enumerate(zip(procs, outs, strict=True), 1):
        assert proc.returncode == 0, out + err
        result = results(tmp_path / f"run{i}")
        assert result["total"]["failures"] == 0 and result["meta"]["labels"]["workers"] == "2"
