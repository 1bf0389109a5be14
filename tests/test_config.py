"""Settings precedence and one-line errors for bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from ci_perf.config import build_settings, parse_duration
from ci_perf.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "ci-perf.yml"
    path.write_text(text)
    return path


def test_precedence_cli_over_env_over_file_over_defaults(tmp_path: Path) -> None:
    cfg = write(tmp_path, "scenario: load_test_moderate\ntool: k6\nusers: 7\nduration: 2m\nprocesses: 2\n")
    env = {"CI_PERF_USERS": "9", "CI_PERF_DURATION": "90s"}
    s = build_settings({"duration": "45s"}, env=env, config_file=cfg)
    assert (s.scenario, s.tool, s.users, s.duration_s, s.processes) == ("load_test_moderate", "k6", 9, 45, 2)
    assert s.spawn_rate is None and s.health_path == "/health/"


def test_scenario_section_overrides_top_level_and_carries_thresholds(tmp_path: Path) -> None:
    cfg = write(
        tmp_path,
        "users: 5\nthresholds: {api_p95: {target: 80ms, critical: 150ms}}\n"
        "scenarios:\n  smoke_test:\n    users: 2\n    thresholds: {error_rate: {target: 2%, critical: 4%}}\n",
    )
    s = build_settings({"scenario": "smoke_test"}, env={}, config_file=cfg)
    assert s.users == 2
    assert s.thresholds == {"api_p95": {"target": "80ms", "critical": "150ms"}}
    assert s.scenario_thresholds == {"error_rate": {"target": "2%", "critical": "4%"}}
    other = build_settings({"scenario": "soak_test"}, env={}, config_file=cfg)
    assert other.users == 5 and other.scenario_thresholds == {}


def test_sections_health_stack_baseline(tmp_path: Path) -> None:
    cfg = write(
        tmp_path,
        "health: {path: /healthz, timeout: 2m}\nstack: {api-image: me/sark:1, api_env: {A: 1}}\n"
        "baseline: {source: 'file:base.json', fail_on_regression: true, min_effect: 15%}\n",
    )
    s = build_settings({}, env={}, config_file=cfg)
    assert (s.health_path, s.health_timeout_s, s.api_image, s.api_env) == ("/healthz", 120.0, "me/sark:1", {"A": "1"})
    assert (s.baseline, s.fail_on_regression, s.min_effect) == ("file:base.json", True, pytest.approx(0.15))


def test_backend_defaults_follow_host() -> None:
    assert build_settings({}, env={}).resolved_backend == "local"
    assert build_settings({"host": "http://127.0.0.1:1"}, env={}).resolved_backend == "external"


def test_scenario_json_in_env_is_not_a_scenario_name() -> None:
    # The runners hand the scenario to the tools as JSON in CI_PERF_SCENARIO; a nested ci-perf must not read it.
    assert build_settings({}, env={"CI_PERF_SCENARIO": '{"name": "x"}'}).scenario == "smoke_test"


@pytest.mark.parametrize(
    ("text", "seconds"), [("30s", 30), ("5m", 300), ("1h30m", 5400), ("90", 90), (45, 45), ("2m10s", 130)]
)
def test_parse_duration(text: object, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("cli", "yml", "message"),
    [
        ({"duration": "soon"}, "", "is not a duration"),
        ({"users": 0}, "", "must be greater than 0"),
        ({"tool": "jmeter"}, "", "unknown tool 'jmeter'"),
        ({}, "colour: blue\n", "unknown setting 'colour'"),
        ({}, "users: [1\n", "not valid YAML at line"),
        ({}, "- a\n- b\n", "must be a mapping"),
        ({}, "min_effect: lots\n", "min_effect is 'lots', expected a fraction"),
        ({"min_effect": "nan"}, "", "min_effect 'nan' is not a fraction from 0% to 1000%"),
        ({}, "users: 1.5\n", "users is 1.5, expected a whole number"),
        ({"users": "1.5"}, "", "users '1.5' is not a whole number"),
        ({"users": 100_001}, "", "users must be greater than 0 and at most 100000"),
        ({}, "spawn_rate: .nan\n", "spawn_rate is nan, expected users per second"),
        ({"spawn_rate": "inf"}, "", "spawn_rate 'inf' is not a finite number"),
        ({"duration": "25h"}, "", "duration '25h' is longer than 24h"),
        ({"duration": float("inf")}, "", "duration inf is not a whole number of seconds"),
        ({"duration": 0.5}, "", "duration 0.5 is not a whole number of seconds"),
        ({"publish": "slack"}, "", "unknown publish target 'slack'"),
        ({}, "fail_on_regression: maybe\n", "fail_on_regression is 'maybe', expected true or false"),
    ],
)
def test_bad_input_is_one_line(tmp_path: Path, cli: dict[str, object], yml: str, message: str) -> None:
    cfg = write(tmp_path, yml) if yml else None
    with pytest.raises(ConfigError) as err:
        build_settings(cli, env={}, config_file=cfg)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_missing_named_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        build_settings({}, env={}, config_file=tmp_path / "nope.yml")


def test_env_uses_the_flag_names_and_api_env_lines() -> None:
    env = {
        "CI_PERF_DURATION": "2m",
        "CI_PERF_HEALTH_TIMEOUT": "30s",
        "CI_PERF_WINDOW": "3",
        "CI_PERF_API_ENV": "A=1\nB=two=2\n\n",
        "CI_PERF_COMMENT": "false",
        "CI_PERF_FAIL_ON_REGRESSION": "true",
    }
    s = build_settings({}, env=env)
    assert (s.duration_s, s.health_timeout_s, s.window_s) == (120, 30.0, 3.0)
    assert s.api_env == {"A": "1", "B": "two=2"}
    assert (s.comment, s.fail_on_regression) == (False, True)


def test_bad_api_env_line_is_one_line() -> None:
    with pytest.raises(ConfigError, match="CI_PERF_API_ENV line 'oops' must look like KEY=VALUE"):
        build_settings({}, env={"CI_PERF_API_ENV": "oops"})


def test_api_env_adds_up_file_then_env_then_command_line(tmp_path: Path) -> None:
    cfg = write(tmp_path, "stack: {api_env: {A: file, B: file, C: file}}\n")
    env = {"CI_PERF_API_ENV": "# a comment\nB=env\nC=env\n"}
    s = build_settings({"api_env": {"C": "cli", "D": "cli"}}, env=env, config_file=cfg)
    assert s.api_env == {"A": "file", "B": "env", "C": "cli", "D": "cli"}


def test_auth_stack_databases_and_services_sections(tmp_path: Path) -> None:
    cfg = write(
        tmp_path,
        "preset: sark\nauth: {jwt: {ttl: 10m, identities: 3, role: admin}, csrf: false}\n"
        "stack:\n  databases: [sark_audit, {name: extra, user: other}]\n"
        "  services:\n    opa: {image: openpolicyagent/opa, args: [run, --server, --addr, '{host}:{port}'],"
        " port: 8181, health: /health}\n",
    )
    s = build_settings({}, env={}, config_file=cfg)
    assert s.preset == "sark" and s.csrf is False
    assert s.jwt is not None and (s.jwt.ttl_s, s.jwt.identities, s.jwt.role) == (600, 3, "admin")
    assert [d.name for d in s.databases] == ["sark_audit", "extra"] and s.databases[1].user == "other"
    assert s.services["opa"].args == ("run", "--server", "--addr", "{host}:{port}") and s.services["opa"].port == 8181


def test_bad_auth_section_is_one_line(tmp_path: Path) -> None:
    cfg = write(tmp_path, "auth: {api_key: x}\n")
    with pytest.raises(ConfigError, match=r"unknown setting 'auth\.api_key'; known here: jwt, csrf"):
        build_settings({}, env={}, config_file=cfg)


def test_a_flag_from_the_environment_must_say_true_or_false() -> None:
    with pytest.raises(ConfigError, match="fail_on_regression 'maybe' is not true or false"):
        build_settings({}, env={"CI_PERF_FAIL_ON_REGRESSION": "maybe"})
    assert build_settings({}, env={"CI_PERF_FAIL_ON_REGRESSION": "Yes"}).fail_on_regression
    assert not build_settings({}, env={"CI_PERF_FAIL_ON_REGRESSION": ""}).fail_on_regression
