"""`ci-perf compare BASE HEAD` on two real saved results (tests/golden/compare, captured by its
capture.py from two runs of the demo, the second 15 ms slower per request): the head judged with the
base as its baseline, every report written, exit codes as a run's."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ci_perf.cli import main
from ci_perf.reports import RENDERERS

GOLDEN = Path(__file__).parent / "golden" / "compare"
BASE, SLOWER = GOLDEN / "base.json", GOLDEN / "head_slower.json"
EVERY_FILE = {"results.json", *RENDERERS}


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No ci-perf.yml and no CI_PERF_* setting of the caller's may change the verdict."""
    monkeypatch.chdir(tmp_path)
    for name in [n for n in os.environ if n.startswith("CI_PERF_") and n != "CI_PERF_TEST_SESSION"]:
        monkeypatch.delenv(name)


def _saved(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "results.json").read_text())


def test_a_slower_head_fails_with_fail_on_regression_and_writes_every_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert main(["compare", str(BASE), str(SLOWER), "--report-dir", str(out), "--fail-on-regression"]) == 1
    assert {p.name for p in out.iterdir()} == EVERY_FILE
    saved = _saved(out)
    assert saved["verdict"]["status"] == "fail" and saved["verdict"]["exit_code"] == 1
    assert saved["comparison"]["source"] == f"file:{BASE}"
    degraded = {(d["endpoint"], d["metric"]) for d in saved["comparison"]["deltas"] if d["change"] == "degraded"}
    assert ("Aggregated", "p50") in degraded and len(degraded) >= 5
    assert saved["gating"] == {"fail_on_regression": True, "min_effect": 0.1}
    assert saved["result"] == json.loads(SLOWER.read_text())["result"]  # the head as measured, untouched
    printed = capsys.readouterr().out
    assert "smoke_test/k6: fail: " in printed and "vs baseline" in printed
    assert 'type="regression"' in (out / "junit.xml").read_text()
    assert "degraded" in (out / "report.md").read_text()


def test_without_fail_on_regression_a_slowdown_warns_and_exits_0(tmp_path: Path) -> None:
    assert main(["compare", str(BASE), str(SLOWER), "-o", str(tmp_path / "out")]) == 0
    saved = _saved(tmp_path / "out")
    assert saved["verdict"]["status"] == "warn"
    assert any(i["kind"] == "regression" for i in saved["verdict"]["items"])


def test_min_effect_above_the_slowdown_passes_the_gate(tmp_path: Path) -> None:
    assert main(["compare", str(BASE), str(SLOWER), "-o", str(tmp_path / "a"), "--fail-on-regression"]) == 1
    largest = max(d["delta_pct"] for d in _saved(tmp_path / "a")["comparison"]["deltas"] if d["change"] == "degraded")
    above = math.ceil(largest) + 10
    out = tmp_path / "b"
    args = ["compare", str(BASE), str(SLOWER), "-o", str(out), "--fail-on-regression", "--min-effect", f"{above}%"]
    assert main(args) == 0
    saved = _saved(out)
    assert saved["gating"]["min_effect"] == pytest.approx(above / 100)
    assert not [d for d in saved["comparison"]["deltas"] if d["change"] == "degraded"]


def test_same_result_on_both_sides_passes_into_the_default_folder(tmp_path: Path) -> None:
    assert main(["compare", str(BASE), str(BASE), "--fail-on-regression"]) == 0
    saved = _saved(tmp_path / "reports")  # the default report folder, under the working directory
    assert saved["verdict"]["status"] == "pass"
    assert {d["change"] for d in saved["comparison"]["deltas"]} <= {"unchanged", "inconclusive"}


def test_its_reports_are_what_ci_perf_report_renders_from_its_results(tmp_path: Path) -> None:
    """One Verdict, stored: re-rendering compare's results.json gives the same files byte for byte."""
    assert main(["compare", str(BASE), str(SLOWER), "-o", str(tmp_path / "a"), "--fail-on-regression"]) == 1
    assert main(["report", str(tmp_path / "a" / "results.json"), "-o", str(tmp_path / "b")]) == 0
    for name in EVERY_FILE:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


@pytest.mark.parametrize(
    ("base", "head", "message"),
    [
        ("missing.json", str(SLOWER), "missing.json: does not exist"),
        (str(BASE), "truncated.json", "truncated.json: not valid JSON (Expecting property name enclosed"),
        (str(BASE), "list.json", "list.json: not a ci-perf result (a JSON list, expected an object)"),
        ("empty-result.json", str(SLOWER), "empty-result.json: result lacks 'meta'"),
    ],
)
def test_a_bad_file_is_one_line_and_exit_2_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], base: str, head: str, message: str
) -> None:
    Path("truncated.json").write_text(SLOWER.read_text()[:5000])
    Path("list.json").write_text("[1, 2]")
    Path("empty-result.json").write_text('{"schema_version": 1, "result": {}}')
    assert main(["compare", base, head, "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ci-perf: error: ") and message in err and len(err.strip().splitlines()) == 1
    assert err.strip().endswith("compare takes the results.json of two ci-perf runs (or `ci-perf baseline save` files)")
    assert not (tmp_path / "out").exists()


def test_a_bad_min_effect_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compare", str(BASE), str(SLOWER), "-o", str(tmp_path / "out"), "--min-effect", "lots"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ci-perf: error: ") and "min_effect" in err and len(err.splitlines()) == 1


def test_the_exit_code_as_a_shell_sees_it(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "ci_perf", "compare", str(BASE), str(SLOWER), "-o", str(tmp_path / "out")]
    gated = subprocess.run([*cmd, "--fail-on-regression"], capture_output=True, text=True, timeout=120)
    assert gated.returncode == 1 and "Traceback" not in gated.stderr
    assert subprocess.run(cmd, capture_output=True, timeout=120).returncode == 0
