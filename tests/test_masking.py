"""Secrets never reach a file ci-perf writes: masked in the results before any renderer escapes them,
in every rendered file, and in the tools' raw output and the services' logs."""

from __future__ import annotations

import html
from dataclasses import replace
from pathlib import Path

from ci_perf import pipeline
from ci_perf.auth import CUT, Auth, mask, mask_files
from ci_perf.model import ErrorCount, Evaluation, Outcome
from ci_perf.reports.common import escape_md
from synth import run

# Markdown, HTML and JSON specials: each renderer would escape this differently.
SECRET = 'sk_live_a|b*c[d]<e>#f~g&h@i`j"k\\l'


def forms(secret: str) -> list[str]:
    return [
        secret,
        escape_md(secret),
        html.escape(secret),
        html.escape(secret, quote=False),
        secret.replace("\\", "\\\\"),
    ]


def test_a_secret_with_special_characters_is_masked_in_every_report(tmp_path: Path) -> None:
    result = run(1)
    leaked = replace(result.endpoints[0], errors=(ErrorCount(f'HTTP 200: {{"decision": "{SECRET}"}}', 3),))
    result = replace(
        result, endpoints=(leaked, *result.endpoints[1:]), total=replace(result.total, errors=leaked.errors)
    )
    written = pipeline.write_outputs(pipeline.masked(Outcome(result, Evaluation()), [SECRET]), tmp_path, [SECRET])
    assert {"results.json", "report.md", "report.html", "comment.md", "junit.xml"} <= set(written)
    for name, path in written.items():
        text = path.read_text(encoding="utf-8")
        assert not [f for f in forms(SECRET) if f in text], name
    assert 'HTTP 200: {\\"decision\\": \\"***\\"}' in written["results.json"].read_text()


def test_raw_output_and_logs_are_masked_in_place(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "locust_failures.csv").write_text(f"POST,/x,HTTP 401: echo {SECRET}\nclean line\n")
    (raw / "binary.bin").write_bytes(b"\xff\xfe" + SECRET.encode() + b"\x00")
    mask_files(raw, [SECRET])
    assert (raw / "locust_failures.csv").read_text() == "POST,/x,HTTP 401: echo ***\nclean line\n"
    assert SECRET.encode() not in (raw / "binary.bin").read_bytes()
    assert (raw / "binary.bin").read_bytes().startswith(b"\xff\xfe***")
    assert sorted(p.name for p in raw.iterdir()) == ["binary.bin", "locust_failures.csv"]


def test_every_auth_value_is_a_secret() -> None:
    auth = Auth.from_env(
        {"CI_PERF_HEADERS": "X-Tenant: tenant-secret-1; X-Trace: abc", "CI_PERF_COOKIES": "s=cookie-v"}
    )
    assert {"tenant-secret-1", "abc", "cookie-v"} <= set(auth.secrets())


def test_a_secret_cut_off_by_a_failure_text_is_masked() -> None:
    """Failure texts keep a body's first 80 characters: a secret there may end early."""
    token = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjMifQ.c2lnbmF0dXJl"
    cut = f'HTTP 401: {{"Authorization": "Bearer {token[:50]}",3'
    assert mask(cut, [token]) == 'HTTP 401: {"Authorization": "Bearer ***",3'
    assert mask(f"{token[: CUT - 1]} and {token}", [token]) == f"{token[: CUT - 1]} and ***"  # too short to tell
    assert mask("abcdefghijklmnopq abcdefghijklmnXYZ", ["abcdefghijklmnop"]) == "***q ***XYZ"


def test_a_broken_runs_error_is_masked_for_stderr_and_the_reports(tmp_path: Path) -> None:
    from ci_perf.config import build_settings
    from ci_perf.errors import ServiceError

    settings = build_settings({"report_dir": tmp_path, "publish": "files"}, env={})
    exc = ServiceError(f"the API did not become healthy; its last lines:\nAuthorization: Bearer {SECRET}")
    pipeline.report_broken(settings, pipeline.scenario_for(settings), [SECRET], {}, exc)
    assert str(exc) == "the API did not become healthy; its last lines:\nAuthorization: Bearer ***"
    for path in tmp_path.iterdir():
        assert not [f for f in forms(SECRET) if f in path.read_text(encoding="utf-8")], path.name
