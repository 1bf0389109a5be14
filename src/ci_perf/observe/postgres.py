"""PostgreSQL during a run: connections by state (pg_stat_activity) every interval, and statement
times from pg_stat_statements over the whole run.

Statement times are the difference between a snapshot at the start and one at the end, so they are
right even when we may not call pg_stat_statements_reset() (it needs superuser or a grant); when the
reset works, max and the p95 approximation are over the run too. Our own queries carry a marker
comment and are left out, as are utility statements (BEGIN, SET, asyncpg's connection reset).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ci_perf.observe.model import ConnectionSample, DatabaseMetrics, StatementStat
from ci_perf.observe.resources import Unavailable

MARK = "/* ci-perf observe */ "
SERVERS_TABLE = "mcp_servers"  # SARK's (and the demo's) registrations, for the consistency check
TOP_STATEMENTS = 10
Z95 = 1.645
_UTILITY = re.compile(
    r"^\s*(BEGIN|COMMIT|ROLLBACK|START|SET|SHOW|RESET|DISCARD|DEALLOCATE|LISTEN|UNLISTEN|"
    r"SAVEPOINT|RELEASE|CLOSE|SELECT pg_advisory_unlock_all)\b",
    re.IGNORECASE,
)
_STATEMENTS_SQL = (
    MARK
    + """SELECT userid, queryid, query, calls, total_exec_time, max_exec_time, stddev_exec_time
FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"""
)
_ACTIVITY_SQL = (
    MARK
    + """SELECT coalesce(state, 'unknown') AS state, count(*) AS n FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid() GROUP BY 1"""
)


@dataclass(frozen=True)
class Row:
    query: str
    calls: int
    total_ms: float
    max_ms: float
    stddev_ms: float


Snapshot = dict[tuple[Any, Any, str], Row]


def is_app_statement(query: str) -> bool:
    return "ci-perf observe" not in query and not _UTILITY.match(query)


def statement_deltas(start: Snapshot, end: Snapshot, was_reset: bool) -> list[StatementStat]:
    """Per statement: calls and time during the run; max and ≈p95 only when the counters were reset."""
    out = []
    for key, row in end.items():
        before = start.get(key)
        calls = row.calls - (before.calls if before else 0)
        total = row.total_ms - (before.total_ms if before else 0.0)
        if calls <= 0 or not is_app_statement(row.query):
            continue
        mean = total / calls
        exact = was_reset or before is None
        out.append(StatementStat(
            query=" ".join(row.query.split())[:200], calls=calls, mean_ms=round(mean, 4), total_ms=round(total, 3),
            max_ms=round(row.max_ms, 3) if exact else None,
            p95_ms=round(mean + Z95 * row.stddev_ms, 3) if exact else None,
        ))  # fmt: skip
    return sorted(out, key=lambda s: -s.mean_ms)


def weighted_mean_ms(stats: list[StatementStat]) -> float | None:
    """The "Database queries" figure: total exec time / calls over the app's statements, i.e. the mean
    time of one query as the API experiences it (a frequent fast query weighs more than a rare slow one)."""
    calls = sum(s.calls for s in stats)
    return round(sum(s.total_ms for s in stats) / calls, 4) if calls else None


class PostgresObserver:
    """Async (asyncpg); the sampler thread runs it on its own event loop, one connection throughout."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._conn: Any = None
        self._start: Snapshot | None = None  # None: pg_stat_statements could not be read
        self._reset = False
        self._servers_before: int | None = None
        self._notes: list[str] = []
        self.connections: list[ConnectionSample] = []

    async def begin(self) -> None:
        try:
            import asyncpg
        except ImportError:
            raise Unavailable("asyncpg is not installed (pip install asyncpg)") from None
        try:
            self._conn = await asyncpg.connect(self.url, timeout=5)
        except Exception as exc:
            raise Unavailable(f"PostgreSQL not reachable ({type(exc).__name__})") from None
        await self._try(MARK + "CREATE EXTENSION IF NOT EXISTS pg_stat_statements", "")
        self._reset = await self._try(MARK + "SELECT pg_stat_statements_reset()", "")
        self._start = await self._snapshot()
        self._servers_before = await self._servers()

    async def _try(self, sql: str, note: str) -> bool:
        try:
            await self._conn.execute(sql)
            return True
        except Exception:
            if note:
                self._notes.append(note)
            return False

    async def _snapshot(self) -> Snapshot | None:
        try:
            rows = await self._conn.fetch(_STATEMENTS_SQL)
        except Exception as exc:  # not preloaded, extension missing, or no permission
            self._notes.append(f"query times not measured: pg_stat_statements unavailable ({_short(exc)})")
            return None
        return {(r["userid"], r["queryid"], r["query"]): Row(r["query"], int(r["calls"]), float(r["total_exec_time"]),
                                                            float(r["max_exec_time"]), float(r["stddev_exec_time"]))
                for r in rows}  # fmt: skip

    async def _servers(self) -> int | None:
        try:
            if await self._conn.fetchval(MARK + "SELECT to_regclass($1) IS NOT NULL", SERVERS_TABLE):
                return int(await self._conn.fetchval(MARK + f"SELECT count(*) FROM {SERVERS_TABLE}"))
        except Exception:
            pass
        return None

    async def sample(self, t_s: float) -> None:
        rows = await self._conn.fetch(_ACTIVITY_SQL)
        self.connections.append(ConnectionSample(t_s, {str(r["state"]): int(r["n"]) for r in rows}))

    async def finish(self) -> DatabaseMetrics:
        try:
            end = await self._snapshot() if self._start is not None else None
            stats = statement_deltas(self._start or {}, end or {}, self._reset)
            servers_after = await self._servers()
        finally:
            await self._conn.close()
        return DatabaseMetrics(
            connections=tuple(self.connections), statements=tuple(stats[:TOP_STATEMENTS]),
            calls=sum(s.calls for s in stats), query_mean_ms=weighted_mean_ms(stats) if end else None,
            servers_before=self._servers_before, servers_after=servers_after,
            note="; ".join(dict.fromkeys(self._notes)),
        )  # fmt: skip


def _short(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0][:160]
