"""Presets: one word that wires the stack and the auth for a known API (`--preset sark`). Plain data;
the user's own settings win over a preset's per key (api_env), per name (services) and per field.

`sark` (contract C6 in docs/architecture.md): SARK's env names for both databases and Redis, its audit
database, the policy service `opa` (the demo's stand-in unless the user declares their own), HS256 JWTs
signed with a fresh secret handed to the API as both SECRET_KEY and JWT_SECRET_KEY, and CSRF tokens.
"""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass, field

from ci_perf.errors import ConfigError
from ci_perf.services.docker_spec import DEMO_IMAGE
from ci_perf.services.services_spec import DatabaseSpec, ServiceSpec
from ci_perf.tokens import JwtConfig

AUTO = ""  # the bundled demo API implies sark; anything else implies none


@dataclass(frozen=True)
class Preset:
    name: str
    api_env: dict[str, str] = field(default_factory=dict)
    # Set only when the named service is part of the stack: env name -> (service, value).
    service_env: dict[str, tuple[str, str]] = field(default_factory=dict)
    databases: tuple[DatabaseSpec, ...] = ()
    services: tuple[ServiceSpec, ...] = ()  # a user's service of the same name replaces the preset's
    jwt: JwtConfig | None = None
    csrf: bool = False


# The demo's OPA-compatible stand-in: a local process, or the demo image on the docker backend.
DEMO_OPA = ServiceSpec(
    name="opa",
    command=f"{shlex.quote(sys.executable)} -m ci_perf.demo.opa --host {{host}} --port {{port}}",
    image=DEMO_IMAGE,
    args=("python", "-m", "ci_perf.demo.opa", "--host", "{host}", "--port", "{port}"),
    health="/health",
)

SARK = Preset(
    name="sark",
    api_env={
        "POSTGRES_HOST": "{db_host}",
        "POSTGRES_PORT": "{db_port}",
        "POSTGRES_USER": "{db_user}",
        "POSTGRES_PASSWORD": "{db_password}",
        "POSTGRES_DB": "{db_name}",
        # The audit database lives on the same server (SARK reads it as TimescaleDB).
        "TIMESCALE_HOST": "{db_host}",
        "TIMESCALE_PORT": "{db_port}",
        "TIMESCALE_USER": "{db_user}",
        "TIMESCALE_PASSWORD": "{db_password}",
        "TIMESCALE_DB": "{sark_audit_db}",
        "REDIS_HOST": "{redis_host}",
        "REDIS_PORT": "{redis_port}",
        # SARK's middleware accepts either key, its route dependency SECRET_KEY only: the same secret.
        "SECRET_KEY": "{jwt_secret}",
        "JWT_SECRET_KEY": "{jwt_secret}",
        "RATE_LIMIT_ENABLED": "false",
    },
    service_env={"OPA_URL": ("opa", "{opa_url}")},
    databases=(DatabaseSpec("sark_audit"),),
    services=(DEMO_OPA,),
    jwt=JwtConfig(role="developer"),  # may register servers and evaluate policies
    csrf=True,
)
NONE = Preset(name="none")
PRESETS: dict[str, Preset] = {p.name: p for p in (SARK, NONE)}


def check_name(name: str) -> str:
    if name not in (AUTO, *PRESETS):
        raise ConfigError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
    return name


def resolve(name: str, demo_api: bool) -> Preset:
    """The preset in force: the named one, or for AUTO sark with the bundled demo API, else none."""
    check_name(name)
    if name == AUTO:
        return SARK if demo_api else NONE
    return PRESETS[name]


def stack_parts(preset: Preset, api_env: dict[str, str], databases: tuple[DatabaseSpec, ...],
                services: dict[str, ServiceSpec]) -> tuple[dict[str, str], tuple[DatabaseSpec, ...],
                                                           tuple[ServiceSpec, ...]]:  # fmt: skip
    """The user's stack settings laid over the preset's: (api_env, databases, services)."""
    merged_services = {s.name: s for s in preset.services}
    merged_services.update(services)
    env = dict(preset.api_env)
    env.update({k: v for k, (service, v) in preset.service_env.items() if service in merged_services})
    env.update(api_env)
    names = {d.name for d in databases}
    merged_dbs = tuple(d for d in preset.databases if d.name not in names) + databases
    return env, merged_dbs, tuple(merged_services.values())
