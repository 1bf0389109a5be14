"""Audit trail: one row per policy decision and per registration, written in batches.

Requests only append to an in-memory buffer; a background task copies it into audit_events every
AUDIT_FLUSH_S (or sooner when it fills), so auditing costs the hot path no database round trip.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import uuid
from typing import Any

import asyncpg

log = logging.getLogger("ci_perf.demo")

AUDIT_FLUSH_S = 0.2
BATCH = 1000
MAX_BUFFER = 100_000  # beyond this (database down for long) the oldest events are dropped
# One statement per batch: arrays in, rows out (binary COPY would need a binary jsonb encoder).
INSERT_BATCH = """
INSERT INTO audit_events (ts, event_type, actor, server_id, action, tool, decision, reason, details)
SELECT ts, event_type, actor, server_id, action, tool, decision, reason, details::jsonb
FROM unnest($1::timestamptz[], $2::text[], $3::text[], $4::uuid[], $5::text[], $6::text[], $7::text[],
            $8::text[], $9::text[])
     AS t(ts, event_type, actor, server_id, action, tool, decision, reason, details)
"""


class AuditWriter:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._buffer: list[tuple[Any, ...]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.dropped = 0

    def record(
        self,
        event_type: str,
        actor: str = "",
        server_id: str | None = None,
        action: str = "",
        tool: str = "",
        decision: str = "",
        reason: str = "",
        details: dict[str, Any] | None = None,
    ) -> None:
        sid = _uuid_or_none(server_id)
        now = dt.datetime.now(dt.UTC)
        self._buffer.append((now, event_type, actor, sid, action, tool, decision, reason, json.dumps(details or {})))
        if len(self._buffer) > MAX_BUFFER:
            drop = len(self._buffer) - MAX_BUFFER
            del self._buffer[:drop]
            self.dropped += drop
        if len(self._buffer) >= BATCH:
            self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(Exception):
            await self.flush()

    async def flush(self) -> None:
        while self._buffer:
            batch, self._buffer = self._buffer[:BATCH], self._buffer[BATCH:]
            try:
                async with self._pool.acquire() as conn:
                    await conn.execute(INSERT_BATCH, *(list(col) for col in zip(*batch, strict=True)))
            except Exception:
                self._buffer[:0] = batch  # keep it for the next attempt
                raise

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), AUDIT_FLUSH_S)
            self._wake.clear()
            try:
                await self.flush()
            except Exception as exc:  # the database may be briefly away: retry on the next tick
                log.warning("audit flush failed: %s", exc)
                await asyncio.sleep(1.0)


def _uuid_or_none(value: str | None) -> uuid.UUID | None:
    if not value:
        return None
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None
