"""Ctrl-C and SIGTERM in the middle of `ci-perf run`: the load tool and the whole stack go away."""

from __future__ import annotations

import glob
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

pytestmark = pytest.mark.integration

HAVE_POSTGRES = Path("/usr/lib/postgresql/15/bin/postgres").exists()


def _ours(run_id: str) -> list[str]:
    """Processes and temp folders of this run (the local backend names its temp folders by run id)."""
    left = glob.glob(f"/tmp/ci-perf-{run_id}-*")
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmd = " ".join(proc.info["cmdline"] or [])
        if run_id in cmd or ("ci_perf.demo" in cmd and proc.info["pid"] != os.getpid()):
            left.append(f"{proc.info['pid']}: {cmd[:100]}")
    return left


@pytest.mark.skipif(not HAVE_POSTGRES, reason="PostgreSQL 15 binaries are not installed")
@pytest.mark.parametrize(("sig", "tool"), [(signal.SIGINT, "locust"), (signal.SIGTERM, "k6")])
def test_signal_mid_run_removes_everything(tmp_path: Path, sig: signal.Signals, tool: str) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "ci_perf", "run", "--backend", "local", "--tool", tool, "--duration", "60s",
         "--report-dir", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
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
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, out
    assert "interrupted" in out
    time.sleep(0.5)
    assert _ours(run_id) == []
    assert not Path(f"/tmp/ci-perf-runs/{run_id}.json").exists()
