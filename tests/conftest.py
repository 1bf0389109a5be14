"""Shared fixtures: free ports, and a SARK-like stub server in a real process."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from ci_perf.net import free_port

TESTS = Path(__file__).parent


def start_stub(*args: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(TESTS / "sark_stub.py"), "--port", str(port), *args])
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            requests.get(url + "/health/", timeout=1)
            return proc, url
        except requests.ConnectionError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("sark stub did not start")


@pytest.fixture
def sark_stub() -> Iterator[str]:
    """Base URL of a fresh stub that requires X-API-Key: test-key."""
    proc, url = start_stub("--api-key", "test-key")
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


# --- nothing of ours may outlive the test suite ------------------------------------------------------

_OUR_PROGRAMS = ("postgres", "redis-server", "locust", "k6", "ci_perf.demo", "sark_stub.py", "uvicorn")


_STATE_FOLDER = re.compile(r"ci-perf-runs(-\d+)?")


def _leftovers() -> set[str]:
    """Containers, networks, processes, temp folders and state files a ci-perf run creates."""
    import glob

    import psutil

    # The run-state folders (one per user, /tmp/ci-perf-runs-<uid>) stay; the state files in them must not.
    found = {f"temp folder {p}" for p in glob.glob("/tmp/ci-perf-*") if not _STATE_FOLDER.fullmatch(Path(p).name)}
    found |= {f"state file {p}" for p in glob.glob("/tmp/ci-perf-runs*/*.json")}
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmd = " ".join(proc.info["cmdline"] or [])
        if any(word in cmd for word in _OUR_PROGRAMS) and "pytest" not in cmd and _this_session(proc):
            found.add(f"process {proc.info['pid']}: {cmd[:120]}")
    try:
        import docker

        client = docker.from_env()
        found |= {f"container {c.name}" for c in client.containers.list(all=True, filters={"label": "ci-perf.run-id"})}
        found |= {f"network {n.name}" for n in client.networks.list(filters={"label": "ci-perf.run-id"})}
    except Exception:  # no engine: nothing of ours can be in it
        pass
    return found


# Every process the suite starts inherits this marker, so that other test runs on a shared machine
# are never mistaken for ours.
_SESSION_MARK = "CI_PERF_TEST_SESSION"


def _this_session(proc: Any) -> bool:
    try:
        return bool(proc.environ().get(_SESSION_MARK) == os.environ.get(_SESSION_MARK))
    except Exception:  # gone, or not ours to read
        return False


def pytest_sessionstart(session: pytest.Session) -> None:
    os.environ[_SESSION_MARK] = f"{os.getpid()}-{time.time()}"
    session.config.stash[_BEFORE] = _leftovers()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    before = session.config.stash.get(_BEFORE, set())
    left = sorted(_leftovers() - before)
    if left:
        print("\nleft behind by the test suite:\n  " + "\n  ".join(left), file=sys.stderr)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


_BEFORE = pytest.StashKey[set[str]]()
