"""The demo's pure parts: settings from env, payload validation, the policy rules."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("starlette")

from ci_perf.demo.policy import PolicyInputError, PolicyRequest, evaluate
from ci_perf.demo.settings import Settings, parse_latency
from ci_perf.demo.validation import ValidationError, server_payload
from ci_perf.errors import ConfigError


def test_latency_knob_parses_groups_and_bare_numbers() -> None:
    assert parse_latency("policy=30, registration=5,read=0") == {"policy": 30.0, "registration": 5.0, "read": 0.0}
    assert parse_latency("12") == {"all": 12.0}
    assert parse_latency("") == {}
    s = Settings(latency_ms={"policy": 30, "all": 2})
    assert s.added_latency_s("policy") == pytest.approx(0.032)
    assert s.added_latency_s("read") == pytest.approx(0.002)


@pytest.mark.parametrize("text", ["nope=3", "policy=fast"])
def test_bad_latency_knob_is_a_config_error(text: str) -> None:
    with pytest.raises(ConfigError, match="CI_PERF_DEMO_LATENCY_MS"):
        parse_latency(text)


def test_settings_from_env() -> None:
    s = Settings.from_env({"SARK_API_KEY": "k", "RATE_LIMIT_PER_MINUTE": "7", "CI_PERF_DEMO_ERROR_RATE": "0.25"})
    assert (s.api_key, s.rate_limit_per_minute, s.error_rate, s.leak_kb_per_request) == ("k", 7, 0.25, 0)
    with pytest.raises(ConfigError, match="fraction"):
        Settings.from_env({"CI_PERF_DEMO_ERROR_RATE": "2"})
    with pytest.raises(ConfigError, match="RATE_LIMIT_PER_MINUTE"):
        Settings.from_env({"RATE_LIMIT_PER_MINUTE": "many"})


def test_server_payload_normalises_and_rejects() -> None:
    body = {"name": "s", "endpoint": "http://x", "tools": [{"name": "t", "sensitivity_level": "high"}]}
    out = server_payload(body)
    assert out["transport"] == "http" and out["sensitivity_level"] == "medium"
    assert out["tools"] == [{"name": "t", "description": "", "parameters": {}, "sensitivity_level": "high"}]
    for bad, msg in [
        ({}, "name is required"),
        ({"name": "s", "transport": "pigeon"}, "transport"),
        ({"name": "s"}, "endpoint is required"),
        ({"name": "s", "endpoint": "e", "sensitivity_level": "extreme"}, "sensitivity_level"),
        ({"name": "s", "endpoint": "e", "tools": [{"name": "a"}, {"name": "a"}]}, "twice"),
        ({"name": "s", "endpoint": "e", "tools": [{}]}, r"tools\[0\].name is required"),
        ([], "object"),
    ]:
        with pytest.raises(ValidationError, match=msg):
            server_payload(bad)


def _decide(body: dict[str, Any], facts: dict[str, Any] | None = None) -> str:
    return str(evaluate(PolicyRequest.parse(body), facts)["decision"])


def test_policy_rules_are_deterministic() -> None:
    active = {"status": "active", "server_level": "medium", "tool_level": "low"}
    invoke = {"action": "tool:invoke", "tool": "t", "server_id": "s"}
    assert _decide({"action": "tool:invoke", "tool": "read_file", "server_id": "s"}, active) == "allow"
    assert _decide({"action": "tool:invoke", "tool": "delete_records", "server_id": "s"}, active) == "deny"
    assert _decide({"action": "tool:invoke", "tool": "read", "parameters": {"api_token": "x"}}) == "deny"
    assert _decide({"action": "tool:invoke", "tool": "read_file", "server_id": "s"}, None) == "deny"
    assert _decide(invoke, {**active, "tool_level": "critical"}) == "deny"
    assert _decide(invoke, {**active, "status": "inactive"}) == "deny"
    assert _decide({"action": "server:read", "server_id": None}) == "allow"
    assert _decide({"action": "server:delete"}) == "deny"
    assert _decide({"action": "server:register", "parameters": {"sensitivity_level": "critical"}}) == "deny"
    assert _decide({"action": "launch:rockets"}) == "deny"
    a = PolicyRequest.parse({"action": "tool:invoke", "tool": "t", "parameters": {"a": 1, "b": 2}})
    b = PolicyRequest.parse({"parameters": {"b": 2, "a": 1}, "tool": "t", "action": "tool:invoke"})
    assert a.cache_key() == b.cache_key()
    for bad in ({}, {"action": "tool:invoke"}, {"action": "x", "parameters": [1]}, "text"):
        with pytest.raises(PolicyInputError):
            PolicyRequest.parse(bad)
