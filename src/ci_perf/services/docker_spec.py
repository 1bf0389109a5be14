"""What the docker backend runs, as plain data: one ContainerSpec per service, derived from StackConfig.

Kept apart from services/docker.py (the only module importing `docker`) so that the wiring (ports,
commands, env, URLs) is unit-testable without an engine. Both network modes keep traffic on loopback:
"host" gives every service a free port on 127.0.0.1; "bridge" gives the run its own network and
publishes each service on 127.0.0.1 only.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from urllib.parse import quote

from ci_perf.errors import ConfigError
from ci_perf.net import free_port
from ci_perf.services import placeholders as ph
from ci_perf.services.base import LABEL, StackConfig, StackInfo
from ci_perf.services.placeholders import Address
from ci_perf.services.services_spec import ServiceSpec

SERVICE_LABEL = "ci-perf.service"
# What runs when neither --api-image nor --api-build-context is given: this tag when it is here
# (scripts/build-test-images makes it), else built from dockerfiles/demo-api.Dockerfile
# (services/demo_image.py). CI_PERF_DEMO_IMAGE names another tag (the container-mode tests use a fresh one).
DEMO_IMAGE = os.environ.get("CI_PERF_DEMO_IMAGE") or "ci-perf-test/sark-demo:latest"
PG_PORT, REDIS_PORT, API_PORT = 5432, 6379, 8000  # in-container ports in bridge mode
# Preloaded always, so that database query timings can be read from pg_stat_statements.
PRELOAD = "pg_stat_statements"
IMAGE_FLAGS = {"db": "--db-image", "redis": "--redis-image", "api": "--api-image"}


@dataclass(frozen=True)
class ContainerSpec:
    service: str  # db | redis | api | migrate | seed | a declared service: the label value and the log name
    image: str
    command: list[str] | None  # None: the image's own CMD
    env: dict[str, str] = field(default_factory=dict)
    port: int = 0  # where it listens inside its network namespace
    host_port: int = 0  # where it answers on the host's 127.0.0.1 (same as port in host mode)
    health: str = ""  # declared services: "tcp" or an HTTP path


def labels(run_id: str, service: str) -> dict[str, str]:
    return {LABEL: run_id, SERVICE_LABEL: service}


def container_name(run_id: str, service: str) -> str:
    return f"ci-perf-{run_id}-{service}"


def network_name(run_id: str) -> str:
    return f"ci-perf-{run_id}"


def _ports(cfg: StackConfig, bridge_port: int, host_port: int = 0) -> tuple[int, int]:
    host_port = host_port or free_port()
    return (bridge_port, host_port) if cfg.docker_network == "bridge" else (host_port, host_port)


def db_spec(cfg: StackConfig, timescaledb: bool) -> ContainerSpec:
    port, host_port = _ports(cfg, PG_PORT)
    listen = "127.0.0.1" if cfg.docker_network == "host" else "*"
    # -c overrides postgresql.conf, where the timescaledb image preloads its own library: keep it.
    preload = f"timescaledb,{PRELOAD}" if timescaledb else PRELOAD
    command = ["postgres", "-c", f"port={port}", "-c", f"listen_addresses={listen}"]
    command += ["-c", f"shared_preload_libraries={preload}"]
    env = {
        "POSTGRES_USER": cfg.db_user,
        "POSTGRES_PASSWORD": cfg.db_password,
        "POSTGRES_DB": cfg.db_name,
        "PGPORT": str(port),  # the official entrypoint's init server and psql use it
    }
    return ContainerSpec("db", cfg.db_image, command, env, port, host_port)


def redis_spec(cfg: StackConfig) -> ContainerSpec:
    port, host_port = _ports(cfg, REDIS_PORT)
    command = ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no"]
    if cfg.docker_network == "host":
        command += ["--bind", "127.0.0.1"]
    return ContainerSpec("redis", cfg.redis_image, command, {}, port, host_port)


def _address(cfg: StackConfig, spec: ContainerSpec) -> tuple[str, int]:
    """Where the API container reaches a service: loopback in host mode, the container name on a bridge."""
    if cfg.docker_network == "host":
        return "127.0.0.1", spec.port
    return container_name(cfg.run_id, spec.service), spec.port


def database_url(cfg: StackConfig, host: str, port: int) -> str:
    user, password = quote(cfg.db_user, safe=""), quote(cfg.db_password, safe="")
    return f"postgresql://{user}:{password}@{host}:{port}/{quote(cfg.db_name, safe='')}"


def redis_url(host: str, port: int) -> str:
    return f"redis://{host}:{port}/0"


def service_address(cfg: StackConfig, service: ServiceSpec) -> tuple[int, int]:
    """(port inside its namespace, port on the host's 127.0.0.1) for a declared service."""
    port = service.port or free_port()
    return (port, free_port()) if cfg.docker_network == "bridge" else (port, port)


def api_spec(
    cfg: StackConfig, image: str, exposed_port: int | None, db: ContainerSpec, redis: ContainerSpec,
    services: Mapping[str, tuple[int, int]] | None = None,
) -> ContainerSpec:  # fmt: skip
    """The API listens where we tell it when we own its command (the demo, or --api-command with
    {host}/{port}); a user image with its own CMD listens where it EXPOSEs (default 8000)."""
    demo = not cfg.api_image and not cfg.api_build_context
    movable = demo or bool(cfg.api_command)
    host_mode = cfg.docker_network == "host"
    if movable:
        port, host_port = _ports(cfg, API_PORT, cfg.api_port)
    else:
        fixed = exposed_port or API_PORT
        port, host_port = (
            (cfg.api_port or fixed, cfg.api_port or fixed) if host_mode else _ports(cfg, fixed, cfg.api_port)
        )
    bind = "127.0.0.1" if host_mode else "0.0.0.0"
    values = ph.for_process(stack_values(cfg, db, redis, port, services or {}), bind, port)
    env = {
        "DATABASE_URL": values["database_url"],
        "REDIS_URL": values["redis_url"],
        "SARK_API_KEY": cfg.api_key,
        "HOST": bind,
        "PORT": str(port),
        **ph.fill_env(cfg.api_env, values, "api_env"),
    }
    command: list[str] | None = None
    if cfg.api_command and ph.uses(cfg.api_command, ph.secret_names(cfg)):
        # A secret on the command line would show in `ps` and `docker inspect`: through a shell and the env.
        text, secret_env = ph.fill_shell(cfg.api_command, values, ph.secret_names(cfg), "api_command")
        command, env = ["sh", "-c", text], {**env, **secret_env}
    elif cfg.api_command:
        command = shlex.split(ph.fill(cfg.api_command, values, "api_command"))
    elif demo:
        command = ["python", "-m", "ci_perf.demo", "--host", bind, "--port", str(port)]
    return ContainerSpec("api", image, command, env, port, host_port)


def stack_values(cfg: StackConfig, db: ContainerSpec, redis: ContainerSpec, api_port: int,
                 services: Mapping[str, tuple[int, int]]) -> dict[str, str]:  # fmt: skip
    """The placeholders as every container of the run sees the others."""
    api_host = "127.0.0.1" if cfg.docker_network == "host" else container_name(cfg.run_id, "api")
    others = {name: Address(*_address(cfg, ContainerSpec(name, "", None, port=port)))
              for name, (port, _) in services.items()}  # fmt: skip
    return ph.stack_values(cfg, Address(*_address(cfg, db)), Address(*_address(cfg, redis)),
                           Address(api_host, api_port), others)  # fmt: skip


def service_spec(cfg: StackConfig, service: ServiceSpec, ports: tuple[int, int],
                 values: Mapping[str, str]) -> ContainerSpec:  # fmt: skip
    """A declared service's container: its image, its args and env with placeholders filled in."""
    where = f"stack.services.{service.name}"
    if not service.image:
        raise ConfigError(f"{where} has no image, which the docker backend runs; add image: (its command "
                          "is for --backend local)")  # fmt: skip
    port, host_port = ports
    bind = "127.0.0.1" if cfg.docker_network == "host" else "0.0.0.0"
    own = ph.for_process(values, bind, port)
    for i, arg in enumerate(service.args):
        if ph.uses(arg, ph.secret_names(cfg)):
            raise ConfigError(f"{where}.args[{i}] puts a secret on a command line; pass it in {where}.env instead")
    command = [ph.fill(a, own, f"{where}.args") for a in service.args] or None
    env = {"HOST": bind, "PORT": str(port), **ph.fill_env(service.env, own, f"{where}.env")}
    return ContainerSpec(service.name, service.image, command, env, port, host_port, service.health)


def job_spec(api: ContainerSpec, service: str, command: str, values: Mapping[str, str] | None = None,
             secret: Sequence[str] = ()) -> ContainerSpec:  # fmt: skip
    """A one-off container of the API image with the API's env (migrate, seed)."""
    own = ph.for_process(values or {}, api.env.get("HOST", ""), api.port) if values is not None else None
    text, secret_env = ph.fill_shell(command, own, set(secret), f"{service}_command") if own else (command, {})
    return replace(api, service=service, command=["sh", "-c", text], env={**api.env, **secret_env}, port=0,
                   host_port=0)  # fmt: skip


def stack_info(cfg: StackConfig, db: ContainerSpec, redis: ContainerSpec, api: ContainerSpec) -> StackInfo:
    return StackInfo(
        base_url=f"http://127.0.0.1:{api.host_port}",
        database_url=database_url(cfg, "127.0.0.1", db.host_port),
        redis_url=redis_url("127.0.0.1", redis.host_port),
        run_id=cfg.run_id,
    )
