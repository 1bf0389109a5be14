"""What the samplers collected about the system under test, as JSON-round-tripping frozen types.

Times are seconds from the start of sampling (`started_at`, epoch seconds), so the charts can put
CPU and memory on the same axis as the load tool's windows. A figure that could not be measured is
None, with the reason in a `note`: a missing source is "not measured", never an error.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ci_perf.jsonread import decode


@dataclass(frozen=True)
class ResourceSample:
    t_s: float
    cpu_pct: float | None  # 100 = one core busy
    rss_mb: float | None  # anonymous resident memory (RssAnon; cgroup "anon"/"rss"), summed over processes


@dataclass(frozen=True)
class ServiceSeries:
    """One service (api, postgres, redis) over time."""

    service: str
    samples: tuple[ResourceSample, ...] = ()
    note: str = ""  # why it was not (fully) measured

    def rss(self) -> list[tuple[float, float]]:
        return [(s.t_s, s.rss_mb) for s in self.samples if s.rss_mb is not None]

    def cpu(self) -> list[tuple[float, float]]:
        return [(s.t_s, s.cpu_pct) for s in self.samples if s.cpu_pct is not None]


@dataclass(frozen=True)
class StatementStat:
    """One normalized statement from pg_stat_statements, over the run."""

    query: str  # truncated; parameters are already $n placeholders
    calls: int
    mean_ms: float
    total_ms: float
    max_ms: float | None = None  # None when only a difference of snapshots was available
    p95_ms: float | None = None  # ≈ mean + 1.645 × stddev (normal approximation; pg keeps no quantiles)


@dataclass(frozen=True)
class ConnectionSample:
    t_s: float
    by_state: dict[str, int] = field(default_factory=dict)  # pg_stat_activity state -> count

    @property
    def total(self) -> int:
        return sum(self.by_state.values())


@dataclass(frozen=True)
class DatabaseMetrics:
    connections: tuple[ConnectionSample, ...] = ()
    statements: tuple[StatementStat, ...] = ()  # slowest by mean first
    calls: int = 0  # all app statements during the run
    query_mean_ms: float | None = None  # calls-weighted mean exec time of the app's statements
    servers_before: int | None = None  # rows in the servers table at start and end (consistency)
    servers_after: int | None = None
    note: str = ""

    @property
    def peak_connections(self) -> int | None:
        return max((c.total for c in self.connections), default=None)

    @property
    def busiest(self) -> ConnectionSample | None:
        """The sample with the most active connections (then the most open): one instant's own figures."""
        return max(self.connections, key=lambda c: (c.by_state.get("active", 0), c.total), default=None)


@dataclass(frozen=True)
class RedisSample:
    t_s: float
    ops_per_sec: float | None
    clients: int | None
    used_memory_mb: float | None
    ping_ms: float | None


@dataclass(frozen=True)
class RedisMetrics:
    samples: tuple[RedisSample, ...] = ()
    note: str = ""


@dataclass(frozen=True)
class SystemMetrics:
    started_at: float  # epoch seconds of t_s == 0
    interval_s: float
    services: tuple[ServiceSeries, ...] = ()
    database: DatabaseMetrics | None = None
    redis: RedisMetrics | None = None

    @property
    def db_query_ms(self) -> float | None:
        """What the "Database queries" threshold judges (see DatabaseMetrics.query_mean_ms)."""
        return self.database.query_mean_ms if self.database else None

    def service(self, name: str) -> ServiceSeries | None:
        return next((s for s in self.services if s.service == name), None)

    def to_dict(self) -> dict[str, Any]:
        return _encode(self)  # type: ignore[no-any-return]

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SystemMetrics:
        return decode(cls, d, "system")


def _encode(obj: Any) -> Any:
    if hasattr(obj, "__dataclass_fields__"):
        return {name: _encode(getattr(obj, name)) for name in obj.__dataclass_fields__}
    if isinstance(obj, tuple | list):
        return [_encode(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): _encode(v) for k, v in obj.items()}
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj
