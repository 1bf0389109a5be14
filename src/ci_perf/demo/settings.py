"""The demo's configuration, read once from the environment under SARK's own names (see __init__)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TypeVar
from urllib.parse import quote

from ci_perf.errors import ConfigError

# Endpoint groups the latency knob can slow down; "all" adds to every /api/* endpoint. "db" is apart:
# a pg_sleep on the pooled connection before each use, so it holds the connection and the pool becomes
# the bottleneck as load grows (latency that rises with load, as a real slow database's does).
T = TypeVar("T", int, float)

LATENCY_GROUPS = ("policy", "registration", "read", "auth", "all", "db")
AUTH_MODES = ("jwt", "api-key", "none")
# SARK's defaults (its settings module): the policy path its OPA client queries and that client's timeout.
OPA_POLICY_PATH = "/v1/data/mcp/allow"
OPA_TIMEOUT_S = 1.0
DEFAULT_RATE_LIMIT = 100  # per minute, when RATE_LIMIT_ENABLED=true names no RATE_LIMIT_PER_MINUTE


@dataclass(frozen=True)
class Database:
    """One PostgreSQL database, addressed the way SARK's settings address it (host, port, user, ...)."""

    host: str = "localhost"
    port: int = 5432
    user: str = "sark"
    password: str = "sark"
    name: str = "sark"

    @property
    def dsn(self) -> str:
        auth = f"{quote(self.user, safe='')}:{quote(self.password, safe='')}"
        return f"postgresql://{auth}@{self.host}:{self.port}/{quote(self.name, safe='')}"

    @property
    def label(self) -> str:
        """Where it is, without the password (for log lines)."""
        return f"{self.name} on {self.host}:{self.port} as {self.user}"


@dataclass(frozen=True)
class Settings:
    postgres: Database = field(default_factory=Database)
    timescale: Database = field(default_factory=lambda: Database(name="sark_audit"))
    redis_host: str = "localhost"
    redis_port: int = 6379
    redis_password: str = ""
    auth_mode: str = "jwt"
    secret_key: str = ""  # verifies bearer tokens (SARK's route dependency checks this one)
    jwt_secret_key: str = ""  # SARK's middleware prefers it; the demo only reports a mismatch
    api_key: str = ""  # api-key mode: the bootstrap key (empty: every caller is anonymous)
    opa_url: str = "http://localhost:8181"
    opa_policy_path: str = OPA_POLICY_PATH
    opa_timeout_s: float = OPA_TIMEOUT_S
    rate_limit_per_minute: int = 0  # per caller; 0 turns the limit off
    latency_ms: dict[str, float] = field(default_factory=dict)  # group -> added latency
    error_rate: float = 0.0  # fraction of /api/* requests answering 500
    leak_kb_per_request: int = 0  # deliberate leak, for soak tests
    db_pool_size: int = 10
    redis_pool_size: int = 50
    policy_cache_ttl_s: int = 60
    connect_timeout_s: float = 30.0  # wait this long for PostgreSQL/Redis at startup

    @property
    def redis_url(self) -> str:
        auth = f":{quote(self.redis_password, safe='')}@" if self.redis_password else ""
        return f"redis://{auth}{self.redis_host}:{self.redis_port}/0"

    @property
    def db_latency_s(self) -> float:
        return self.latency_ms.get("db", 0.0) / 1000.0

    def added_latency_s(self, group: str) -> float:
        return (self.latency_ms.get(group, 0.0) + self.latency_ms.get("all", 0.0)) / 1000.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        d = cls()
        auth_mode = env.get("CI_PERF_DEMO_AUTH", "").strip().lower() or "jwt"
        if auth_mode not in AUTH_MODES:
            raise ConfigError(f"CI_PERF_DEMO_AUTH={auth_mode!r}: use one of {', '.join(AUTH_MODES)}")
        secret_key = env.get("SECRET_KEY", "")
        if auth_mode == "jwt" and not secret_key:
            raise ConfigError("SECRET_KEY is not set: the demo verifies bearer tokens with it "
                              "(set it, or CI_PERF_DEMO_AUTH=api-key|none)")  # fmt: skip
        return cls(
            postgres=_database(env, "POSTGRES", d.postgres),
            timescale=_database(env, "TIMESCALE", d.timescale),
            redis_host=env.get("REDIS_HOST") or d.redis_host,
            redis_port=_number(env, "REDIS_PORT", d.redis_port, int),
            redis_password=env.get("REDIS_PASSWORD", ""),
            auth_mode=auth_mode,
            secret_key=secret_key,
            jwt_secret_key=env.get("JWT_SECRET_KEY", ""),
            api_key=env.get("SARK_API_KEY", ""),
            opa_url=(env.get("OPA_URL") or d.opa_url).rstrip("/"),
            opa_policy_path="/" + (env.get("OPA_POLICY_PATH") or d.opa_policy_path).lstrip("/"),
            opa_timeout_s=_number(env, "OPA_TIMEOUT_SECONDS", d.opa_timeout_s, float),
            rate_limit_per_minute=_rate_limit(env),
            latency_ms=parse_latency(env.get("CI_PERF_DEMO_LATENCY_MS", "")),
            error_rate=_fraction(env, "CI_PERF_DEMO_ERROR_RATE"),
            leak_kb_per_request=_number(env, "CI_PERF_DEMO_LEAK_KB_PER_REQUEST", 0, int),
            db_pool_size=max(1, _number(env, "CI_PERF_DEMO_DB_POOL", d.db_pool_size, int)),
            redis_pool_size=max(1, _number(env, "CI_PERF_DEMO_REDIS_POOL", d.redis_pool_size, int)),
            policy_cache_ttl_s=_number(env, "CI_PERF_DEMO_POLICY_CACHE_TTL", d.policy_cache_ttl_s, int),
            connect_timeout_s=_number(env, "CI_PERF_DEMO_CONNECT_TIMEOUT", d.connect_timeout_s, float),
        )


def _database(env: Mapping[str, str], prefix: str, default: Database) -> Database:
    return Database(
        host=env.get(f"{prefix}_HOST") or default.host,
        port=_number(env, f"{prefix}_PORT", default.port, int),
        user=env.get(f"{prefix}_USER") or default.user,
        password=env.get(f"{prefix}_PASSWORD", default.password),
        name=env.get(f"{prefix}_DB") or default.name,
    )


def _rate_limit(env: Mapping[str, str]) -> int:
    """RATE_LIMIT_ENABLED switches the limit; unset, a RATE_LIMIT_PER_MINUTE above 0 alone turns it on."""
    per_minute = max(0, _number(env, "RATE_LIMIT_PER_MINUTE", 0, int))
    raw = env.get("RATE_LIMIT_ENABLED", "").strip().lower()
    if not raw:
        return per_minute
    if raw in ("1", "true", "yes", "on"):
        return per_minute or DEFAULT_RATE_LIMIT
    if raw in ("0", "false", "no", "off"):
        return 0
    raise ConfigError(f"RATE_LIMIT_ENABLED={raw!r}: use true or false")


def parse_latency(text: str) -> dict[str, float]:
    """'policy=30,registration=5' -> {'policy': 30.0, 'registration': 5.0}; a bare number means all."""
    out: dict[str, float] = {}
    for part in text.replace(";", ",").split(","):
        part = part.strip()
        if not part:
            continue
        group, sep, value = part.partition("=")
        if not sep:
            group, value = "all", part
        group = group.strip()
        if group not in LATENCY_GROUPS:
            raise ConfigError(f"CI_PERF_DEMO_LATENCY_MS: unknown group {group!r}; use {', '.join(LATENCY_GROUPS)}")
        try:
            out[group] = max(0.0, float(value))
        except ValueError:
            raise ConfigError(f"CI_PERF_DEMO_LATENCY_MS: {part!r} is not group=milliseconds") from None
    return out


def _number(env: Mapping[str, str], name: str, default: T, kind: type[T]) -> T:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return kind(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a {kind.__name__}") from None


def _fraction(env: Mapping[str, str], name: str) -> float:
    value = _number(env, name, 0.0, float)
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f"{name}={value} must be a fraction between 0 and 1")
    return value
