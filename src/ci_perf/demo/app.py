"""The demo's routes and the ASGI app (built by create_app, which uvicorn calls as a factory)."""

from __future__ import annotations

import contextlib
import json
import secrets
import uuid
from collections.abc import AsyncIterator
from typing import Any

import redis.asyncio as aioredis
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ci_perf.demo import db, health
from ci_perf.demo.audit import AuditWriter
from ci_perf.demo.policy import LEVELS, PolicyInputError, PolicyRequest, evaluate
from ci_perf.demo.runtime import Demo, api, hash_key, log
from ci_perf.demo.settings import Settings
from ci_perf.demo.validation import ValidationError, server_payload

MAX_LIMIT = 1000


async def _json_body(request: Request) -> Any:
    try:
        return await request.json()
    except ValueError:
        raise ValidationError("body is not valid JSON") from None


@api("registration")
async def register_server(request: Request, demo: Demo, actor: str) -> Response:
    server = server_payload(await _json_body(request))
    server_id = uuid.uuid4()
    async with demo.connection() as conn:
        await db.insert_server(conn, server_id, server)
    demo.audit.record(
        "server_registered", actor, str(server_id), action="server:register",
        details={"name": server["name"], "tools": len(server["tools"])},
    )  # fmt: skip
    return JSONResponse({"server_id": str(server_id), "status": "registered"}, status_code=201)


@api("read")
async def list_servers(request: Request, demo: Demo, actor: str) -> Response:
    q = request.query_params
    limit = min(max(_int_param(q.get("limit"), 50, "limit"), 1), MAX_LIMIT)
    offset = max(_int_param(q.get("offset"), 0, "offset"), 0)
    level = q.get("sensitivity_level") or None
    if level is not None and level not in LEVELS:
        raise ValidationError(f"sensitivity_level must be one of {', '.join(LEVELS)}")
    async with demo.connection() as conn:
        items, total = await db.list_servers(conn, q.get("status") or None, level, q.get("search") or None,
                                             limit, offset)  # fmt: skip
    return JSONResponse({"items": items, "total": total, "limit": limit, "offset": offset})


@api("read")
async def get_server(request: Request, demo: Demo, actor: str) -> Response:
    try:
        server_id = uuid.UUID(request.path_params["server_id"])
    except ValueError:
        return JSONResponse({"detail": "Server not found"}, status_code=404)
    async with demo.connection() as conn:
        server = await db.get_server(conn, server_id)
    if server is None:
        return JSONResponse({"detail": "Server not found"}, status_code=404)
    return JSONResponse(server)


@api("policy")
async def evaluate_policy(request: Request, demo: Demo, actor: str) -> Response:
    try:
        req = PolicyRequest.parse(await _json_body(request))
    except PolicyInputError as exc:
        raise ValidationError(str(exc)) from None
    key = req.cache_key()
    result, hit = await _cached_decision(demo, key)
    if result is None:
        result = evaluate(req, await _policy_facts(demo, req))
        with contextlib.suppress(Exception):  # no cache is slower, not wrong
            await demo.redis.set(key, json.dumps(result), ex=max(1, demo.settings.policy_cache_ttl_s))
    demo.audit.record(
        "policy_decision", actor, req.server_id, action=req.action, tool=req.tool,
        decision=result["decision"], reason=result["reason"], details={"cache_hit": hit},
    )  # fmt: skip
    return JSONResponse({**result, "cache_hit": hit})


async def _cached_decision(demo: Demo, key: str) -> tuple[dict[str, Any] | None, bool]:
    try:
        raw = await demo.redis.get(key)
    except Exception as exc:
        log.warning("policy cache read failed: %s", exc)
        return None, False
    return (json.loads(raw), True) if raw else (None, False)


async def _policy_facts(demo: Demo, req: PolicyRequest) -> dict[str, Any] | None:
    if not req.needs_server:
        return None
    try:
        server_id = uuid.UUID(req.server_id)
    except ValueError:
        return None  # not a server id we could know: the policy denies it as unknown
    async with demo.connection() as conn:
        return await db.policy_facts(conn, server_id, req.tool)


@api("auth")
async def create_api_key(request: Request, demo: Demo, actor: str) -> Response:
    body = await _json_body(request)
    if not isinstance(body, dict):
        raise ValidationError("body must be a JSON object")
    name = body.get("name") or "api-key"
    scopes = body.get("scopes") or []
    rate_limit = body.get("rate_limit")
    environment = str(body.get("environment") or "test")
    if not isinstance(name, str) or not isinstance(scopes, list) or not isinstance(rate_limit, int | None):
        raise ValidationError("name must be a string, scopes a list and rate_limit an integer")
    key = f"sk_{environment[:16]}_{secrets.token_urlsafe(24)}"
    key_id = uuid.uuid4()
    async with demo.connection() as conn:
        row = await conn.fetchrow(
            "INSERT INTO api_keys (id, key_hash, prefix, name, description, scopes, rate_limit, environment) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING created_at",
            key_id, hash_key(key), key[:12], name, str(body.get("description") or ""), scopes, rate_limit,
            environment,
        )  # fmt: skip
    return JSONResponse(
        {"id": str(key_id), "key": key, "prefix": key[:12], "name": name, "scopes": scopes,
         "rate_limit": rate_limit, "environment": environment, "created_at": row["created_at"].isoformat()},
        status_code=201,
    )  # fmt: skip


def _int_param(raw: str | None, default: int, name: str) -> int:
    if raw in (None, ""):
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValidationError(f"{name} must be an integer") from None


async def _validation_error(request: Request, exc: Exception) -> Response:
    return JSONResponse({"detail": str(exc)}, status_code=422)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)


async def _server_error(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse({"detail": "Internal server error"}, status_code=500)


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    pool = await db.connect_pool(settings.database_url, settings.db_pool_size, settings.connect_timeout_s)
    pool_cls = aioredis.BlockingConnectionPool
    redis = aioredis.Redis(
        connection_pool=pool_cls.from_url(settings.redis_url, max_connections=settings.redis_pool_size)
    )
    try:
        async with pool.acquire() as conn:
            extras = await db.migrate(conn)
        audit = AuditWriter(pool)
        audit.start()
        app.state.demo = Demo(settings, pool, redis, audit, extras)
        yield
        await audit.stop()
    finally:
        await redis.aclose()
        await pool.close()


def create_app(settings: Settings | None = None) -> Starlette:
    servers = [Route(p, list_servers, methods=["GET"]) for p in ("/api/v1/servers/", "/api/v1/servers")]
    servers += [Route(p, register_server, methods=["POST"]) for p in ("/api/v1/servers/", "/api/v1/servers")]
    routes = [
        *health.routes(),
        *servers,
        Route("/api/v1/servers/{server_id}", get_server, methods=["GET"]),
        Route("/api/v1/policy/evaluate", evaluate_policy, methods=["POST"]),
        Route("/api/auth/api-keys", create_api_key, methods=["POST"]),
    ]
    handlers = {ValidationError: _validation_error, HTTPException: _http_error, Exception: _server_error}
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers=handlers)
    app.state.settings = settings or Settings.from_env()
    return app
