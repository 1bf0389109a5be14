"""PostgreSQL access: the schema (created idempotently), the pool, and every query the API runs.

asyncpg prepares and caches each statement per connection, so the hot queries below are parsed
once per connection, not once per request.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import asyncpg

log = logging.getLogger("ci_perf.demo")

# Held while migrating, so that several uvicorn workers starting at once do not race on DDL.
_MIGRATE_LOCK = 0x5A4B_0001

SCHEMA = """
CREATE TABLE IF NOT EXISTS mcp_servers (
    id uuid PRIMARY KEY,
    name text NOT NULL,
    transport text NOT NULL,
    endpoint text,
    version text NOT NULL DEFAULT '',
    description text NOT NULL DEFAULT '',
    capabilities jsonb NOT NULL DEFAULT '[]',
    sensitivity_level text NOT NULL DEFAULT 'medium',
    status text NOT NULL DEFAULT 'active',
    metadata jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS idx_servers_status ON mcp_servers (status, created_at DESC);
CREATE INDEX IF NOT EXISTS idx_servers_sensitivity ON mcp_servers (sensitivity_level, created_at DESC);
CREATE INDEX IF NOT EXISTS idx_servers_created ON mcp_servers (created_at DESC);
CREATE TABLE IF NOT EXISTS mcp_tools (
    server_id uuid NOT NULL REFERENCES mcp_servers (id) ON DELETE CASCADE,
    name text NOT NULL,
    description text NOT NULL DEFAULT '',
    parameters jsonb NOT NULL DEFAULT '{}',
    sensitivity_level text NOT NULL DEFAULT 'medium',
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
OPTIONAL = (
    ("timescaledb", "CREATE EXTENSION IF NOT EXISTS timescaledb"),
    ("hypertable", "SELECT create_hypertable('audit_events', 'ts', if_not_exists => TRUE, migrate_data => TRUE)"),
    ("pg_trgm", "CREATE EXTENSION IF NOT EXISTS pg_trgm"),
    (
        "trigram index",
        "CREATE INDEX IF NOT EXISTS idx_servers_search ON mcp_servers "
        "USING gin ((name || ' ' || description) gin_trgm_ops)",
    ),
)


async def migrate(conn: asyncpg.Connection) -> list[str]:
    """Create the schema; returns the optional extras that could be set up."""
    done: list[str] = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATE_LOCK)
        await conn.execute(SCHEMA)
        for name, sql in OPTIONAL:
            if name == "hypertable" and "timescaledb" not in done:
                continue
            try:
                async with conn.transaction():  # a savepoint: a failure leaves the rest intact
                    await conn.execute(sql)
                done.append(name)
            except asyncpg.PostgresError as exc:
                log.info("schema: %s not available (%s)", name, exc.__class__.__name__)
    return done


async def _init_connection(conn: asyncpg.Connection) -> None:
    for kind in ("json", "jsonb"):
        await conn.set_type_codec(kind, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def connect_pool(url: str, size: int, timeout_s: float) -> asyncpg.Pool:
    """A small pool; retried until timeout_s because the database may still be starting."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            pool: asyncpg.Pool = await asyncpg.create_pool(
                url, min_size=min(2, size), max_size=size, init=_init_connection, command_timeout=30
            )
            return pool
        except (TimeoutError, OSError, asyncpg.PostgresError):
            if time.monotonic() >= deadline:
                raise
            await asyncio.sleep(0.5)


SERVER_COLUMNS = (
    "id, name, transport, endpoint, version, description, capabilities, sensitivity_level, status, metadata, created_at"
)

# One statement inserts the server and all its tools: one round trip, atomic.
INSERT_SERVER = """
WITH s AS (
    INSERT INTO mcp_servers (id, name, transport, endpoint, version, description, capabilities,
                             sensitivity_level, metadata)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id
)
INSERT INTO mcp_tools (server_id, name, description, parameters, sensitivity_level)
SELECT s.id, t.name, t.description, t.parameters::jsonb, t.sensitivity_level
FROM s, unnest($10::text[], $11::text[], $12::text[], $13::text[])
     AS t(name, description, parameters, sensitivity_level)
"""


async def insert_server(conn: asyncpg.Connection, server_id: Any, s: dict[str, Any]) -> None:
    tools = s["tools"]
    await conn.execute(
        INSERT_SERVER,
        server_id, s["name"], s["transport"], s["endpoint"], s["version"], s["description"],
        s["capabilities"], s["sensitivity_level"], s["metadata"],
        [t["name"] for t in tools], [t["description"] for t in tools],
        [json.dumps(t["parameters"]) for t in tools], [t["sensitivity_level"] for t in tools],
    )  # fmt: skip


LIST_WHERE = (
    "($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR sensitivity_level = $2) "
    "AND ($3::text IS NULL OR (name || ' ' || description) ILIKE $3)"
)
LIST_SERVERS = (
    f"SELECT {SERVER_COLUMNS} FROM mcp_servers WHERE {LIST_WHERE} ORDER BY created_at DESC LIMIT $4 OFFSET $5"
)
COUNT_SERVERS = f"SELECT count(*) FROM mcp_servers WHERE {LIST_WHERE}"


async def list_servers(
    conn: asyncpg.Connection, status: str | None, level: str | None, search: str | None, limit: int, offset: int
) -> tuple[list[dict[str, Any]], int]:
    pattern = None if search is None else "%" + _escape_like(search) + "%"
    rows = await conn.fetch(LIST_SERVERS, status, level, pattern, limit, offset)
    if offset == 0 and len(rows) < limit:  # the page holds everything: skip the count
        return [server_json(r) for r in rows], len(rows)
    total = await conn.fetchval(COUNT_SERVERS, status, level, pattern)
    return [server_json(r) for r in rows], int(total)


async def get_server(conn: asyncpg.Connection, server_id: Any) -> dict[str, Any] | None:
    row = await conn.fetchrow(f"SELECT {SERVER_COLUMNS} FROM mcp_servers WHERE id = $1", server_id)
    if row is None:
        return None
    tools = await conn.fetch(
        "SELECT name, description, parameters, sensitivity_level FROM mcp_tools WHERE server_id = $1 ORDER BY name",
        server_id,
    )
    out = server_json(row)
    out["tools"] = [dict(t) for t in tools]
    return out


# What the policy needs about a server and one of its tools, in one indexed lookup.
POLICY_LOOKUP = """
SELECT s.status, s.sensitivity_level AS server_level, t.sensitivity_level AS tool_level
FROM mcp_servers s LEFT JOIN mcp_tools t ON t.server_id = s.id AND t.name = $2
WHERE s.id = $1
"""


async def policy_facts(conn: asyncpg.Connection, server_id: Any, tool: str) -> dict[str, Any] | None:
    row = await conn.fetchrow(POLICY_LOOKUP, server_id, tool)
    return None if row is None else dict(row)


def server_json(row: asyncpg.Record) -> dict[str, Any]:
    out = dict(row)
    out["id"] = str(out["id"])
    out["created_at"] = out["created_at"].isoformat()
    return out


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
