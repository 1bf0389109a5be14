"""Ctrl-C and SIGTERM in the middle of `ci-perf run`: the load tool and the whole stack go away."""

from __future__ import annotations

import glob
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from ci_perf.services.procs import state_dir
from stack_helpers import HAVE_SERVICES, SKIP_REASON

pytestmark = pytest.mark.integration


def _recorded(run_id: str) -> dict[str, object]:
    """What the local backend recorded it started (its state file), read while the run is going."""
    data: dict[str, object] = json.loads((state_dir() / f"{run_id}.json").read_text())
    return data


def _still_there(state: dict[str, object], run_id: str) -> list[str]:
    left = glob.glob(f"/tmp/ci-perf-{run_id}-*") + [d for d in state["temp_dirs"] if Path(d).exists()]  # type: ignore[attr-defined]
    for p in state["processes"]:  # type: ignore[attr-defined]
        if psutil.pid_exists(p["pid"]) and psutil.Process(p["pid"]).status() != psutil.STATUS_ZOMBIE:
            left.append(f"{p['name']} pid {p['pid']}")
    return left


@pytest.mark.skipif(not HAVE_SERVICES, reason=SKIP_REASON)
@pytest.mark.parametrize(
    ("sig", "tool"), [(signal.SIGINT, "locust"), (signal.SIGTERM, "locust"), (signal.SIGTERM, "k6")]
)
def test_signal_mid_run_removes_everything(tmp_path: Path, sig: signal.Signals, tool: str) -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ci_perf",
            "run",
            "--backend",
            "local",
            "--tool",
            tool,
            "--duration",
            "60s",
            "--report-dir",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    run_id = ""
    deadline = time.monotonic() + 90
    for line in proc.stdout:  # wait until the stack is up and the load is running
        if "run id" in line:
            run_id = line.split("run id ")[1].split(")")[0]
        if line.startswith("ci-perf: smoke_test with") or time.monotonic() > deadline:
            break
    assert run_id, "the run never started"
    time.sleep(3)
    state = _recorded(run_id)
    assert {p["name"] for p in state["processes"]} >= {"postgres", "redis", "api"}  # type: ignore[attr-defined]
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, out
    assert "interrupted" in out
    time.sleep(0.5)
    assert _still_there(state, run_id) == []
    assert not (state_dir() / f"{run_id}.json").exists()
