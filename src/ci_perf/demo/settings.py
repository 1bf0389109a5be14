"""The demo's configuration, read once from the environment (the contract the backends rely on)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from ci_perf.errors import ConfigError

# Endpoint groups the latency knob can slow down; "all" adds to every /api/* endpoint. "db" is apart:
# a pg_sleep on the pooled connection before each use, so it holds the connection and the pool becomes
# the bottleneck as load grows (latency that rises with load, as a real slow database's does).
T = TypeVar("T", int, float)

LATENCY_GROUPS = ("policy", "registration", "read", "auth", "all", "db")


@dataclass(frozen=True)
class Settings:
    database_url: str = "postgresql://sark:sark@127.0.0.1:5432/sark"
    redis_url: str = "redis://127.0.0.1:6379/0"
    api_key: str = ""  # bootstrap key; empty turns auth off
    rate_limit_per_minute: int = 0  # per API key; 0 turns the limit off
    latency_ms: dict[str, float] = field(default_factory=dict)  # group -> added latency
    error_rate: float = 0.0  # fraction of /api/* requests answering 500
    leak_kb_per_request: int = 0  # deliberate leak, for soak tests
    db_pool_size: int = 10
    redis_pool_size: int = 50
    policy_cache_ttl_s: int = 60
    connect_timeout_s: float = 30.0  # wait this long for PostgreSQL/Redis at startup

    @property
    def db_latency_s(self) -> float:
        return self.latency_ms.get("db", 0.0) / 1000.0

    def added_latency_s(self, group: str) -> float:
        return (self.latency_ms.get(group, 0.0) + self.latency_ms.get("all", 0.0)) / 1000.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        d = cls()
        return cls(
            database_url=env.get("DATABASE_URL") or d.database_url,
            redis_url=env.get("REDIS_URL") or d.redis_url,
            api_key=env.get("SARK_API_KEY", ""),
            rate_limit_per_minute=_number(env, "RATE_LIMIT_PER_MINUTE", 0, int),
            latency_ms=parse_latency(env.get("CI_PERF_DEMO_LATENCY_MS", "")),
            error_rate=_fraction(env, "CI_PERF_DEMO_ERROR_RATE"),
            leak_kb_per_request=_number(env, "CI_PERF_DEMO_LEAK_KB_PER_REQUEST", 0, int),
            db_pool_size=max(1, _number(env, "CI_PERF_DEMO_DB_POOL", d.db_pool_size, int)),
            redis_pool_size=max(1, _number(env, "CI_PERF_DEMO_REDIS_POOL", d.redis_pool_size, int)),
            policy_cache_ttl_s=_number(env, "CI_PERF_DEMO_POLICY_CACHE_TTL", d.policy_cache_ttl_s, int),
            connect_timeout_s=_number(env, "CI_PERF_DEMO_CONNECT_TIMEOUT", d.connect_timeout_s, float),
        )


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
