"""Health endpoints: liveness without I/O, readiness and a detailed report that touch PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ci_perf import __version__
from ci_perf.demo.runtime import Demo

CHECK_TIMEOUT_S = 2.0


async def live(request: Request) -> Response:
    return JSONResponse({"status": "healthy"})


async def ready(request: Request) -> Response:
    demo: Demo = request.app.state.demo
    database, redis = await asyncio.gather(_database(demo), _redis(demo))
    ok = database["status"] == "healthy" and redis["status"] == "healthy"
    body = {"status": "ready" if ok else "not ready", "database": database["status"], "redis": redis["status"]}
    return JSONResponse(body, status_code=200 if ok else 503)


async def detailed(request: Request) -> Response:
    demo: Demo = request.app.state.demo
    database, redis = await asyncio.gather(_database(demo), _redis(demo))
    ok = database["status"] == "healthy" and redis["status"] == "healthy"
    body = {
        "status": "healthy" if ok else "unhealthy",
        "version": __version__,
        "database": database,
        "redis": redis,
        "audit_storage": "hypertable" if "hypertable" in demo.extras else "table",
        "schema_extras": demo.extras,
        "audit_dropped": demo.audit.dropped,
    }
    return JSONResponse(body, status_code=200 if ok else 503)


async def _database(demo: Demo) -> dict[str, Any]:
    start = time.perf_counter()
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S), demo.pool.acquire() as conn:
            row = await conn.fetchrow(
                "SELECT current_setting('server_version') AS version, "
                "(SELECT extversion FROM pg_extension WHERE extname = 'timescaledb') AS timescaledb"
            )
    except Exception as exc:
        return {"status": "unhealthy", "error": f"{type(exc).__name__}: {exc}"}
    assert row is not None
    return {
        "status": "healthy",
        "latency_ms": round((time.perf_counter() - start) * 1000, 2),
        "version": row["version"],
        "timescaledb": row["timescaledb"] is not None,
        "timescaledb_version": row["timescaledb"],
        "pool_size": demo.pool.get_size(),
        "pool_idle": demo.pool.get_idle_size(),
    }


async def _redis(demo: Demo) -> dict[str, Any]:
    start = time.perf_counter()
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            await demo.redis.ping()
            latency = time.perf_counter() - start
            info = await demo.redis.info("server")
    except Exception as exc:
        return {"status": "unhealthy", "error": f"{type(exc).__name__}: {exc}"}
    return {"status": "healthy", "latency_ms": round(latency * 1000, 2), "version": info.get("redis_version")}


def routes() -> list[Route]:
    return [
        Route("/health", live, methods=["GET"]),
        Route("/health/", live, methods=["GET"]),
        Route("/health/live", live, methods=["GET"]),
        Route("/health/ready", ready, methods=["GET"]),
        Route("/health/detailed", detailed, methods=["GET"]),
    ]
