"""Helpers for the tests that start real PostgreSQL, Redis and demo API processes."""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import jwt
import psutil
import requests

from ci_perf import presets
from ci_perf.services.base import StackConfig, StackInfo
from ci_perf.services.local import LocalStack, find_pg_bindir

HAVE_SERVICES = find_pg_bindir() is not None and shutil.which("redis-server") is not None
SKIP_REASON = "needs PostgreSQL server binaries and redis-server (apt install postgresql redis-server)"


SECRET = "ci-perf-tests-signing-secret-0123456789"
CSRF = "c" * 40


def sark_wiring(**kw: Any) -> dict[str, Any]:
    """StackConfig fields wiring the demo as SARK is wired (the sark preset: SARK's env names, the audit
    database, the policy stand-in, SECRET_KEY), with a fixed signing secret; `api_env` entries win."""
    env, databases, services = presets.stack_parts(presets.SARK, dict(kw.pop("api_env", {})), (), {})
    return {"api_env": env, "databases": databases, "services": services, "jwt_secret": SECRET, **kw}


def token(secret: str = SECRET, **claims: Any) -> str:
    """A SARK access token (HS256; claims set to None are left out)."""
    body = {"sub": str(uuid.uuid4()), "email": "dev@example.com", "role": "developer", "type": "access",
            "exp": int(time.time()) + 600, **claims}  # fmt: skip
    return jwt.encode({k: v for k, v in body.items() if v is not None}, secret, algorithm="HS256")


def headers(write: bool = False, **claims: Any) -> dict[str, str]:
    """Bearer auth, plus SARK's CSRF double submit (header equal to cookie) for writes."""
    out = {"Authorization": f"Bearer {token(**claims)}"}
    if write:
        out |= {"X-CSRF-Token": CSRF, "Cookie": f"csrf_token={CSRF}"}
    return out


def local_config(log_dir: Path, sark: bool = True, **kw: Any) -> StackConfig:
    """A local stack, wired as SARK is (sark_wiring) unless `sark` is False."""
    kw.setdefault("health_timeout_s", 60.0)
    return StackConfig(backend="local", log_dir=log_dir, **(sark_wiring(**kw) if sark else kw))


@contextmanager
def local_stack(log_dir: Path, sark: bool = True, **kw: object) -> Iterator[tuple[LocalStack, StackInfo]]:
    stack = LocalStack(local_config(log_dir, sark, **kw))
    info = stack.up()
    try:
        yield stack, info
    finally:
        stack.down()


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
