"""Shared fixtures: free ports, and a SARK-like stub server in a real process."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

TESTS = Path(__file__).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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
