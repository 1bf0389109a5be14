"""The interface every backend implements, and the one wait/poll loop they all use."""

from __future__ import annotations

import importlib
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from ci_perf.errors import ConfigError, ServiceError
from ci_perf.services.services_spec import DatabaseSpec, ServiceSpec

BackendName = Literal["docker", "local", "external"]
BACKEND_NAMES: tuple[BackendName, ...] = ("docker", "local", "external")
LABEL = "ci-perf.run-id"  # docker label / marker carrying the run id, for `ci-perf down`


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]


@dataclass(frozen=True)
class StackConfig:
    backend: BackendName
    log_dir: Path  # every service's log is saved here
    run_id: str = field(default_factory=new_run_id)
    host: str = ""  # external backend: the API's base URL
    api_port: int = 0  # 0: pick a free port
    health_path: str = "/health/"
    health_timeout_s: float = 120.0
    db_image: str = "timescale/timescaledb:latest-pg15"
    redis_image: str = "redis:7-alpine"
    api_image: str = ""  # empty: the demo target
    api_build_context: str = ""  # docker build context for the API image
    api_command: str = ""  # local: the API command (default: the demo target on uvicorn)
    api_dir: str = ""  # local: the folder api_command, migrate and seed run in (empty: ci-perf's own)
    api_env: dict[str, str] = field(default_factory=dict)
    migrate_command: str = ""  # run once the database is up, before the API
    seed_command: str = ""  # run once the API is healthy, before the test
    api_key: str = ""  # bootstrap API key handed to the API (and to the load tool)
    db_user: str = "sark"
    db_password: str = "sark"
    db_name: str = "sark"
    docker_network: Literal["host", "bridge"] = "host"  # bridge: per-run network, ports on 127.0.0.1
    databases: tuple[DatabaseSpec, ...] = ()  # extra databases on the same server (e.g. sark_audit)
    services: tuple[ServiceSpec, ...] = ()  # started after the databases, before the API
    jwt_secret: str = ""  # handed to the API through {jwt_secret}


@dataclass(frozen=True)
class StackInfo:
    """Where the running stack answers: 127.0.0.1 for stacks ci-perf starts, the --host URL for external."""

    base_url: str
    database_url: str = ""
    redis_url: str = ""
    run_id: str = ""
    # For the system sampler (ci_perf.observe): service name -> pid of the process we started
    # (local backend) or -> container id (docker backend). Empty when we did not start it.
    pids: dict[str, int] = field(default_factory=dict)
    containers: dict[str, str] = field(default_factory=dict)


class Stack(Protocol):
    def up(self) -> StackInfo: ...

    def down(self) -> None: ...

    def gone(self) -> list[str]:
        """What of the running stack has vanished since up() (a container removed, a process killed)."""
        ...


BackendFactory = Callable[[StackConfig], Stack]
BACKENDS: dict[str, BackendFactory] = {}


def register(name: str) -> Callable[[BackendFactory], BackendFactory]:
    def deco(factory: BackendFactory) -> BackendFactory:
        BACKENDS[name] = factory
        return factory

    return deco


def get_backend(config: StackConfig) -> Stack:
    if config.backend not in BACKEND_NAMES:
        raise ConfigError(f"unknown backend {config.backend!r}; choose one of: {', '.join(BACKEND_NAMES)}")
    from ci_perf.services.placeholders import check

    check(config)  # an unknown placeholder is a usage error, before anything starts
    # Import only the backend asked for: it registers itself, and only docker.py needs the docker SDK.
    importlib.import_module(f"ci_perf.services.{config.backend}")
    return BACKENDS[config.backend](config)


def wait_until(
    what: str,
    check: Callable[[], bool],
    timeout_s: float,
    interval_s: float = 0.5,
    logs: Callable[[], str] | None = None,
    alive: Callable[[], bool] | None = None,
) -> None:
    """Poll `check` until it returns True. On timeout (or when `alive` says the service died), raise
    ServiceError naming the service and showing the last 50 lines of its log."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if check():
                return
        except Exception:  # a check that cannot connect yet is simply "not ready"
            pass
        dead = alive is not None and not alive()
        if dead or time.monotonic() >= deadline:
            reason = "exited before becoming healthy" if dead else f"did not become healthy within {timeout_s:.0f}s"
            tail = _tail(logs() if logs else "", 50)
            detail = f"\n--- last log lines of {what} ---\n{tail}" if tail else ""
            raise ServiceError(f"{what} {reason}; check its log in the report folder{detail}")
        time.sleep(interval_s)


def _tail(text: str, lines: int) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])
