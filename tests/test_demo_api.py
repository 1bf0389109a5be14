"""The demo API on real PostgreSQL and Redis (brought up by the local backend): every endpoint."""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests

from ci_perf.services.base import StackInfo
from conftest import free_port
from stack_helpers import HAVE_SERVICES, SKIP_REASON, demo_api, local_stack

pytestmark = [pytest.mark.integration, pytest.mark.skipif(not HAVE_SERVICES, reason=SKIP_REASON)]
KEY = "bootstrap-key"
H = {"X-API-Key": KEY}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackInfo]:
    with local_stack(tmp_path_factory.mktemp("logs"), api_key=KEY) as (_, info):
        yield info


@pytest.fixture(scope="module")
def url(stack: StackInfo) -> str:
    return stack.base_url


def register(url: str, **fields: Any) -> str:
    body = {"name": f"srv-{uuid.uuid4().hex[:8]}", "transport": "http", "endpoint": "http://127.0.0.1:1/mcp",
            "version": "1.0.0", "description": "a test server", "capabilities": ["tools"],
            "tools": [{"name": "read_file", "description": "reads", "parameters": {"type": "object"},
                       "sensitivity_level": "low"},
                      {"name": "deploy", "sensitivity_level": "critical"}],
            "metadata": {"team": "perf"}, **fields}  # fmt: skip
    r = requests.post(url + "/api/v1/servers/", json=body, headers=H, timeout=5)
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "registered"
    return str(r.json()["server_id"])


def evaluate(url: str, headers: dict[str, str] = H, **body: Any) -> requests.Response:
    return requests.post(url + "/api/v1/policy/evaluate", json=body, headers=headers, timeout=5)


def test_health_endpoints(url: str) -> None:
    assert requests.get(url + "/health/", timeout=5).json() == {"status": "healthy"}
    assert requests.get(url + "/health/ready", timeout=5).status_code == 200
    d = requests.get(url + "/health/detailed", timeout=5).json()
    assert d["status"] == "healthy"
    assert d["database"]["version"].startswith("15") and d["database"]["timescaledb"] is False
    assert d["redis"]["version"] and d["redis"]["latency_ms"] >= 0
    assert d["audit_storage"] == "table"  # plain PostgreSQL: no hypertable
    assert "pg_trgm" in d["schema_extras"] and "timescaledb" not in d["schema_extras"]


def test_auth(url: str) -> None:
    for headers in ({}, {"X-API-Key": "wrong"}):
        r = requests.get(url + "/api/v1/servers/", headers=headers, timeout=5)
        assert (r.status_code, r.json()) == (401, {"detail": "Missing or invalid API key"})
    assert requests.post(url + "/api/auth/api-keys", json={"name": "x"}, timeout=5).status_code == 401
    r = requests.post(url + "/api/auth/api-keys", json={"name": "load", "scopes": ["server:read"]}, headers=H,
                      timeout=5)  # fmt: skip
    assert r.status_code == 201 and r.json()["key"].startswith("sk_test_")
    created = {"X-API-Key": r.json()["key"]}
    assert requests.get(url + "/api/v1/servers/", headers=created, timeout=5).status_code == 200


def test_register_and_read_back(url: str) -> None:
    sid = register(url, sensitivity_level="high")
    server = requests.get(f"{url}/api/v1/servers/{sid}", headers=H, timeout=5).json()
    assert server["id"] == sid and server["sensitivity_level"] == "high" and server["status"] == "active"
    assert [t["name"] for t in server["tools"]] == ["deploy", "read_file"]
    assert server["tools"][1]["parameters"] == {"type": "object"} and server["metadata"] == {"team": "perf"}
    for missing in (str(uuid.uuid4()), "not-a-uuid"):
        r = requests.get(f"{url}/api/v1/servers/{missing}", headers=H, timeout=5)
        assert (r.status_code, r.json()) == (404, {"detail": "Server not found"})


def test_register_validation(url: str) -> None:
    for body in ({"transport": "http"}, {"name": "x", "endpoint": "e", "sensitivity_level": "extreme"}):
        r = requests.post(url + "/api/v1/servers/", json=body, headers=H, timeout=5)
        assert r.status_code == 422 and r.json()["detail"]
    r = requests.post(url + "/api/v1/servers/", data="{not json", headers=H, timeout=5)
    assert r.status_code == 422


def test_list_search_and_filters(url: str) -> None:
    tag = uuid.uuid4().hex[:10]
    ids = [register(url, name=f"find-{tag}-{i}", sensitivity_level=level)
           for i, level in enumerate(["low", "critical", "critical"])]  # fmt: skip
    register(url, name="other", description=f"mentions {tag} in the description")

    def listing(**params: Any) -> dict[str, Any]:
        r = requests.get(url + "/api/v1/servers/", params=params, headers=H, timeout=5)
        assert r.status_code == 200, r.text
        return dict(r.json())

    assert listing(search=tag)["total"] == 4
    crit = listing(search=f"find-{tag}", sensitivity_level="critical")
    assert crit["total"] == 2 and {s["id"] for s in crit["items"]} == set(ids[1:])
    page = listing(search=tag, limit=2, offset=1)
    assert (page["total"], page["limit"], page["offset"], len(page["items"])) == (4, 2, 1, 2)
    assert listing(search=tag, status="inactive")["total"] == 0
    assert listing(search="%")["total"] == 0  # LIKE wildcards are matched literally
    assert requests.get(url + "/api/v1/servers/?limit=x", headers=H, timeout=5).status_code == 422


def test_policy_decisions_and_cache(url: str) -> None:
    sid = register(url)
    first = evaluate(url, action="tool:invoke", tool="read_file", server_id=sid, parameters={"path": "/a"})
    assert first.status_code == 200
    assert first.json()["decision"] == "allow" and first.json()["cache_hit"] is False
    again = evaluate(url, action="tool:invoke", tool="read_file", server_id=sid, parameters={"path": "/a"}).json()
    assert again["cache_hit"] is True and again["decision"] == "allow"
    assert evaluate(url, action="tool:invoke", tool="deploy", server_id=sid).json()["decision"] == "deny"
    assert evaluate(url, action="tool:invoke", tool="delete_records", server_id=sid).json()["decision"] == "deny"
    unknown = evaluate(url, action="tool:invoke", tool="x", server_id=str(uuid.uuid4())).json()
    assert unknown["reason"] == "unknown server"
    assert evaluate(url, action="server:update", server_id=None).json()["decision"] == "deny"
    assert evaluate(url, tool="x").status_code == 422


def test_audit_rows_are_written(stack: StackInfo) -> None:
    sid = register(stack.base_url)
    evaluate(stack.base_url, action="tool:invoke", tool="read_file", server_id=sid)
    evaluate(stack.base_url, action="tool:invoke", tool="read_file", server_id=sid)

    async def count() -> list[Any]:
        import asyncpg

        conn = await asyncpg.connect(stack.database_url)
        try:
            return list(
                await conn.fetch(
                    "SELECT event_type, decision FROM audit_events WHERE server_id = $1 ORDER BY ts", uuid.UUID(sid)
                )
            )
        finally:
            await conn.close()

    deadline = time.monotonic() + 5
    while len(rows := asyncio.run(count())) < 3 and time.monotonic() < deadline:
        time.sleep(0.1)  # the audit writer flushes in batches, every 0.2 s
    assert [tuple(r) for r in rows] == [("server_registered", ""), ("policy_decision", "allow"),
                                        ("policy_decision", "allow")]  # fmt: skip


def test_rate_limit_answers_429(stack: StackInfo, tmp_path: Path) -> None:
    with demo_api(stack, tmp_path / "api.log", SARK_API_KEY="rl-key", RATE_LIMIT_PER_MINUTE="5") as (url, _):
        codes = [requests.get(url + "/api/v1/servers/?limit=1", headers={"X-API-Key": "rl-key"}, timeout=5)
                 for _ in range(12)]  # fmt: skip
    # 12 requests: even if a minute boundary splits them, one window sees more than 5.
    assert [r.status_code for r in codes].count(200) >= 5
    limited = [r for r in codes if r.status_code == 429]
    assert limited and limited[0].json() == {"detail": "Rate limit exceeded"}
    assert 1 <= int(limited[0].headers["Retry-After"]) <= 60


def _median_ms(url: str, n: int = 15) -> float:
    samples = []
    with requests.Session() as s:
        for i in range(n):
            start = time.perf_counter()
            r = s.post(url + "/api/v1/policy/evaluate", json={"action": "server:read", "tool": f"t{i % 3}"},
                       headers=H, timeout=5)  # fmt: skip
            samples.append((time.perf_counter() - start) * 1000)
            assert r.status_code == 200
    return statistics.median(samples)


def test_latency_knob_slows_policy_evaluation(stack: StackInfo, tmp_path: Path) -> None:
    base = _median_ms(stack.base_url)
    with demo_api(stack, tmp_path / "api.log", SARK_API_KEY=KEY, CI_PERF_DEMO_LATENCY_MS="policy=30") as (slow, _):
        slowed = _median_ms(slow)
        read_ms = requests.get(slow + "/api/v1/servers/?limit=1", headers=H, timeout=5).elapsed.total_seconds() * 1000
    assert 25 <= slowed - base <= 100, (base, slowed)
    assert read_ms < slowed - 15, (read_ms, slowed)  # other endpoint groups are not slowed


def test_error_rate_knob(stack: StackInfo, tmp_path: Path) -> None:
    with demo_api(stack, tmp_path / "api.log", CI_PERF_DEMO_ERROR_RATE="1") as (url, _):
        r = requests.get(url + "/api/v1/servers/", timeout=5)  # auth off: no SARK_API_KEY
        assert r.status_code == 500 and "injected" in r.json()["detail"]
        assert requests.get(url + "/health/", timeout=5).status_code == 200


def test_leak_knob_grows_memory(stack: StackInfo, tmp_path: Path) -> None:
    with demo_api(stack, tmp_path / "api.log", CI_PERF_DEMO_LEAK_KB_PER_REQUEST="1024") as (url, pid):
        before = psutil.Process(pid).memory_info().rss
        with requests.Session() as s:
            for _ in range(40):
                assert s.get(url + "/api/v1/servers/?limit=1", timeout=5).status_code == 200
        grown = psutil.Process(pid).memory_info().rss - before
    assert grown > 30 * 1024 * 1024


def test_redis_down_degrades_but_serves(stack: StackInfo, tmp_path: Path) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    with demo_api(stack, tmp_path / "api.log", REDIS_URL=dead, RATE_LIMIT_PER_MINUTE="1") as (url, _):
        assert requests.get(url + "/health/", timeout=5).status_code == 200
        ready = requests.get(url + "/health/ready", timeout=10)
        assert ready.status_code == 503 and ready.json()["redis"] == "unhealthy"
        detailed = requests.get(url + "/health/detailed", timeout=10).json()
        assert detailed["database"]["status"] == "healthy" and "error" in detailed["redis"]
        for _ in range(2):  # no cache and no rate limit without Redis, but answers all the same
            r = evaluate(url, action="server:read")
            assert r.status_code == 200 and r.json()["cache_hit"] is False


def test_migrate_command_is_idempotent(stack: StackInfo) -> None:
    env = {"DATABASE_URL": stack.database_url, "PATH": "/usr/bin:/bin"}
    for _ in range(2):
        done = subprocess.run([sys.executable, "-m", "ci_perf.demo", "migrate"], env=env, capture_output=True,
                              text=True, timeout=60)  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert "schema ready" in done.stdout


def test_bad_knob_fails_fast_with_one_line() -> None:
    done = subprocess.run([sys.executable, "-m", "ci_perf.demo", "--port", "1"], capture_output=True, text=True,
                          env={"CI_PERF_DEMO_LATENCY_MS": "warp=9", "PATH": "/usr/bin:/bin"}, timeout=60)  # fmt: skip
    assert done.returncode == 2 and "unknown group 'warp'" in done.stderr
