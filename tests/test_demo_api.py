"""The demo API speaking SARK's interface, on real PostgreSQL (two databases), Redis and the policy stand-in."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from conftest import free_port
from stack_helpers import CSRF, HAVE_SERVICES, SECRET, SKIP_REASON, headers, local_stack, token, wait_http

pytestmark = [pytest.mark.integration, pytest.mark.skipif(not HAVE_SERVICES, reason=SKIP_REASON)]
OPA = f"{sys.executable} -m ci_perf.demo.opa --host {{host}} --port {{port}}"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """PostgreSQL + Redis from the local backend, with the policy stand-in as its "api" process."""
    with local_stack(tmp_path_factory.mktemp("logs"), sark=False, api_command=OPA) as (local, info):
        db, redis = urlsplit(info.database_url), urlsplit(info.redis_url)
        socket_dir = next(str(p) for p in local.temp_dirs if "-pg-" in p.name)
        asyncio.run(_sql(socket_dir, "postgres", "CREATE DATABASE sark_audit OWNER sark", port=db.port))
        env = {"POSTGRES_HOST": "127.0.0.1", "POSTGRES_PORT": str(db.port), "POSTGRES_USER": "sark",
               "POSTGRES_PASSWORD": "sark", "POSTGRES_DB": "sark", "TIMESCALE_HOST": "127.0.0.1",
               "TIMESCALE_PORT": str(db.port), "TIMESCALE_USER": "sark", "TIMESCALE_PASSWORD": "sark",
               "TIMESCALE_DB": "sark_audit", "REDIS_HOST": "127.0.0.1", "REDIS_PORT": str(redis.port),
               "SECRET_KEY": SECRET, "JWT_SECRET_KEY": SECRET, "OPA_URL": info.base_url,
               "RATE_LIMIT_ENABLED": "false", "_SOCKET": socket_dir, "_PORT": str(db.port)}  # fmt: skip
        yield env


async def _sql(host: str, database: str, sql: str, *args: Any, port: int | str = 5432) -> list[Any]:
    import asyncpg

    conn = await asyncpg.connect(host=host, port=int(port), user="postgres", database=database)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


@contextmanager
def demo(stack: dict[str, str], log: Path, **env: str) -> Iterator[str]:
    port = free_port()
    full = {**os.environ, **{k: v for k, v in stack.items() if not k.startswith("_")}, **env}
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "ci_perf.demo", "--port", str(port)], env=full,
                                stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        wait_http(f"http://127.0.0.1:{port}/health/", proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(15)


@pytest.fixture(scope="module")
def url(stack: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with demo(stack, tmp_path_factory.mktemp("demo") / "api.log") as base:
        yield base


def register(url: str, **fields: Any) -> requests.Response:
    body = {"name": f"srv-{uuid.uuid4().hex[:8]}", "transport": "http", "endpoint": "http://127.0.0.1:1/mcp",
            "tools": [{"name": "read_file", "sensitivity_level": "low"},
                      {"name": "deploy", "sensitivity_level": "critical"}], **fields}  # fmt: skip
    return requests.post(url + "/api/v1/servers/", json=body, headers=headers(write=True), timeout=5)


def evaluate(url: str, hdrs: dict[str, str] | None = None, **body: Any) -> requests.Response:
    body.setdefault("user_id", str(uuid.uuid4()))
    return requests.post(url + "/api/v1/policy/evaluate", json=body, headers=hdrs or headers(write=True), timeout=5)


def test_jwt_accepted_and_rejected(url: str) -> None:
    assert requests.get(url + "/api/v1/servers/", headers=headers(), timeout=5).status_code == 200
    bad = [
        {},
        {"X-API-Key": "anything"},
        {"Authorization": f"Bearer {token(secret='w' * 40)}"},
        {"Authorization": f"Bearer {token(exp=int(time.time()) - 5)}"},
        {"Authorization": f"Bearer {token(type='refresh')}"},
        {"Authorization": f"Bearer {token(sub='not-a-uuid')}"},
        {"Authorization": f"Bearer {token(email=None)}"},
    ]
    for h in bad:
        r = requests.get(url + "/api/v1/servers/", headers=h, timeout=5)
        assert r.status_code == 401 and r.json()["detail"], (h, r.text)


def test_token_valid_only_for_jwt_secret_key_is_refused(stack: dict[str, str], tmp_path: Path) -> None:
    with demo(stack, tmp_path / "api.log", JWT_SECRET_KEY="j" * 40) as base:
        h = {"Authorization": f"Bearer {token(secret='j' * 40)}"}
        assert requests.get(base + "/api/v1/servers/", headers=h, timeout=5).status_code == 401


def test_csrf_on_writes(url: str) -> None:
    auth = headers()
    for extra in ({}, {"X-CSRF-Token": "short", "Cookie": "csrf_token=short"},
                  {"X-CSRF-Token": CSRF, "Cookie": "csrf_token=" + "d" * 40}, {"X-CSRF-Token": CSRF}):  # fmt: skip
        r = evaluate(url, {**auth, **extra}, action="server:read")
        assert r.status_code == 403, (extra, r.text)
    assert evaluate(url, action="server:read").status_code == 200


def test_policy_answers_from_the_stand_in(url: str) -> None:
    sid = register(url).json()["server_id"]
    cases = [
        (dict(action="tool:invoke", tool="read_file", server_id=sid, parameters={"path": "/a"}), "allow"),
        (dict(action="tool:invoke", tool="delete_records"), "deny"),
        (dict(action="tool:invoke", tool="query", parameters={"api_token": "x"}), "deny"),
        (dict(action="tool:invoke", tool="deploy", server_id=sid), "deny"),  # a critical tool
        (dict(action="server:read"), "allow"),
        (dict(action="server:list"), "allow"),
        (dict(action="server:delete"), "deny"),
        (dict(action="launch:rockets"), "deny"),
    ]
    for body, expected in cases:
        r = evaluate(url, **body)
        assert r.status_code == 200 and r.json()["decision"] == expected, (body, r.text)
        assert r.json()["audit_id"], r.text  # the stand-in's answer, not a local rule
    user = str(uuid.uuid4())
    first = evaluate(url, user_id=user, action="tool:invoke", tool="read_file").json()
    again = evaluate(url, user_id=user, action="tool:invoke", tool="read_file").json()
    assert (first["cache_hit"], again["cache_hit"]) == (False, True)
    admin = headers(write=True, role="admin")
    assert evaluate(url, admin, action="server:delete").json()["decision"] == "allow"
    viewer = headers(write=True, role="viewer")
    assert evaluate(url, viewer, action="server:read").status_code == 403
    assert evaluate(url, action="x", user_id="nope").status_code == 422
    assert register(url, sensitivity_level="critical").status_code == 403


def test_fail_closed_without_the_policy_service(stack: dict[str, str], tmp_path: Path) -> None:
    with demo(stack, tmp_path / "api.log", OPA_URL=f"http://127.0.0.1:{free_port()}") as base:
        r = evaluate(base, action="server:read")
        assert r.status_code == 200 and r.json()["decision"] == "deny"
        assert r.json()["reason"].startswith("Policy evaluation error: ")
        assert register(base).status_code == 500
        assert requests.get(base + "/health/ready", timeout=5).status_code == 503
        deps = requests.get(base + "/health/detailed", timeout=5).json()["dependencies"]
        assert deps["opa"]["healthy"] is False and deps["postgres"]["healthy"] is True


def test_cursor_paging_and_filters(url: str, stack: dict[str, str]) -> None:
    tag = uuid.uuid4().hex[:10]
    team, owner = str(uuid.uuid4()), str(uuid.uuid4())
    ids = []
    for i in range(30):
        meta = {"tags": [tag, "even" if i % 2 == 0 else "odd"] + (["three"] if i % 3 == 0 else []),
                "team_id": team if i < 5 else None, "owner_id": owner if i >= 25 else None}  # fmt: skip
        r = register(url, name=f"page-{tag}-{i}", sensitivity_level=("low", "high")[i % 2], metadata=meta,
                     tools=[])  # fmt: skip
        assert r.status_code == 201, r.text
        ids.append(r.json()["server_id"])

    def page(**params: Any) -> dict[str, Any]:
        r = requests.get(url + "/api/v1/servers/", params=params, headers=headers(), timeout=5)
        assert r.status_code == 200, r.text
        return dict(r.json())

    for order in ("asc", "desc"):
        seen: list[str] = []
        cursor = None
        while True:
            p = page(
                search=f"page-{tag}", limit=7, sort_order=order, offset=14, **({"cursor": cursor} if cursor else {})
            )
            seen += [item["id"] for item in p["items"]]
            assert len(p["items"]) <= 7
            if not p["has_more"]:
                assert p["next_cursor"] is None
                break
            cursor = p["next_cursor"]
        assert seen == (ids if order == "asc" else ids[::-1])
    assert page(tags=tag, include_total="true", limit=1)["total"] == 30
    assert page(tags=tag)["total"] is None
    assert page(tags=f"{tag},three", match_all_tags="true", include_total="true")["total"] == 10
    assert page(tags="three,even", match_all_tags="true", include_total="true", search=tag)["total"] == 5
    assert page(tags="three,even", include_total="true", search=f"page-{tag}")["total"] == 20
    assert page(search=tag, sensitivity="high", include_total="true")["total"] == 15
    assert page(search=tag, sensitivity="high,low", include_total="true")["total"] == 30
    assert page(team_id=team, include_total="true")["total"] == 5
    assert page(owner_id=owner, include_total="true")["total"] == 5
    asyncio.run(_sql(stack["_SOCKET"], "sark", "UPDATE mcp_servers SET status = 'inactive' WHERE id = $1",
                     uuid.UUID(ids[0]), port=stack["_PORT"]))  # fmt: skip
    assert [s["id"] for s in page(search=tag, status="inactive")["items"]] == [ids[0]]
    assert page(search=tag, status="active,inactive", include_total="true")["total"] == 30
    for bad in ({"limit": 201}, {"limit": 0}, {"sort_order": "up"}, {"cursor": "zzz"}, {"sensitivity": "x"}):
        assert requests.get(url + "/api/v1/servers/", params=bad, headers=headers(), timeout=5).status_code == 422


def test_read_back_and_audit_row_in_the_second_database(url: str, stack: dict[str, str]) -> None:
    r = register(url, metadata={"tags": ["a"]}, description="d")
    assert r.status_code == 201 and set(r.json()) == {"server_id", "status", "consul_id"}
    sid = r.json()["server_id"]
    server = requests.get(f"{url}/api/v1/servers/{sid}", headers=headers(), timeout=5).json()
    assert server["id"] == sid and [t["name"] for t in server["tools"]] == ["deploy", "read_file"]
    assert server["metadata"] == {"tags": ["a"]}
    assert requests.get(f"{url}/api/v1/servers/{uuid.uuid4()}", headers=headers(), timeout=5).status_code == 404
    query = "SELECT event_type FROM audit_events WHERE server_id = $1"
    deadline = time.monotonic() + 5
    while not (rows := asyncio.run(_sql(stack["_SOCKET"], "sark_audit", query, uuid.UUID(sid), port=stack["_PORT"]))):
        assert time.monotonic() < deadline, "no audit row in sark_audit"
        time.sleep(0.1)
    assert [r["event_type"] for r in rows] == ["server_registered"]
    main_tables = asyncio.run(
        _sql(stack["_SOCKET"], "sark", "SELECT to_regclass('audit_events') AS t", port=stack["_PORT"])
    )
    assert main_tables[0]["t"] is None  # not in the main database


def test_health_endpoints(url: str) -> None:
    assert requests.get(url + "/health/", timeout=5).json()["status"] == "healthy"
    ready = requests.get(url + "/health/ready", timeout=5)
    assert ready.status_code == 200 and ready.json()["ready"] is True
    d = requests.get(url + "/health/detailed", timeout=5).json()
    assert d["status"] == "healthy" and set(d["dependencies"]) == {"postgres", "timescale", "redis", "opa"}
    assert all(dep["healthy"] for dep in d["dependencies"].values())


def test_refuses_to_start_without_the_audit_database(stack: dict[str, str]) -> None:
    env = {**os.environ, **{k: v for k, v in stack.items() if not k.startswith("_")},
           "TIMESCALE_DB": "no_such_db", "CI_PERF_DEMO_CONNECT_TIMEOUT": "3"}  # fmt: skip
    done = subprocess.run([sys.executable, "-m", "ci_perf.demo", "--port", str(free_port())], env=env,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 3
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "TIMESCALE database no_such_db" in lines[0], done.stderr


def test_api_key_mode_and_rate_limit(stack: dict[str, str], tmp_path: Path) -> None:
    env = {"CI_PERF_DEMO_AUTH": "api-key", "SARK_API_KEY": "rl-key", "RATE_LIMIT_ENABLED": "true",
           "RATE_LIMIT_PER_MINUTE": "5"}  # fmt: skip
    with demo(stack, tmp_path / "api.log", **env) as base:
        assert requests.get(base + "/api/v1/servers/", timeout=5).status_code == 401
        codes = [requests.get(base + "/api/v1/servers/?limit=1", headers={"X-API-Key": "rl-key"}, timeout=5)
                 for _ in range(12)]  # fmt: skip
    assert [r.status_code for r in codes].count(200) >= 5
    limited = [r for r in codes if r.status_code == 429]
    assert limited and 1 <= int(limited[0].headers["Retry-After"]) <= 60


def test_error_rate_and_latency_knobs(stack: dict[str, str], tmp_path: Path) -> None:
    with demo(stack, tmp_path / "api.log", CI_PERF_DEMO_ERROR_RATE="1", CI_PERF_DEMO_LATENCY_MS="policy=60") as b:
        r = requests.get(b + "/api/v1/servers/", headers=headers(), timeout=5)
        assert r.status_code == 500 and "injected" in r.json()["detail"]
        start = time.perf_counter()
        evaluate(b, action="server:read")
        assert time.perf_counter() - start >= 0.06
        assert requests.get(b + "/health/", timeout=5).status_code == 200


def test_bad_knob_fails_fast_with_one_line() -> None:
    done = subprocess.run([sys.executable, "-m", "ci_perf.demo", "--port", "1"], capture_output=True, text=True,
                          env={"CI_PERF_DEMO_LATENCY_MS": "warp=9", "SECRET_KEY": SECRET, "PATH": "/usr/bin:/bin",
                               "PYTHONPATH": os.environ.get("PYTHONPATH", "")}, timeout=60)  # fmt: skip
    assert done.returncode == 2 and "unknown group 'warp'" in done.stderr
