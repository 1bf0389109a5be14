"""Stack placeholders (`{db_host}`, `{redis_port}`, `{sark_audit_url}`, `{opa_url}`, `{jwt_secret}`, ...):
the stack's coordinates as the API sees them, filled into api_env values, commands and service settings
the same way on every backend (docs/architecture.md, contract C4).

Secret values ({db_password}, the database URLs, {jwt_secret}) never go on a command line: in a shell
command they become `${CI_PERF_SECRET_...}` references to the process's environment.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from urllib.parse import quote

from ci_perf.errors import ConfigError
from ci_perf.services.base import StackConfig
from ci_perf.services.services_spec import DatabaseSpec

# `${X}` and `$X` are the shell's, not ours.
PATTERN = re.compile(r"(?<![$\\])\{([A-Za-z_][A-Za-z0-9_]*)\}")
BASE_NAMES = ("db_host", "db_port", "db_user", "db_password", "db_name", "database_url", "redis_host",
              "redis_port", "redis_url", "api_host", "api_port", "host", "port", "jwt_secret")  # fmt: skip
SECRET_ENV_PREFIX = "CI_PERF_SECRET_"


@dataclass(frozen=True)
class Address:
    """Where one part of the stack answers, as the process being configured reaches it."""

    host: str
    port: int


def database_url(user: str, password: str, address: Address, name: str) -> str:
    auth = f"{quote(user, safe='')}:{quote(password, safe='')}"
    return f"postgresql://{auth}@{address.host}:{address.port}/{quote(name, safe='')}"


def database_role(cfg: StackConfig, spec: DatabaseSpec) -> tuple[str, str]:
    """(user, password) owning an extra database: the app's role unless the entry names another."""
    if not spec.user or spec.user == cfg.db_user:
        return cfg.db_user, cfg.db_password
    return spec.user, spec.password or cfg.db_password


def known_names(cfg: StackConfig) -> list[str]:
    names = list(BASE_NAMES)
    for d in cfg.databases:
        names += [f"{d.name}_db", f"{d.name}_url"]
    for s in cfg.services:
        names += [f"{s.name}_host", f"{s.name}_port", f"{s.name}_url"]
    return names


def secret_names(cfg: StackConfig) -> set[str]:
    return {"db_password", "database_url", "jwt_secret", *(f"{d.name}_url" for d in cfg.databases)}


def stack_values(cfg: StackConfig, db: Address, redis: Address, api: Address,
                 services: Mapping[str, Address]) -> dict[str, str]:  # fmt: skip
    """Every placeholder but {host}/{port} (those belong to the process being started)."""
    values = {
        "db_host": db.host, "db_port": str(db.port), "db_user": cfg.db_user, "db_password": cfg.db_password,
        "db_name": cfg.db_name, "database_url": database_url(cfg.db_user, cfg.db_password, db, cfg.db_name),
        "redis_host": redis.host, "redis_port": str(redis.port), "redis_url": f"redis://{redis.host}:{redis.port}/0",
        "api_host": api.host, "api_port": str(api.port), "jwt_secret": cfg.jwt_secret,
    }  # fmt: skip
    for d in cfg.databases:
        user, password = database_role(cfg, d)
        values[f"{d.name}_db"] = d.name
        values[f"{d.name}_url"] = database_url(user, password, db, d.name)
    for name, address in services.items():
        values.update({f"{name}_host": address.host, f"{name}_port": str(address.port),
                       f"{name}_url": f"http://{address.host}:{address.port}"})  # fmt: skip
    return values


def for_process(values: Mapping[str, str], host: str, port: int) -> dict[str, str]:
    """The values as seen by one process: {host}/{port} = where it must listen."""
    return {**values, "host": host, "port": str(port)}


def fill(text: str, values: Mapping[str, str], where: str = "") -> str:
    def one(m: re.Match[str]) -> str:
        if m[1] not in values:
            raise _unknown(m[1], where, values)
        return values[m[1]]

    return PATTERN.sub(one, text)


def fill_env(env: Mapping[str, str], values: Mapping[str, str], where: str) -> dict[str, str]:
    return {k: fill(v, values, f"{where}.{k}") for k, v in env.items()}


def fill_shell(text: str, values: Mapping[str, str], secret: set[str], where: str = "") -> tuple[str, dict[str, str]]:
    """A shell command line with placeholders filled in; secrets become `${CI_PERF_SECRET_X}` references,
    returned with their values as environment to add to the process."""
    env: dict[str, str] = {}

    def one(m: re.Match[str]) -> str:
        if m[1] not in values:
            raise _unknown(m[1], where, values)
        if m[1] in secret:
            var = SECRET_ENV_PREFIX + m[1].upper()
            env[var] = values[m[1]]
            return "${" + var + "}"
        return values[m[1]]

    return PATTERN.sub(one, text), env


def uses(text: str, names: set[str]) -> bool:
    return any(m[1] in names for m in PATTERN.finditer(text))


def templates(cfg: StackConfig) -> Iterator[tuple[str, str]]:
    """(where, text) of every setting that may hold placeholders."""
    for key, value in cfg.api_env.items():
        yield f"api_env.{key}", value
    for where in ("api_command", "migrate_command", "seed_command"):
        yield where, str(getattr(cfg, where))
    for s in cfg.services:
        yield f"stack.services.{s.name}.command", s.command
        for i, arg in enumerate(s.args):
            yield f"stack.services.{s.name}.args[{i}]", arg
        for key, value in s.env.items():
            yield f"stack.services.{s.name}.env.{key}", value


def check(cfg: StackConfig) -> None:
    """Every placeholder used anywhere is known (before anything starts: a typo is exit 2, not exit 3)."""
    known = dict.fromkeys(known_names(cfg), "")
    for where, text in templates(cfg):
        fill(text, known, where)


def _unknown(name: str, where: str, values: Mapping[str, str]) -> ConfigError:
    place = f" in {where}" if where else ""
    listed = ", ".join("{" + n + "}" for n in values)
    return ConfigError(f"unknown placeholder {{{name}}}{place}; known placeholders: {listed}")
