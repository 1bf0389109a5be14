"""What every /api/* request passes through: auth (JWT + CSRF, or the older API-key mode), the Redis
rate limit and the fault knobs."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import hmac
import logging
import math
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import asyncpg
import redis.asyncio as aioredis
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ci_perf.demo.audit import AuditWriter
from ci_perf.demo.auth import AuthError, TokenVerifier, anonymous, check_csrf, check_role, unauthorized
from ci_perf.demo.opa_client import OpaClient
from ci_perf.demo.policy import Caller
from ci_perf.demo.settings import Settings

log = logging.getLogger("ci_perf.demo")

RATE_WINDOW_S = 60


@dataclass
class Demo:
    """The running app's state: settings, pools, the audit writer, the policy client and a few caches."""

    settings: Settings
    pool: asyncpg.Pool  # POSTGRES_*: servers, tools, API keys
    audit_pool: asyncpg.Pool  # TIMESCALE_*: audit events
    redis: aioredis.Redis
    audit: AuditWriter
    opa: OpaClient
    extras: list[str] = field(default_factory=list)  # optional schema parts that could be set up
    known_keys: dict[str, str] = field(default_factory=dict)  # key hash -> key id (keys are never revoked)
    leak: list[bytes] = field(default_factory=list)  # CI_PERF_DEMO_LEAK_KB_PER_REQUEST keeps memory here

    def __post_init__(self) -> None:
        self.verifier = TokenVerifier(self.settings.secret_key)

    async def caller(self, request: Request) -> Caller:
        """Who is calling; raises AuthError (401/403) when they may not."""
        mode = self.settings.auth_mode
        if mode == "jwt":
            caller = self.verifier.caller(request.headers.get("authorization", ""))
            if request.method != "GET":
                check_csrf(request)
        else:
            caller = anonymous(await self._api_key_actor(request))
        check_role(caller, request.method)
        return caller

    async def _api_key_actor(self, request: Request) -> str:
        given = request.headers.get("x-api-key", "")
        if self.settings.auth_mode == "none" or not self.settings.api_key:
            return "anon:" + (given or (request.client.host if request.client else "-"))
        if not given:
            raise unauthorized("Missing or invalid API key")
        if hmac.compare_digest(given.encode(), self.settings.api_key.encode()):
            return "bootstrap"
        digest = hash_key(given)
        if digest in self.known_keys:
            return self.known_keys[digest]
        async with self.connection() as conn:
            key_id = await conn.fetchval("SELECT id FROM api_keys WHERE key_hash = $1", digest)
        if key_id is None:
            raise unauthorized("Missing or invalid API key")
        self.known_keys[digest] = str(key_id)
        return str(key_id)

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection; the "db" latency knob sleeps on it first, holding it (see settings)."""
        async with self.pool.acquire() as conn:
            if self.settings.db_latency_s:
                await conn.execute("SELECT pg_sleep($1)", self.settings.db_latency_s)
            yield conn

    async def retry_after(self, who: str) -> int:
        """Seconds until the caller may retry, or 0 when under the limit (fixed one-minute windows)."""
        limit = self.settings.rate_limit_per_minute
        if limit <= 0:
            return 0
        now = time.time()
        window = int(now // RATE_WINDOW_S)
        key = f"ratelimit:{who}:{window}"
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.incr(key)
                pipe.expire(key, RATE_WINDOW_S + 5)
                count, _ = await pipe.execute()
        except Exception as exc:  # Redis away: let traffic through rather than fail every request
            log.warning("rate limit check failed: %s", exc)
            return 0
        if int(count) <= limit:
            return 0
        return max(1, math.ceil((window + 1) * RATE_WINDOW_S - now))

    async def inject_faults(self, group: str) -> bool:
        """Apply the latency and leak knobs; True when this request must answer 500."""
        s = self.settings
        if s.leak_kb_per_request:
            self.leak.append(b"L" * (s.leak_kb_per_request * 1024))  # touched pages: really resident
        delay = s.added_latency_s(group)
        if delay:
            await asyncio.sleep(delay)
        return s.error_rate > 0 and random.random() < s.error_rate


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


Endpoint = Callable[[Request], Awaitable[Response]]
Handler = Callable[[Request, Demo, Caller], Awaitable[Response]]


def api(group: str) -> Callable[[Handler], Endpoint]:
    """Wrap a handler with auth, rate limit and faults; `group` picks the latency knob."""

    def deco(handler: Handler) -> Endpoint:
        @functools.wraps(handler)
        async def endpoint(request: Request) -> Response:
            demo: Demo = request.app.state.demo
            try:
                caller = await demo.caller(request)
            except AuthError as exc:
                return exc.response()
            wait = await demo.retry_after(caller.user_id)
            if wait:
                return JSONResponse(
                    {"detail": "Rate limit exceeded"}, status_code=429, headers={"Retry-After": str(wait)}
                )
            if await demo.inject_faults(group):
                return JSONResponse({"detail": "injected failure (CI_PERF_DEMO_ERROR_RATE)"}, status_code=500)
            return await handler(request, demo, caller)

        return endpoint

    return deco
