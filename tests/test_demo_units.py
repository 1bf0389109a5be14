"""The demo's pure parts: settings from SARK's env names, payload validation, policy input and rules."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

pytest.importorskip("starlette")

from ci_perf.demo.opa import answer
from ci_perf.demo.paging import ListQuery, decode_cursor, encode_cursor
from ci_perf.demo.policy import Caller, PolicyInputError, PolicyRequest, read_decision, registration_input
from ci_perf.demo.rules import decide
from ci_perf.demo.settings import Settings, parse_latency
from ci_perf.demo.validation import ValidationError, server_payload
from ci_perf.errors import ConfigError

BASE = {"SECRET_KEY": "k" * 32}


def test_latency_knob_parses_groups_and_bare_numbers() -> None:
    assert parse_latency("policy=30, registration=5,read=0") == {"policy": 30.0, "registration": 5.0, "read": 0.0}
    assert parse_latency("12") == {"all": 12.0}
    s = Settings(latency_ms={"policy": 30, "all": 2})
    assert s.added_latency_s("policy") == pytest.approx(0.032)
    with pytest.raises(ConfigError, match="CI_PERF_DEMO_LATENCY_MS"):
        parse_latency("nope=3")


def test_settings_from_sark_env_names() -> None:
    s = Settings.from_env({**BASE, "POSTGRES_HOST": "db", "POSTGRES_PORT": "6543", "POSTGRES_PASSWORD": "p@ss",
                           "TIMESCALE_HOST": "ts", "REDIS_HOST": "r", "REDIS_PORT": "7000", "REDIS_PASSWORD": "x",
                           "OPA_URL": "http://opa:8181/", "DATABASE_URL": "postgresql://ignored"})  # fmt: skip
    assert s.postgres.dsn == "postgresql://sark:p%40ss@db:6543/sark"
    assert s.timescale.dsn == "postgresql://sark:sark@ts:5432/sark_audit"
    assert s.redis_url == "redis://:x@r:7000/0" and s.opa_url == "http://opa:8181"
    assert s.opa_policy_path == "/v1/data/mcp/allow" and s.auth_mode == "jwt"
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        Settings.from_env({})
    assert Settings.from_env({"CI_PERF_DEMO_AUTH": "none"}).auth_mode == "none"
    with pytest.raises(ConfigError, match="CI_PERF_DEMO_AUTH"):
        Settings.from_env({"CI_PERF_DEMO_AUTH": "magic"})


@pytest.mark.parametrize(("env", "limit"), [
    ({}, 0), ({"RATE_LIMIT_PER_MINUTE": "7"}, 7), ({"RATE_LIMIT_ENABLED": "true"}, 100),
    ({"RATE_LIMIT_ENABLED": "true", "RATE_LIMIT_PER_MINUTE": "9"}, 9),
    ({"RATE_LIMIT_ENABLED": "false", "RATE_LIMIT_PER_MINUTE": "9"}, 0),
])  # fmt: skip
def test_rate_limit_switch(env: dict[str, str], limit: int) -> None:
    assert Settings.from_env({**BASE, **env}).rate_limit_per_minute == limit


def test_server_payload_follows_sark_registration_request() -> None:
    out = server_payload({"name": "s", "transport": "stdio", "command": "run", "tools": []})
    assert out["version"] == "2025-06-18" and out["endpoint"] is None and out["sensitivity_level"] == "medium"
    for bad, msg in [
        ({"transport": "http", "tools": []}, "name is required"),
        ({"name": "s", "tools": []}, "transport is required"),
        ({"name": "s", "transport": "websocket", "tools": []}, "transport"),
        ({"name": "s", "transport": "http"}, "tools is required"),
        ({"name": "s", "transport": "http", "tools": [], "sensitivity_level": "extreme"}, "sensitivity_level"),
        ({"name": "s", "transport": "http", "tools": [{"name": "a"}, {"name": "a"}]}, "twice"),
        ([], "object"),
    ]:
        with pytest.raises(ValidationError, match=msg):
            server_payload(bad)


def _decide(action: str, role: str = "developer", tool: dict[str, Any] | None = None, **context: Any) -> bool:
    return decide({"user": {"id": "u", "role": role}, "action": action, "tool": tool, "context": context})[0]


def test_stand_in_rules() -> None:
    assert _decide("tool:invoke", tool={"name": "read_file", "sensitivity_level": "low"})
    assert not _decide("tool:invoke", role="viewer", tool={"name": "read_file"})
    for name in ("delete_records", "drop_table", "kill_proc", "ExecShell"):
        assert not _decide("tool:invoke", tool={"name": name})
    assert not _decide("tool:invoke", tool={"name": "q"}, parameters={"db_password": "x"})
    assert not _decide("tool:invoke", tool={"name": "q", "sensitivity_level": "critical"})
    assert _decide("server:read", role="viewer") and _decide("server:list", role="viewer")
    assert not _decide("server:delete") and _decide("server:update", role="admin")
    assert not _decide("launch:rockets", role="admin")
    caller = Caller(str(uuid.uuid4()), "e", "developer")
    reg = registration_input(caller, {"name": "n", "sensitivity_level": "high", "transport": "http"})
    assert decide(reg)[0]
    critical = {"name": "n", "sensitivity_level": "critical", "transport": "http"}
    assert not decide(registration_input(caller, critical))[0]
    assert not decide({**reg, "user": {"id": "u", "role": "viewer"}, "context": {}})[0]


def test_policy_request_input_and_answers() -> None:
    uid, sid = str(uuid.uuid4()), str(uuid.uuid4())
    req = PolicyRequest.parse({"user_id": uid, "action": "tool:invoke", "tool": "t", "server_id": sid,
                               "parameters": {"a": 1}})  # fmt: skip
    caller = Caller(uid, "e", "developer")
    doc = req.opa_input(caller, "low", None)
    assert doc["user"]["id"] == uid and doc["tool"] == {"name": "t", "sensitivity_level": "low"}
    assert doc["context"]["parameters"] == {"a": 1}
    status, body = answer(b'{"input": %s}' % __import__("json").dumps(doc).encode())
    assert status == 200 and read_decision(body)["decision"] == "allow" and read_decision(body)["audit_id"]
    assert read_decision({"result": False})["decision"] == "deny"
    with pytest.raises(ValueError):
        read_decision({})
    other = PolicyRequest.parse({"user_id": uid, "action": "tool:invoke", "tool": "t", "server_id": sid,
                                 "parameters": {"a": 2}})  # fmt: skip
    assert req.cache_key(caller) != other.cache_key(caller) and uid in req.cache_key(caller)
    for bad in ({}, {"action": "x"}, {"user_id": "nope", "action": "x"}, {"user_id": uid},
                {"user_id": uid, "action": "x", "server_id": "s"}, "text"):  # fmt: skip
        with pytest.raises(PolicyInputError):
            PolicyRequest.parse(bad)


def test_list_query_and_cursor() -> None:
    q = ListQuery.parse({"limit": "7", "sort_order": "asc", "status": "active,inactive", "tags": "a, b",
                         "match_all_tags": "true", "offset": "40"})  # fmt: skip
    assert (q.limit, q.status, q.tags, q.match_all_tags) == (7, ["active", "inactive"], ["a", "b"], True)
    sid = str(uuid.uuid4())
    when, back = decode_cursor(encode_cursor("2026-01-01T00:00:00.123456+00:00", sid))
    assert str(back) == sid and when.microsecond == 123456
    for bad in ({"limit": "201"}, {"limit": "x"}, {"cursor": "bm9wZQ"}, {"status": "gone"}, {"include_total": "2"}):
        with pytest.raises(ValidationError):
            ListQuery.parse(bad)
