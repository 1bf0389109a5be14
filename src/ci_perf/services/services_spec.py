"""What the user declares beside the API, as data: extra databases and services (`stack.databases`,
`stack.services` in ci-perf.yml), parsed with one-line errors. Both backends read these types."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ci_perf.errors import ConfigError

# Names become placeholders ({NAME_db}, {S_url}), container names and log files: keep them plain.
NAME = re.compile(r"[a-z][a-z0-9_]{0,40}")
# The stack's own parts and steps: a service by one of these names would shadow their placeholders or logs.
RESERVED = {"db", "database", "postgres", "redis", "api", "migrate", "seed", "host", "port", "jwt", "initdb"}
_SERVICE_KEYS = {"command", "image", "args", "port", "env", "health"}


@dataclass(frozen=True)
class DatabaseSpec:
    """An extra database on the stack's PostgreSQL server, owned by `user` (default: the app's role)."""

    name: str
    user: str = ""  # empty: the app's db_user
    password: str = ""  # empty: the app's db_password (only used when user names another role)


@dataclass(frozen=True)
class ServiceSpec:
    """A process (local backend) or container (docker backend) started before the API."""

    name: str
    command: str = ""  # local: a shell command line; {host}/{port} = where it must listen
    image: str = ""  # docker
    args: tuple[str, ...] = ()  # docker: the container's command (empty: the image's own)
    port: int = 0  # where it listens; 0: ci-perf picks a free one ({port})
    env: dict[str, str] = field(default_factory=dict)
    health: str = "tcp"  # "tcp" (a connect succeeds) or an HTTP path answering 200


def parse_databases(value: Any) -> tuple[DatabaseSpec, ...]:
    """`[sark_audit]` or `[{name: sark_audit, user: audit, password: ...}]`."""
    if value in (None, ""):
        return ()
    if isinstance(value, str):  # CI_PERF_DATABASES=sark_audit,other
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, list):
        raise ConfigError("stack.databases must be a list, e.g. databases: [sark_audit]")
    out: list[DatabaseSpec] = []
    for item in value:
        if isinstance(item, str):
            item = {"name": item}
        if not isinstance(item, Mapping) or set(item) - {"name", "user", "password"} or "name" not in item:
            raise ConfigError(f"stack.databases entry {item!r} must be a name or {{name: ..., user: ...}}")
        spec = DatabaseSpec(str(item["name"]), str(item.get("user") or ""), str(item.get("password") or ""))
        _check_name(spec.name, "stack.databases name")
        if spec.user:
            _check_name(spec.user, f"stack.databases.{spec.name} user")
        if spec.name in {d.name for d in out}:
            raise ConfigError(f"stack.databases lists {spec.name!r} twice; name each database once")
        out.append(spec)
    return tuple(out)


def parse_services(value: Any) -> dict[str, ServiceSpec]:
    """`{opa: {command: ..., image: ..., args: [...], port: 8181, env: {...}, health: /health}}`."""
    if value in (None, ""):
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError("stack.services must be a mapping of NAME: {command|image, ...}")
    return {str(name): parse_service(str(name), body) for name, body in value.items()}


def parse_service(name: str, body: Any) -> ServiceSpec:
    where = f"stack.services.{name}"
    _check_name(name, "service name")
    if name in RESERVED:
        raise ConfigError(f"service name {name!r} is taken by the stack itself; choose another name")
    if isinstance(body, ServiceSpec):
        return body
    if not isinstance(body, Mapping):
        raise ConfigError(f"{where} must be a mapping with command (local) and/or image (docker)")
    unknown = sorted(set(body) - _SERVICE_KEYS)
    if unknown:
        raise ConfigError(f"{where} has unknown key {unknown[0]!r}; known keys: {', '.join(sorted(_SERVICE_KEYS))}")
    if not body.get("command") and not body.get("image"):
        raise ConfigError(f"{where} needs a command (local backend) or an image (docker backend)")
    args = body.get("args") or []
    if isinstance(args, str) or not isinstance(args, list):
        raise ConfigError(f"{where}.args must be a list, e.g. args: [run, --server]")
    env = body.get("env") or {}
    if not isinstance(env, Mapping):
        raise ConfigError(f"{where}.env must be a mapping (KEY: value)")
    port = body.get("port", 0) or 0
    if isinstance(port, bool) or not str(port).isdigit() or int(port) > 65535:
        raise ConfigError(f"{where}.port {port!r} must be a port number (1-65535), or left out")
    health = str(body.get("health") or "tcp")
    if health != "tcp" and not health.startswith("/"):
        raise ConfigError(f"{where}.health {health!r} must be an HTTP path such as /health, or tcp")
    return ServiceSpec(
        name=name,
        command=str(body.get("command") or ""),
        image=str(body.get("image") or ""),
        args=tuple(str(a) for a in args),
        port=int(port),
        env={str(k): str(v) for k, v in env.items()},
        health=health,
    )


def _check_name(name: str, what: str) -> None:
    if not NAME.fullmatch(name):
        raise ConfigError(f"{what} {name!r} must be lowercase letters, digits and _ (starting with a letter)")
