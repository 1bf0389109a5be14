"""Minted tokens against a running API that checks them (the SARK stub: HS256, exp, CSRF): a 4 s ttl
over a 12 s run is renewed without one failed request, with both tools; `ci-perf run --preset sark
--host` takes the secret from CI_PERF_JWT_SECRET."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections import Counter
from pathlib import Path

import jwt
import pytest

from conftest import start_stub

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("tool", ["locust", "k6"])
def test_four_second_tokens_over_twelve_seconds(tmp_path: Path, tool: str) -> None:
    secret = secrets.token_hex(24)
    record = tmp_path / "requests.jsonl"
    proc, url = start_stub("--auth", "jwt", "--jwt-secret", secret, "--csrf", "--record", str(record))
    try:
        (tmp_path / "ci-perf.yml").write_text("auth: {jwt: {ttl: 4s, identities: 2}}\n")
        done = subprocess.run(
            [sys.executable, "-m", "ci_perf", "run", "--preset", "sark", "--host", url, "--tool", tool,
             "--users", "3", "--duration", "12s", "-o", "r"],
            capture_output=True, text=True, cwd=tmp_path, timeout=120,
            env={**os.environ, "CI_PERF_JWT_SECRET": secret},
        )  # fmt: skip
    finally:
        proc.terminate()
        proc.wait(10)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    total = json.loads((tmp_path / "r" / "results.json").read_text())["result"]["total"]
    assert total["requests"] > 50 and total["failures"] == 0
    seen = [json.loads(line) for line in record.read_text().splitlines()]
    bearer = [r["headers"]["authorization"][7:] for r in seen if "authorization" in r["headers"]]
    claims = [jwt.decode(t, secret, algorithms=["HS256"], options={"verify_exp": False}) for t in bearer]
    assert len({c["sub"] for c in claims}) == 2  # identities: 2
    per_sub = Counter((c["sub"], c["exp"]) for c in claims)
    assert len({exp for _, exp in per_sub}) >= 4  # several generations of tokens were used: renewal
    assert secret not in done.stdout + done.stderr + (tmp_path / "r" / "report.md").read_text()
