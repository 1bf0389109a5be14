"""`preset: sark` (C6) as ci-perf resolves it: the stack it asks for and the auth it hands the tools."""

from __future__ import annotations

from pathlib import Path

import pytest

from ci_perf import pipeline, presets
from ci_perf.config import Settings, build_settings
from ci_perf.errors import ConfigError
from ci_perf.services.services_spec import DatabaseSpec, ServiceSpec


def test_the_demo_api_implies_sark() -> None:
    settings = build_settings({}, env={})
    plan = pipeline.jwt_plan(settings, {})
    assert plan is not None and len(plan[1]) >= 32
    config = pipeline.stack_config(settings, "", jwt_secret=plan[1])
    env = config.api_env
    assert env["POSTGRES_HOST"] == "{db_host}" and env["TIMESCALE_DB"] == "{sark_audit_db}"
    assert env["SECRET_KEY"] == env["JWT_SECRET_KEY"] == "{jwt_secret}" and env["OPA_URL"] == "{opa_url}"
    assert env["RATE_LIMIT_ENABLED"] == "false" and config.jwt_secret == plan[1]
    assert config.databases == (DatabaseSpec("sark_audit"),) and [s.name for s in config.services] == ["opa"]
    auth = pipeline.auth_for(settings, {}, plan)
    assert auth.api_key == "" and len(auth.csrf_token) >= 32 and plan[1] in auth.secrets()


def test_preset_none_and_a_users_api_keep_the_old_wiring() -> None:
    for settings in (build_settings({"preset": "none"}, env={}), build_settings({"api_command": "app"}, env={})):
        assert pipeline.jwt_plan(settings, {}) is None
        config = pipeline.stack_config(settings, "k")
        assert config.api_env == {} and config.services == () and config.databases == ()
        auth = pipeline.auth_for(settings, {})
        assert auth.api_key.startswith("sk_ci_perf_") and auth.csrf_token == ""


def test_users_settings_win_over_the_presets() -> None:
    own_opa = ServiceSpec("opa", image="openpolicyagent/opa:1", args=("run", "--server"), port=8181)
    settings = Settings(preset="sark", api_command="uvicorn app", api_env={"RATE_LIMIT_ENABLED": "true"},
                        services={"opa": own_opa}, databases=(DatabaseSpec("sark_audit", "audit"),))  # fmt: skip
    config = pipeline.stack_config(settings, "", jwt_secret="s" * 40)
    assert config.api_env["RATE_LIMIT_ENABLED"] == "true" and config.api_env["POSTGRES_DB"] == "{db_name}"
    assert config.services == (own_opa,) and config.databases == (DatabaseSpec("sark_audit", "audit"),)


def test_sark_against_an_external_api_needs_its_secret() -> None:
    settings = build_settings({"preset": "sark", "host": "http://127.0.0.1:1"}, env={})
    with pytest.raises(ConfigError, match="CI_PERF_JWT_SECRET is not set"):
        pipeline.jwt_plan(settings, {})
    plan = pipeline.jwt_plan(settings, {"CI_PERF_JWT_SECRET": "theirs"})
    assert plan is not None and plan[1] == "theirs"


def test_preset_from_env_file_and_flag(tmp_path: Path) -> None:
    cfg = tmp_path / "ci-perf.yml"
    cfg.write_text("preset: none\n")
    assert build_settings({}, env={}, config_file=cfg).preset == "none"
    assert build_settings({}, env={"CI_PERF_PRESET": "sark"}, config_file=cfg).preset == "sark"
    with pytest.raises(ConfigError, match="unknown preset 'rails'; choose one of: sark, none"):
        build_settings({}, env={"CI_PERF_PRESET": "rails"})
    assert presets.resolve("", demo_api=False) is presets.NONE


def test_identities_default_to_the_peak_users(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    monkeypatch.setenv("CI_PERF_STATE_DIR", str(tmp_path))
    settings = build_settings({"scenario": "spike_test", "users": 4}, env={})
    plan = pipeline.jwt_plan(settings, {})
    scenario = pipeline.scenario_for(settings)
    peak = max([1.0, *(s.users_fraction for s in scenario.stages)])
    with pipeline.minted_tokens(plan, scenario, "rid", pipeline.auth_for(settings, {}, plan)) as auth:
        data = json.loads(Path(auth.tokens_file).read_text())
        assert len(data["subjects"]) == max(4, round(4 * peak))
        assert data["tokens"][0][0][1] in auth.secrets()
    assert not Path(auth.tokens_file).exists()
