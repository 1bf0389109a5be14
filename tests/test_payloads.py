"""What the two tools send, recorded by the SARK stub: tokens and identities per contract C5."""

from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import pytest

from ci_perf.auth import Auth
from ci_perf.model import RunMeta, RunResult
from ci_perf.parsers import get_parser
from ci_perf.runners import RunSpec, get_runner
from ci_perf.scenarios.catalog import get_scenario
from ci_perf.scenarios.identity import Identity, TokensFile, default_user_id
from conftest import start_stub

pytestmark = pytest.mark.integration
SECRET = "stub-secret-for-tests-only-0123456789"
CSRF = "c" * 40


@dataclass(frozen=True)
class TokenAuth(Auth):
    """Auth with C5's tokens_file, whether or not this checkout's Auth has the field yet."""

    tokens_file: str = ""


def run_tool(
    tool: str, url: str, raw: Path, auth: Auth, scenario: str = "smoke_test", users: int = 1, seconds: int = 4
) -> RunResult:
    sc = get_scenario(scenario).with_load(users=users, spawn_rate=users, duration_s=seconds)
    spec = RunSpec(scenario=sc, host=url, raw_dir=raw, auth=auth, window_s=1.0, processes=1, progress=lambda p: None)
    artifacts = get_runner(tool)(spec)
    meta = RunMeta(
        sc.name, tool, artifacts.tool_version, sc.users, sc.spawn_rate, float(sc.duration_s), url, window_s=1.0
    )
    return get_parser(tool)(artifacts, meta)


def recorded(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def mint(subject: str, exp: float) -> str:
    claims = {
        "sub": subject,
        "email": f"{subject[:8]}@perf.test",
        "role": "developer",
        "type": "access",
        "exp": int(exp),
    }
    return jwt.encode(claims, SECRET, algorithm="HS256")


def write_tokens(path: Path, subjects: list[str], switch_at: float) -> dict[str, list[str]]:
    """Two tokens per identity: the first expires soon after `switch_at`, the second much later."""
    tokens = {s: [mint(s, switch_at + 1.5), mint(s, switch_at + 300)] for s in subjects}
    doc = {
        "subjects": subjects,
        "tokens": [[[switch_at, tokens[s][0]], [switch_at + 290, tokens[s][1]]] for s in subjects],
    }
    path.write_text(json.dumps(doc))
    os.chmod(path, 0o600)
    return tokens


def test_identity_rules() -> None:
    doc = TokensFile(("a", "b"), (((10.0, "a1"), (20.0, "a2")), ((10.0, "b1"),)))
    one, two, three = Identity(0, doc), Identity(1, doc), Identity(2, doc)
    assert (one.user_id, two.user_id, three.user_id) == ("a", "b", "a")
    assert [one.token(t) for t in (5, 9.9, 10, 15, 25)] == ["a1", "a1", "a2", "a2", "a2"]
    assert two.token(99) == "b1"  # past every use_until: the last one
    plain = Identity(3, None)
    assert not plain.has_tokens and plain.user_id == default_user_id(3) == str(uuid.UUID(plain.user_id))
    assert default_user_id(3) != default_user_id(4)


@pytest.mark.parametrize("tool", ["locust", "k6"])
def test_tokens_file_renews_tokens_and_sends_subjects(tool: str, tmp_path: Path) -> None:
    subjects = [str(uuid.uuid4()) for _ in range(2)]
    record = tmp_path / "requests.jsonl"
    proc, url = start_stub("--auth", "jwt", "--jwt-secret", SECRET, "--csrf", "--record", str(record))
    try:
        switch_at = time.time() + 6  # tool start-up included
        tokens = write_tokens(tmp_path / "tokens.json", subjects, switch_at)
        auth = TokenAuth(csrf_token=CSRF, tokens_file=str(tmp_path / "tokens.json"))
        result = run_tool(tool, url, tmp_path / "raw", auth, users=3, seconds=8)
    finally:
        proc.terminate()
        proc.wait(10)
    requests = [r for r in recorded(record) if not r["path"].startswith("/health")]
    assert not [e for e in result.total.errors if "401" in e.error]
    by_token = {t: (s, i) for s, pair in tokens.items() for i, t in enumerate(pair)}
    used: dict[str, set[int]] = {s: set() for s in subjects}
    for r in requests:
        subject, which = by_token[r["headers"]["authorization"].removeprefix("Bearer ")]
        used[subject].add(which)
        assert which == (0 if r["t"] < switch_at - 0.2 else 1 if r["t"] > switch_at + 0.2 else which)
        if r["path"] == "/api/v1/policy/evaluate":
            assert r["body"]["user_id"] == subject  # a user's policy requests carry its own subject
        if r["method"] == "POST":
            assert r["headers"]["x-csrf-token"] == CSRF == r["cookies"]["csrf_token"]
    assert used == {s: {0, 1} for s in subjects}  # 3 users over 2 identities; each renewed mid-run


@pytest.mark.parametrize("tool", ["locust", "k6"])
def test_without_tokens_file_user_ids_are_stable_per_user(tool: str, tmp_path: Path) -> None:
    record = tmp_path / "requests.jsonl"
    proc, url = start_stub("--api-key", "test-key", "--record", str(record))
    try:
        run_tool(tool, url, tmp_path / "raw", Auth(api_key="test-key"), users=2, seconds=4)
    finally:
        proc.terminate()
        proc.wait(10)
    ids = {r["body"]["user_id"] for r in recorded(record) if r["path"] == "/api/v1/policy/evaluate"}
    assert ids and ids <= {default_user_id(0), default_user_id(1)}
