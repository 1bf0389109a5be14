"""Issue 14's "done means": no auth secret set in the environment appears in any file under the report
folder or in the output, for both tools, against an API that echoes every request header and cookie
back (tests/sark_stub.py --echo) — in 2xx bodies and in short failure bodies that become error texts.

The secrets hold Markdown/HTML/JSON special characters (an escaped secret no longer matches the raw one);
the minted JWTs are not known to the test: every Authorization/cookie value the stub saw counts, and no
JWT-looking string may appear at all."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import start_stub

pytestmark = pytest.mark.integration

SPECIAL = "|*[x]<b>#~&@`"  # header values and cookies carry all of these (no ';', it splits the lists)
STATIC = {
    "CI_PERF_API_KEY": f"sk_live_K3y_{SPECIAL}_end",
    "CI_PERF_BEARER_TOKEN": f"tok_B3arer_{SPECIAL}_end",
    "CI_PERF_HEADERS": f"X-Tenant-Secret: hdr_T3nant_{SPECIAL}_end; X-Trace: trace_V4lue_{SPECIAL}_end",
    "CI_PERF_COOKIES": f"session=ck_S3ssion_{SPECIAL}_end",
    "CI_PERF_CSRF_TOKEN": f"csrf_T0ken_{SPECIAL}_end_padded_to_32",
}
SENT = [
    STATIC["CI_PERF_API_KEY"],
    STATIC["CI_PERF_BEARER_TOKEN"],
    f"hdr_T3nant_{SPECIAL}_end",
    f"trace_V4lue_{SPECIAL}_end",
    f"ck_S3ssion_{SPECIAL}_end",
    STATIC["CI_PERF_CSRF_TOKEN"],
]
JWT_SECRET = f"jwt_S1gning_{SPECIAL}_secret_long_enough_for_hs256"
JWT = re.compile(r"eyJ[A-Za-z0-9_-]{4,}")
ECHOED = re.compile(r"HTTP (401|500): \{[^}]*(\*\*\*|\\\*\\\*\\\*)")  # an echoed secret, masked (or escaped)


def _run(
    tmp_path: Path, tool: str, stub_args: list[str], env: dict[str, str], *extra: str
) -> tuple[subprocess.CompletedProcess[str], list[dict[str, Any]]]:
    record = tmp_path / "requests.jsonl"  # outside the report folder
    proc, url = start_stub(*stub_args, "--echo", "--record", str(record))
    try:
        done = subprocess.run(
            [sys.executable, "-m", "ci_perf", "run", "--backend", "external", "--host", url, "--tool", tool,
             "--users", "2", "--duration", "4s", "-o", str(tmp_path / "r"), *extra],
            capture_output=True, text=True, cwd=tmp_path, timeout=120,
            env={**os.environ, "CI_PERF_STATE_DIR": str(tmp_path / "state"), **env},
        )  # fmt: skip
    finally:
        proc.terminate()
        proc.wait(10)
    seen = [json.loads(line) for line in record.read_text().splitlines()]
    return done, seen


def _assert_nothing_leaks(report: Path, output: str, secrets: list[str]) -> None:
    files = [p for p in report.rglob("*") if p.is_file()]
    assert {"results.json", "report.md", "report.html"} <= {p.name for p in files}
    assert any(p.parts[-2] == "raw" for p in files), "no raw tool output to check"
    for path in [*files, None]:
        text = output if path is None else path.read_text(encoding="utf-8", errors="replace")
        where = "the output" if path is None else str(path.relative_to(report))
        for secret in secrets:
            assert secret not in text, f"secret {secret[:12]}… leaked into {where}"
        assert not JWT.search(text), f"a JWT leaked into {where}: {JWT.search(text)}"
    # The echo reached the reports (so the masking had something to do), masked.
    for name in ("results.json", "report.md"):
        assert ECHOED.search((report / name).read_text()), f"no echoed failure text in {name}"


@pytest.mark.parametrize("tool", ["locust", "k6"])
def test_static_secrets_never_leave_masked(tmp_path: Path, tool: str) -> None:
    done, seen = _run(tmp_path, tool, ["--auth", "api-key", "--api-key", STATIC["CI_PERF_API_KEY"]], STATIC)
    assert done.returncode in (0, 1), done.stdout[-2000:] + done.stderr[-2000:]  # 1: the echo fails checks
    sent = json.dumps(seen)
    for secret in SENT:  # the run really sent every one, so a leak could happen
        assert json.dumps(secret)[1:-1] in sent, f"{secret[:12]}… was never sent"
    _assert_nothing_leaks(tmp_path / "r", done.stdout + done.stderr, SENT)


@pytest.mark.parametrize("tool", ["locust", "k6"])
def test_minted_jwts_and_their_secret_never_leave(tmp_path: Path, tool: str) -> None:
    stub = ["--auth", "jwt", "--jwt-secret", JWT_SECRET, "--csrf"]
    done, seen = _run(tmp_path, tool, stub, {"CI_PERF_JWT_SECRET": JWT_SECRET}, "--preset", "sark")
    assert done.returncode in (0, 1), done.stdout[-2000:] + done.stderr[-2000:]
    tokens = {r["headers"]["authorization"][7:] for r in seen if "authorization" in r["headers"]}
    csrf = {v for r in seen for k, v in r["cookies"].items() if k == "csrf_token"}
    assert tokens and all(JWT.match(t) for t in tokens), "no minted token was sent"
    assert csrf, "no CSRF token was sent"
    _assert_nothing_leaks(tmp_path / "r", done.stdout + done.stderr, [JWT_SECRET, *tokens, *csrf])
