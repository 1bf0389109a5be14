"""Health endpoints as SARK has them: liveness without I/O (/health/), readiness (/health/ready) and a
detailed report (/health/detailed) on PostgreSQL, the audit database, Redis and the policy service."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ci_perf import __version__
from ci_perf.demo.runtime import Demo

CHECK_TIMEOUT_S = 2.0
ENVIRONMENT = "demo"
PG_FACTS = ("SELECT current_setting('server_version') AS version, "
            "(SELECT extversion FROM pg_extension WHERE extname = 'timescaledb') AS timescaledb")  # fmt: skip


async def live(request: Request) -> Response:
    return JSONResponse({"status": "healthy", "version": __version__, "environment": ENVIRONMENT})


async def alive(request: Request) -> Response:
    return JSONResponse({"status": "alive", "version": __version__, "environment": ENVIRONMENT})


async def ready(request: Request) -> Response:
    deps = await _dependencies(request.app.state.demo)
    ok = all(d["healthy"] for d in deps.values())
    body = {"ready": ok, "database": deps["postgres"]["healthy"], **{k: d["healthy"] for k, d in deps.items()}}
    return JSONResponse(body, status_code=200 if ok else 503)


async def detailed(request: Request) -> Response:
    demo: Demo = request.app.state.demo
    deps = await _dependencies(demo)
    ok = all(d["healthy"] for d in deps.values())
    body = {
        "status": "healthy" if ok else "degraded",
        "version": __version__,
        "environment": ENVIRONMENT,
        "dependencies": deps,
        "overall_healthy": ok,
        "audit_storage": "hypertable" if "hypertable" in demo.extras else "table",
        "schema_extras": demo.extras,
        "audit_dropped": demo.audit.dropped,
    }
    return JSONResponse(body)


async def _dependencies(demo: Demo) -> dict[str, dict[str, Any]]:
    checks = {
        "postgres": lambda: _postgres(demo.pool),
        "timescale": lambda: _postgres(demo.audit_pool),
        "redis": lambda: _redis(demo),
        "opa": lambda: _opa(demo),
    }
    results = await asyncio.gather(*(_timed(check) for check in checks.values()))
    return dict(zip(checks, results, strict=True))


async def _timed(check: Callable[[], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
    start = time.perf_counter()
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            facts = await check()
    except Exception as exc:
        facts = {"healthy": False, "error": f"{type(exc).__name__}: {exc}"}
    return {"healthy": True, **facts, "latency_ms": round((time.perf_counter() - start) * 1000, 2)}


async def _postgres(pool: asyncpg.Pool) -> dict[str, Any]:
    async with pool.acquire() as conn:
        row = await conn.fetchrow(PG_FACTS)
    assert row is not None
    return {"version": row["version"], "timescaledb": row["timescaledb"] is not None,
            "pool_size": pool.get_size(), "pool_idle": pool.get_idle_size()}  # fmt: skip


async def _redis(demo: Demo) -> dict[str, Any]:
    await demo.redis.ping()
    info = await demo.redis.info("server")
    return {"version": info.get("redis_version")}


async def _opa(demo: Demo) -> dict[str, Any]:
    if await demo.opa.healthy():
        return {"url": demo.settings.opa_url}
    return {"healthy": False, "url": demo.settings.opa_url, "error": "GET /health did not answer 200"}


def routes() -> list[Route]:
    return [
        Route("/health", live, methods=["GET"]),
        Route("/health/", live, methods=["GET"]),
        Route("/health/live", alive, methods=["GET"]),
        Route("/health/ready", ready, methods=["GET"]),
        Route("/health/detailed", detailed, methods=["GET"]),
    ]
