"""The bundled SARK-compatible demo API: ASGI (starlette) on uvicorn, on PostgreSQL and Redis.

Run: `python -m ci_perf.demo --host 127.0.0.1 --port 8000 [--workers N]`, or
`python -m ci_perf.demo migrate` to create the schema only. Configuration comes from the environment:
DATABASE_URL, REDIS_URL, SARK_API_KEY (empty: auth off), RATE_LIMIT_PER_MINUTE (0: off), and the
fault knobs CI_PERF_DEMO_LATENCY_MS ("policy=30,registration=5,read=0,auth=0,all=0"),
CI_PERF_DEMO_ERROR_RATE (fraction answering 500), CI_PERF_DEMO_LEAK_KB_PER_REQUEST (default 0).
Tuning: CI_PERF_DEMO_DB_POOL, CI_PERF_DEMO_REDIS_POOL, CI_PERF_DEMO_POLICY_CACHE_TTL,
CI_PERF_DEMO_CONNECT_TIMEOUT (see settings.py).
"""
