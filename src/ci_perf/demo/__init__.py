"""The bundled SARK stand-in: ASGI (starlette) on uvicorn, on PostgreSQL, an audit database and Redis,
asking an OPA-compatible policy service for every policy decision.

Run: `python -m ci_perf.demo --host 127.0.0.1 --port 8000 [--workers N]` (both schemas are created at
start-up; `python -m ci_perf.demo migrate` creates them and exits). The policy stand-in:
`python -m ci_perf.demo.opa --host H --port P`.

Environment, under SARK's names (no DATABASE_URL or REDIS_URL):
- POSTGRES_HOST, POSTGRES_PORT, POSTGRES_USER, POSTGRES_PASSWORD, POSTGRES_DB (default localhost:5432,
  sark/sark, db sark): servers, tools, API keys.
- TIMESCALE_HOST, TIMESCALE_PORT, TIMESCALE_USER, TIMESCALE_PASSWORD, TIMESCALE_DB (default db
  sark_audit): audit events, a hypertable when TimescaleDB is installed there. Either database missing or
  unreachable after CI_PERF_DEMO_CONNECT_TIMEOUT: one log line naming it, exit 3.
- REDIS_HOST, REDIS_PORT, REDIS_PASSWORD (optional): decision cache and rate limit.
- SECRET_KEY: verifies the bearer JWTs (HS256; claims sub = UUID, email, role, type "access", exp);
  required in jwt mode. JWT_SECRET_KEY is read for parity with SARK; a token valid only for it gets 401.
- OPA_URL (default http://localhost:8181), OPA_POLICY_PATH (default /v1/data/mcp/allow),
  OPA_TIMEOUT_SECONDS (default 1.0), as SARK's OPA client.
- RATE_LIMIT_ENABLED (true/false) and RATE_LIMIT_PER_MINUTE (per caller; default 100 when enabled;
  unset RATE_LIMIT_ENABLED: the limit is on when RATE_LIMIT_PER_MINUTE > 0).
Demo-only knobs: CI_PERF_DEMO_AUTH = jwt (default) | api-key (X-API-Key = SARK_API_KEY; empty key:
anyone) | none; CI_PERF_DEMO_LATENCY_MS ("policy=30,registration=5,read=0,auth=0,all=0,db=0");
CI_PERF_DEMO_ERROR_RATE (fraction answering 500); CI_PERF_DEMO_LEAK_KB_PER_REQUEST (default 0);
tuning CI_PERF_DEMO_DB_POOL, CI_PERF_DEMO_REDIS_POOL, CI_PERF_DEMO_POLICY_CACHE_TTL,
CI_PERF_DEMO_CONNECT_TIMEOUT (see settings.py).
"""
