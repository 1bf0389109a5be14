"""`ci-perf run --preset sark` with the demo SARK target: minted JWTs renewed mid-run, one identity per
virtual user reaching the API, and every scenario passing with zero 401/403 and every policy decision
coming from the policy service. Real PostgreSQL, Redis, the demo API, its OPA stand-in, Locust and k6."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import jwt
import pytest

from ci_perf import pipeline
from ci_perf.auth import Auth
from ci_perf.config import build_settings
from ci_perf.model import RunResult, Status
from ci_perf.scenarios.catalog import SCENARIOS
from ci_perf.tokens import JwtConfig
from stack_helpers import HAVE_SERVICES, SKIP_REASON

pytestmark = [pytest.mark.integration, pytest.mark.skipif(not HAVE_SERVICES, reason=SKIP_REASON)]


@pytest.fixture(autouse=True)
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CI_PERF_STATE_DIR", str(tmp_path / "state"))
    return tmp_path / "state"


def errors(result: RunResult) -> dict[str, int]:
    out: dict[str, int] = {}
    for endpoint in result.endpoints:
        for e in endpoint.errors:
            out[f"{endpoint.key}: {e.error}"] = out.get(f"{endpoint.key}: {e.error}", 0) + e.occurrences
    return out


def auth_failures(result: RunResult) -> dict[str, int]:
    return {k: v for k, v in errors(result).items() if "HTTP 401" in k or "HTTP 403" in k}


@pytest.mark.parametrize("tool", ["locust", "k6"])
def test_tokens_that_expire_mid_run_are_renewed_without_a_failed_request(tmp_path: Path, tool: str,
                                                                         state_dir: Path) -> None:  # fmt: skip
    (tmp_path / "ci-perf.yml").write_text("auth: {jwt: {ttl: 4s}}\n")  # tokens live 4 s, the run 12 s
    done = subprocess.run(
        [sys.executable, "-m", "ci_perf", "run", "--backend", "local", "--tool", tool, "--users", "3",
         "--duration", "12s", "-o", "r"],
        capture_output=True, text=True, cwd=tmp_path, timeout=180,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    result = RunResult.from_dict(json.loads((tmp_path / "r" / "results.json").read_text())["result"])
    assert result.total.requests > 50 and result.total.failures == 0, errors(result)
    assert not list(state_dir.glob("*.json")) and not list(Path("/tmp").glob("ci-perf-*-tokens-*"))


def test_one_token_that_expires_is_refused_mid_run(tmp_path: Path) -> None:
    """The control: the demo does check `exp`, so a run with one fixed 4 s token fails after 4 s."""
    secret = "a-fixed-secret-for-this-test-0123456789abcdef"
    token = jwt.encode({"sub": "6f1c2a52-9d0e-4c1e-8a57-2f4b7c0e5d11", "email": "x@example.com", "role": "developer",
                        "type": "access", "exp": int(time.time()) + 8}, secret, algorithm="HS256")  # fmt: skip
    settings = build_settings({"backend": "local", "users": 2, "duration": "14s", "report_dir": tmp_path / "r"},
                              env={})  # fmt: skip
    config = pipeline.stack_config(settings, "", jwt_secret=secret)
    auth = Auth(bearer_token=token, csrf_token="c" * 40)
    scenario = pipeline.scenario_for(settings)
    with pipeline.running_stack(config) as info:
        result, _ = pipeline.run_load(settings, scenario, info.base_url, auth)
    assert any("HTTP 401" in k for k in errors(result)), errors(result)


async def _actors(url: str) -> set[str]:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT DISTINCT actor FROM audit_events WHERE actor <> ''")
    finally:
        await conn.close()
    return {str(r["actor"]) for r in rows}


def test_every_identity_reaches_the_api(tmp_path: Path) -> None:
    settings = build_settings({"backend": "local", "scenario": "policy_evaluation_focused", "users": 6,
                               "spawn_rate": 6, "duration": "8s", "report_dir": tmp_path / "r"}, env={})  # fmt: skip
    settings = replace(settings, jwt=JwtConfig(identities=4))
    plan = pipeline.jwt_plan(settings, {})
    auth = pipeline.auth_for(settings, {}, plan)
    config = pipeline.stack_config(settings, "", jwt_secret=plan[1] if plan else "")
    scenario = pipeline.scenario_for(settings)
    with pipeline.running_stack(config) as info, pipeline.minted_tokens(plan, scenario, config.run_id, auth) as auth:
        subjects = json.loads(Path(auth.tokens_file).read_text())["subjects"]
        result, _ = pipeline.run_load(settings, scenario, info.base_url, auth)
        audit_url = info.database_url.rsplit("/", 1)[0] + "/sark_audit"
        actors = asyncio.run(_actors(audit_url))
    assert result.total.failures == 0, errors(result)
    assert len(subjects) == 4 and set(subjects) <= actors, (subjects, actors)


def test_every_scenario_passes_with_both_tools(tmp_path: Path) -> None:
    """All 11 scenarios, short, on one stack brought up as `ci-perf run --preset sark` brings it up."""
    settings = build_settings({"backend": "local", "report_dir": tmp_path / "r"}, env={})
    plan = pipeline.jwt_plan(settings, {})
    assert plan is not None
    base_auth = pipeline.auth_for(settings, {}, plan)
    config = pipeline.stack_config(settings, "", jwt_secret=plan[1])
    outcomes: dict[str, Any] = {}
    with pipeline.running_stack(config) as info:
        for name in SCENARIOS:
            for tool in ("locust", "k6"):
                run = build_settings({"backend": "local", "scenario": name, "tool": tool, "users": 4,
                                      "spawn_rate": 4, "duration": "4s",
                                      "report_dir": tmp_path / f"{name}-{tool}"}, env={})  # fmt: skip
                scenario = pipeline.scenario_for(run)
                with pipeline.minted_tokens(plan, scenario, config.run_id, base_auth) as auth:
                    result, _ = pipeline.run_load(run, scenario, info.base_url, auth)
                outcomes[f"{name}/{tool}"] = (result, pipeline.evaluate(run, scenario, result))
    for key, (result, outcome) in outcomes.items():
        assert result.total.requests > 0, key
        assert auth_failures(result) == {}, (key, auth_failures(result))
        assert result.total.failures == 0, (key, errors(result))  # a deny where allow was due is a failure
        failed = [c.name for c in outcome.evaluation.checks if c.status is Status.FAIL]
        assert not failed, (key, failed)
    # The policy service decided: a fail-closed demo would answer deny to every request. A 4-second run
    # may make only one policy request (an expected deny), so allow is looked for over all runs.
    allowed = sum((r.decisions or {}).get("allow", 0) for r, _ in outcomes.values())
    assert allowed > 0, {k: r.decisions for k, (r, _) in outcomes.items()}
