"""Helpers for the tests that start real PostgreSQL, Redis and demo API processes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
import requests

from ci_perf.services.base import StackConfig, StackInfo
from ci_perf.services.local import LocalStack, find_pg_bindir
from conftest import free_port

HAVE_SERVICES = find_pg_bindir() is not None and shutil.which("redis-server") is not None
SKIP_REASON = "needs PostgreSQL server binaries and redis-server (apt install postgresql redis-server)"


def local_config(log_dir: Path, **kw: object) -> StackConfig:
    kw.setdefault("health_timeout_s", 60.0)
    return StackConfig(backend="local", log_dir=log_dir, **kw)  # type: ignore[arg-type]


@contextmanager
def local_stack(log_dir: Path, **kw: object) -> Iterator[tuple[LocalStack, StackInfo]]:
    stack = LocalStack(local_config(log_dir, **kw))
    info = stack.up()
    try:
        yield stack, info
    finally:
        stack.down()


@contextmanager
def demo_api(info: StackInfo, log: Path, **env: str) -> Iterator[tuple[str, int]]:
    """A second demo API process on the same database and Redis, with its own knobs."""
    port = free_port()
    full_env = {**os.environ, "DATABASE_URL": info.database_url, "REDIS_URL": info.redis_url, "SARK_API_KEY": ""}
    full_env.update(env)
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "ci_perf.demo", "--port", str(port)],
                                env=full_env, stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + "/health/", proc)
        yield url, proc.pid
    finally:
        proc.terminate()
        proc.wait(15)


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"process for {url} exited with {proc.returncode}"
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} never answered 200")


def family(pids: list[int]) -> set[int]:
    """The pids and all their descendants that exist now."""
    found: set[int] = set()
    for pid in pids:
        try:
            p = psutil.Process(pid)
            found |= {pid, *(c.pid for c in p.children(recursive=True))}
        except psutil.NoSuchProcess:
            pass
    return found


def running(pids: set[int]) -> set[int]:
    """Those of `pids` still running (zombies waiting to be reaped do not count)."""
    alive = set()
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                alive.add(pid)
        except psutil.NoSuchProcess:
            pass
    return alive
