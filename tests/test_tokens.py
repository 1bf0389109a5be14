"""JWT minting (C5): claims, exp, identities, the renewal schedule, the file's mode and removal."""

from __future__ import annotations

import json
import stat
import uuid
from pathlib import Path

import jwt
import pytest

from ci_perf.auth import Auth
from ci_perf.errors import ConfigError
from ci_perf.services.local import cleanup_local
from ci_perf.tokens import JwtConfig, mint, parse_jwt, schedule, subject, tokens_file

SECRET = "a-test-secret-of-some-length-0123456789"


def test_claims_are_what_sark_checks() -> None:
    tokens = mint(JwtConfig(ttl_s=600), SECRET, identities=2, horizon_s=60, now=1_000_000)
    assert len(tokens.subjects) == 2 and len(set(tokens.subjects)) == 2
    for n, (sub, per) in enumerate(zip(tokens.subjects, tokens.tokens, strict=True)):
        uuid.UUID(sub)
        claims = jwt.decode(per[0][1], SECRET, algorithms=["HS256"], options={"verify_exp": False})
        assert claims == {"sub": sub, "email": f"ci-perf-{n}@example.com", "role": "developer", "type": "access",
                          "iat": 1_000_000, "exp": 1_000_600}  # fmt: skip
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(
            tokens.tokens[0][0][1],
            "another-secret-that-is-also-long-enough-0123",
            algorithms=["HS256"],
            options={"verify_exp": False},
        )
    assert subject(0) == tokens.subjects[0]  # stable per identity number


def test_configured_claims_role_and_email() -> None:
    config = parse_jwt({"ttl": "1m", "role": "admin", "email": "u{n}@corp.test", "claims": {"team": "perf"}})
    assert config is not None
    claims = jwt.decode(mint(config, SECRET, 1, 10, now=0).tokens[0][0][1], SECRET, algorithms=["HS256"],
                        options={"verify_exp": False})  # fmt: skip
    assert (claims["role"], claims["email"], claims["team"], claims["type"]) == ("admin", "u0@corp.test", "perf",
                                                                                  "access")  # fmt: skip


@pytest.mark.parametrize("ttl", [4, 60, 900])
def test_schedule_renews_before_exp_and_covers_the_horizon(ttl: int) -> None:
    config = JwtConfig(ttl_s=ttl)
    margin = max(2.0, 0.1 * ttl)
    now = 5000.25
    plan = schedule(config, horizon_s=3600, now=now)
    assert plan[-1][0] >= now + 3600
    previous_use_until = now
    for use_until, exp in plan:
        assert exp - use_until >= margin  # used no later than margin before it expires
        assert exp - previous_use_until <= ttl  # valid at most ttl from when it starts being used
        assert use_until > previous_use_until
        previous_use_until = use_until


def test_tokens_file_is_private_and_removed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI_PERF_STATE_DIR", str(tmp_path / "state"))
    tokens = mint(JwtConfig(ttl_s=4), SECRET, identities=3, horizon_s=12, now=100)
    with tokens_file(tokens, "runtok") as path:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        data = json.loads(path.read_text())
        assert data["subjects"] == tokens.subjects and len(data["tokens"]) == 3
        assert all([u for u, _ in per] == sorted(u for u, _ in per) for per in data["tokens"])
        assert (tmp_path / "state" / "runtok.tokens.json").exists()
        folder = path.parent
    assert not folder.exists() and not (tmp_path / "state" / "runtok.tokens.json").exists()


def test_down_removes_the_tokens_after_a_kill(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI_PERF_STATE_DIR", str(tmp_path / "state"))
    context = tokens_file(mint(JwtConfig(), SECRET, 1, 10), "killed")
    path = context.__enter__()  # and never exited, as after SIGKILL
    removed = cleanup_local("killed", force=True).removed  # force: its owner (this process) still lives
    assert removed == [f"directory {path.parent}"] and not path.parent.exists()
    context.__exit__(None, None, None)


def test_tokens_and_secret_are_masked_but_not_sent_in_the_tools_json() -> None:
    tokens = mint(JwtConfig(), SECRET, 2, 10)
    auth = Auth(tokens_file="/x/tokens.json", masked=(SECRET, *tokens.all()))
    assert set(auth.secrets()) >= {SECRET, *tokens.all()}
    sent = json.loads(auth.to_json())
    assert sent["tokens_file"] == "/x/tokens.json" and "masked" not in sent and SECRET not in auth.to_json()
    assert Auth(**sent).tokens_file == "/x/tokens.json"  # as the locustfile rebuilds it


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"ttl": "2s"}, "too short"),
        ({"algorithm": "RS256"}, "not supported"),
        ({"claims": {"sub": "x"}}, "may not set 'sub'"),
        ({"identities": -1}, "whole number"),
        ({"secret": "x"}, "unknown key 'secret'"),
        ("maybe", "must be true or a mapping"),
    ],
)
def test_bad_jwt_settings_are_one_line(value: object, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_jwt(value)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_no_secret_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="set CI_PERF_JWT_SECRET"):
        mint(JwtConfig(), "", 1, 10)
