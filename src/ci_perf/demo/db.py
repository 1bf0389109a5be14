"""PostgreSQL access: the two schemas (created idempotently at start-up), the pools, and every query.

SARK keeps servers in POSTGRES_DB and audit events in TIMESCALE_DB; so does the demo. asyncpg
prepares and caches each statement per connection, so the hot queries below are parsed once per
connection, not once per request.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import asyncpg

from ci_perf.demo.paging import ListQuery

log = logging.getLogger("ci_perf.demo")

# Held while migrating, so that several uvicorn workers starting at once do not race on DDL.
_MIGRATE_LOCK = 0x5A4B_0001

MAIN_SCHEMA = """
CREATE TABLE IF NOT EXISTS mcp_servers (
    id uuid PRIMARY KEY,
    name text NOT NULL,
    transport text NOT NULL,
    endpoint text,
    command text,
    version text NOT NULL DEFAULT '',
    description text NOT NULL DEFAULT '',
    capabilities jsonb NOT NULL DEFAULT '[]',
    sensitivity_level text NOT NULL DEFAULT 'medium',
    signature text,
    status text NOT NULL DEFAULT 'active',
    metadata jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX IF NOT EXISTS idx_servers_created_id ON mcp_servers (created_at, id);
CREATE INDEX IF NOT EXISTS idx_servers_status ON mcp_servers (status, created_at, id);
CREATE INDEX IF NOT EXISTS idx_servers_sensitivity ON mcp_servers (sensitivity_level, created_at, id);
CREATE INDEX IF NOT EXISTS idx_servers_tags ON mcp_servers USING gin ((metadata -> 'tags'));
CREATE TABLE IF NOT EXISTS mcp_tools (
    server_id uuid NOT NULL REFERENCES mcp_servers (id) ON DELETE CASCADE,
    name text NOT NULL,
    description text NOT NULL DEFAULT '',
    parameters jsonb NOT NULL DEFAULT '{}',
    sensitivity_level text NOT NULL DEFAULT 'medium',
    requires_approval boolean NOT NULL DEFAULT false,
    PRIMARY KEY (server_id, name)
);
CREATE TABLE IF NOT EXISTS api_keys (
    id uuid PRIMARY KEY,
    key_hash text NOT NULL UNIQUE,
    prefix text NOT NULL,
    name text NOT NULL,
    description text NOT NULL DEFAULT '',
    scopes jsonb NOT NULL DEFAULT '[]',
    rate_limit integer,
    environment text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now()
);
"""

AUDIT_SCHEMA = """
CREATE TABLE IF NOT EXISTS audit_events (
    ts timestamptz NOT NULL DEFAULT now(),
    event_type text NOT NULL,
    actor text NOT NULL DEFAULT '',
    server_id uuid,
    action text NOT NULL DEFAULT '',
    tool text NOT NULL DEFAULT '',
    decision text NOT NULL DEFAULT '',
    reason text NOT NULL DEFAULT '',
    details jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS idx_audit_type_ts ON audit_events (event_type, ts DESC);
"""

# Optional extras: each is tried in its own savepoint, because plain PostgreSQL has no timescaledb
# and a non-owner may not create pg_trgm; the API works without either.
MAIN_OPTIONAL = (
    ("pg_trgm", "CREATE EXTENSION IF NOT EXISTS pg_trgm"),
    (
        "trigram index",
        "CREATE INDEX IF NOT EXISTS idx_servers_search ON mcp_servers "
        "USING gin ((name || ' ' || description) gin_trgm_ops)",
    ),
)
AUDIT_OPTIONAL = (
    ("timescaledb", "CREATE EXTENSION IF NOT EXISTS timescaledb"),
    ("hypertable", "SELECT create_hypertable('audit_events', 'ts', if_not_exists => TRUE, migrate_data => TRUE)"),
)


async def migrate(conn: asyncpg.Connection, schema: str, optional: tuple[tuple[str, str], ...]) -> list[str]:
    """Create one database's schema; returns the optional extras that could be set up."""
    done: list[str] = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATE_LOCK)
        await conn.execute(schema)
        for name, sql in optional:
            if name == "hypertable" and "timescaledb" not in done:
                continue
            try:
                async with conn.transaction():  # a savepoint: a failure leaves the rest intact
                    await conn.execute(sql)
                done.append(name)
            except asyncpg.PostgresError as exc:
                log.info("schema: %s not available (%s)", name, exc.__class__.__name__)
    return done


async def migrate_both(main: asyncpg.Connection, audit: asyncpg.Connection) -> list[str]:
    return [*await migrate(main, MAIN_SCHEMA, MAIN_OPTIONAL), *await migrate(audit, AUDIT_SCHEMA, AUDIT_OPTIONAL)]


async def _init_connection(conn: asyncpg.Connection) -> None:
    for kind in ("json", "jsonb"):
        await conn.set_type_codec(kind, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


# A missing database, role or password will not appear by waiting: these fail at once.
_PERMANENT = (asyncpg.InvalidCatalogNameError, asyncpg.InvalidAuthorizationSpecificationError,
              asyncpg.InvalidPasswordError)  # fmt: skip


async def connect_pool(dsn: str, size: int, timeout_s: float) -> asyncpg.Pool:
    """A small pool; retried until timeout_s because the database may still be starting."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            pool: asyncpg.Pool = await asyncpg.create_pool(
                dsn, min_size=min(2, size), max_size=size, init=_init_connection, command_timeout=30,
                timeout=max(1.0, min(10.0, timeout_s)),
            )  # fmt: skip
            return pool
        except _PERMANENT:
            raise
        except (TimeoutError, OSError, asyncpg.PostgresError):
            if time.monotonic() >= deadline:
                raise
            await asyncio.sleep(0.5)


SERVER_COLUMNS = "id, name, transport, endpoint, description, status, sensitivity_level, metadata, created_at"
ITEM_COLUMNS = "id, name, transport, status, sensitivity_level, created_at"

# One statement inserts the server and all its tools: one round trip, atomic.
INSERT_SERVER = """
WITH s AS (
    INSERT INTO mcp_servers (id, name, transport, endpoint, command, version, description, capabilities,
                             sensitivity_level, signature, metadata)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id
)
INSERT INTO mcp_tools (server_id, name, description, parameters, sensitivity_level, requires_approval)
SELECT s.id, t.name, t.description, t.parameters::jsonb, t.sensitivity_level, t.requires_approval
FROM s, unnest($12::text[], $13::text[], $14::text[], $15::text[], $16::boolean[])
     AS t(name, description, parameters, sensitivity_level, requires_approval)
"""
# A data-modifying CTE runs even when the outer SELECT yields no rows, so a server without tools works too.


async def insert_server(conn: asyncpg.Connection, server_id: Any, s: dict[str, Any]) -> None:
    tools = s["tools"]
    await conn.execute(
        INSERT_SERVER,
        server_id, s["name"], s["transport"], s["endpoint"], s["command"], s["version"], s["description"],
        s["capabilities"], s["sensitivity_level"], s["signature"], s["metadata"],
        [t["name"] for t in tools], [t["description"] for t in tools],
        [json.dumps(t["parameters"]) for t in tools], [t["sensitivity_level"] for t in tools],
        [t["requires_approval"] for t in tools],
    )  # fmt: skip


# Every filter is a parameter that may be NULL, so each sort order is one prepared statement.
LIST_WHERE = """
($1::text[] IS NULL OR status = ANY($1))
AND ($2::text[] IS NULL OR sensitivity_level = ANY($2))
AND ($3::text[] IS NULL OR CASE WHEN $4::boolean THEN (metadata -> 'tags') ?& $3 ELSE (metadata -> 'tags') ?| $3 END)
AND ($5::text IS NULL OR metadata ->> 'team_id' = $5)
AND ($6::text IS NULL OR metadata ->> 'owner_id' = $6)
AND ($7::text IS NULL OR (name || ' ' || description) ILIKE $7)
"""
LIST_PAGE = {
    order: f"SELECT {ITEM_COLUMNS} FROM mcp_servers WHERE {LIST_WHERE} "
    f"AND ($8::timestamptz IS NULL OR (created_at, id) {cmp} ($8, $9::uuid)) "
    f"ORDER BY created_at {order}, id {order} LIMIT $10"
    for order, cmp in (("asc", ">"), ("desc", "<"))
}
COUNT_SERVERS = f"SELECT count(*) FROM mcp_servers WHERE {LIST_WHERE}"


async def list_servers(conn: asyncpg.Connection, q: ListQuery) -> tuple[list[dict[str, Any]], bool, int | None]:
    """One page (items, has_more) and the total when asked for."""
    pattern = None if q.search is None else "%" + _escape_like(q.search) + "%"
    filters = (q.status, q.sensitivity, q.tags, q.match_all_tags, q.team_id, q.owner_id, pattern)
    after_ts, after_id = q.after if q.after else (None, None)
    rows = await conn.fetch(LIST_PAGE[q.sort_order], *filters, after_ts, after_id, q.limit + 1)
    total = int(await conn.fetchval(COUNT_SERVERS, *filters)) if q.include_total else None
    return [item_json(r) for r in rows[: q.limit]], len(rows) > q.limit, total


async def get_server(conn: asyncpg.Connection, server_id: Any) -> dict[str, Any] | None:
    row = await conn.fetchrow(f"SELECT {SERVER_COLUMNS} FROM mcp_servers WHERE id = $1", server_id)
    if row is None:
        return None
    tools = await conn.fetch(
        "SELECT name, description, sensitivity_level, parameters, requires_approval FROM mcp_tools "
        "WHERE server_id = $1 ORDER BY name",
        server_id,
    )
    out = item_json(row)
    out["tools"] = [dict(t) for t in tools]
    return out


# What the policy input needs about a server and one of its tools, in one indexed lookup.
POLICY_LOOKUP = """
SELECT s.name, s.status, s.sensitivity_level AS server_level, t.sensitivity_level AS tool_level
FROM mcp_servers s LEFT JOIN mcp_tools t ON t.server_id = s.id AND t.name = $2
WHERE s.id = $1
"""


async def policy_facts(conn: asyncpg.Connection, server_id: Any, tool: str) -> dict[str, Any] | None:
    row = await conn.fetchrow(POLICY_LOOKUP, server_id, tool)
    return None if row is None else dict(row)


def item_json(row: asyncpg.Record) -> dict[str, Any]:
    out = dict(row)
    out["id"] = str(out["id"])
    out["created_at"] = out["created_at"].isoformat()
    return out


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
