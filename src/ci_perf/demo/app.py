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
from ci_perf.demo.opa_client import OpaClient, PolicyServiceError
from ci_perf.demo.paging import ListQuery, encode_cursor
from ci_perf.demo.policy import (
    Caller,
    PolicyInputError,
    PolicyRequest,
    fail_closed,
    read_decision,
    registration_input,
)
from ci_perf.demo.runtime import Demo, api, hash_key, log
from ci_perf.demo.settings import Settings
from ci_perf.demo.validation import ValidationError, server_payload

REGISTRATION_FAILED = {"detail": "Server registration failed"}


async def _json_body(request: Request) -> Any:
    try:
        return await request.json()
    except ValueError:
        raise ValidationError("body is not valid JSON") from None


async def ask_policy(demo: Demo, doc: dict[str, Any]) -> dict[str, Any]:
    """The policy service's decision for one input document; raises PolicyServiceError when it cannot say."""
    answer = await demo.opa.post(demo.settings.opa_policy_path, {"input": doc})
    try:
        return read_decision(answer)
    except ValueError as exc:
        raise PolicyServiceError(str(exc)) from None


@api("registration")
async def register_server(request: Request, demo: Demo, caller: Caller) -> Response:
    server = server_payload(await _json_body(request))
    try:
        decision = await ask_policy(demo, registration_input(caller, server))
    except PolicyServiceError as exc:  # fail closed, as SARK does: no policy answer, no registration
        log.warning("server registration failed: %s", exc)
        return JSONResponse(REGISTRATION_FAILED, status_code=500)
    if decision["decision"] != "allow":
        return JSONResponse({"detail": "Server registration denied by policy"}, status_code=403)
    server_id = uuid.uuid4()
    try:
        async with demo.connection() as conn:
            await db.insert_server(conn, server_id, server)
    except Exception as exc:
        log.warning("server registration failed: %s: %s", type(exc).__name__, exc)
        return JSONResponse(REGISTRATION_FAILED, status_code=500)
    demo.audit.record(
        "server_registered", caller.user_id, str(server_id), action="server:register",
        decision="allow", reason=decision["reason"],
        details={"server_name": server["name"], "transport": server["transport"], "tool_count": len(server["tools"]),
                 "sensitivity_level": server["sensitivity_level"], "user_email": caller.email},
    )  # fmt: skip
    return JSONResponse({"server_id": str(server_id), "status": "registered", "consul_id": None}, status_code=201)


@api("read")
async def list_servers(request: Request, demo: Demo, caller: Caller) -> Response:
    query = ListQuery.parse(request.query_params)
    async with demo.connection() as conn:
        items, has_more, total = await db.list_servers(conn, query)
    last = items[-1] if items and has_more else None
    next_cursor = encode_cursor(last["created_at"], last["id"]) if last else None
    return JSONResponse({"items": items, "next_cursor": next_cursor, "has_more": has_more, "total": total})


@api("read")
async def get_server(request: Request, demo: Demo, caller: Caller) -> Response:
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
async def evaluate_policy(request: Request, demo: Demo, caller: Caller) -> Response:
    try:
        req = PolicyRequest.parse(await _json_body(request))
    except PolicyInputError as exc:
        raise ValidationError(str(exc)) from None
    key = req.cache_key(caller)
    result, hit = await _cached_decision(demo, key)
    if result is None:
        try:
            result = await ask_policy(demo, await _policy_input(demo, req, caller))
        except PolicyServiceError as exc:  # fail closed: a 200 deny, never cached
            log.warning("policy evaluation failed: %s", exc)
            result = fail_closed(str(exc))
        else:
            with contextlib.suppress(Exception):  # no cache is slower, not wrong
                await demo.redis.set(key, json.dumps(result), ex=max(1, demo.settings.policy_cache_ttl_s))
    demo.audit.record(
        "policy_decision", req.user_id, req.server_id, action=req.action, tool=req.tool,
        decision=result["decision"], reason=result["reason"], details={"cache_hit": hit, "role": caller.role},
    )  # fmt: skip
    return JSONResponse({**result, "cache_hit": hit})


async def _cached_decision(demo: Demo, key: str) -> tuple[dict[str, Any] | None, bool]:
    try:
        raw = await demo.redis.get(key)
    except Exception as exc:
        log.warning("policy cache read failed: %s", exc)
        return None, False
    return (json.loads(raw), True) if raw else (None, False)


async def _policy_input(demo: Demo, req: PolicyRequest, caller: Caller) -> dict[str, Any]:
    """The OPA input, with the tool's registered sensitivity when the server is known (SARK sends medium)."""
    facts = None
    if req.server_id:
        async with demo.connection() as conn:
            facts = await db.policy_facts(conn, uuid.UUID(req.server_id), req.tool)
    server = None if facts is None else {"id": req.server_id, "name": facts["name"], "status": facts["status"],
                                         "sensitivity_level": facts["server_level"]}  # fmt: skip
    tool_level = (facts or {}).get("tool_level") or "medium"
    return req.opa_input(caller, tool_level, server)


@api("auth")
async def create_api_key(request: Request, demo: Demo, caller: Caller) -> Response:
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


async def _validation_error(request: Request, exc: Exception) -> Response:
    return JSONResponse({"detail": str(exc)}, status_code=422)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)


async def _server_error(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse({"detail": "Internal server error"}, status_code=500)


async def open_databases(settings: Settings, main_size: int, audit_size: int) -> tuple[Any, Any, list[str]]:
    """Both pools, each schema created; raises StartupError naming the database that is missing."""
    pools = []
    try:
        for what, database, size in (("POSTGRES", settings.postgres, main_size),
                                     ("TIMESCALE", settings.timescale, audit_size)):  # fmt: skip
            try:
                pools.append(await db.connect_pool(database.dsn, size, settings.connect_timeout_s))
            except Exception as exc:
                why = f"{type(exc).__name__}: {exc}"
                raise StartupError(f"{what} database {database.label} is not usable: {why} "
                                   f"(check {what}_HOST/PORT/USER/PASSWORD/DB)") from None  # fmt: skip
        async with pools[0].acquire() as main, pools[1].acquire() as audit:
            extras = await db.migrate_both(main, audit)
        return pools[0], pools[1], extras
    except BaseException:
        for pool in pools:
            await pool.close()
        raise


class StartupError(Exception):
    """The API cannot serve (a database is missing or unreachable): one line, then a non-zero exit."""


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    pool, audit_pool, extras = await open_databases(settings, settings.db_pool_size, max(2, settings.db_pool_size // 2))
    redis = aioredis.Redis(connection_pool=aioredis.BlockingConnectionPool.from_url(
        settings.redis_url, max_connections=settings.redis_pool_size))  # fmt: skip
    opa = OpaClient(settings.opa_url, settings.opa_timeout_s)
    try:
        audit = AuditWriter(audit_pool)
        audit.start()
        app.state.demo = Demo(settings, pool, audit_pool, redis, audit, opa, extras)
        yield
        await audit.stop()
    finally:
        await opa.close()
        await redis.aclose()
        await pool.close()
        await audit_pool.close()


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
