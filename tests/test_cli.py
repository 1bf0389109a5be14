"""The command line as a user meets it: exit codes and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ci_perf.cli import main
from ci_perf.scenarios.catalog import SCENARIOS


def test_scenarios_lists_all_eleven(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scenarios"]) == 0
    out = capsys.readouterr().out
    for name in SCENARIOS:
        assert name in out
    assert len(SCENARIOS) == 11


def test_unknown_scenario_exits_2_with_one_line() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "ci_perf", "run", "--scenario", "smoke", "--host", "http://127.0.0.1:9"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "unknown scenario 'smoke'" in lines[0] and "smoke_test" in lines[0]
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"schema_version": 1, "result": {}}', "result lacks 'meta'"),
        ('{"schema_version": 99}', "schema_version is 99"),
    ],
)
def test_malformed_results_file_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, message: str
) -> None:
    path = tmp_path / "results.json"
    path.write_text(content)
    assert main(["report", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert str(path) in err and message in err and len(err.splitlines()) == 1


def test_missing_results_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(tmp_path / "nope.json")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_health_timeout_is_an_infrastructure_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "run",
            "--host",
            "http://127.0.0.1:9",
            "--health-timeout",
            "1s",
            "--report-dir",
            str(tmp_path),
            "--duration",
            "2s",
        ]
    )
    err = capsys.readouterr().err
    assert code == 3
    assert "did not answer 200 within 1s" in err and "http://127.0.0.1:9/health/" in err and "Connection refused" in err
    # No load ran, yet the run says why in its reports (the verdict is an error, exit 3).
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["verdict"]["status"] == "error" and results["verdict"]["exit_code"] == 3
    assert results["result"]["total"]["requests"] == 0 and "did not answer 200" in results["infra"]["message"]


def test_a_bad_baseline_file_fails_before_anything_starts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for content in ("null", '{"result": '):
        bad = tmp_path / "base.json"
        bad.write_text(content)
        # --host points nowhere: had the baseline been read after the load, the health wait would fail first
        args = ["run", "--host", "http://127.0.0.1:9", "--baseline", f"file:{bad}", "--report-dir", str(tmp_path / "r")]
        assert main(args) == 2
        err = capsys.readouterr().err
        assert str(bad) in err and "did not answer" not in err and "Traceback" not in err
        assert len(err.strip().splitlines()) == 1, err


def test_an_unwritable_report_folder_is_one_line_before_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    taken = tmp_path / "a-file"
    taken.write_text("")
    assert main(["run", "--host", "http://127.0.0.1:9", "--report-dir", str(taken / "reports")]) == 2
    err = capsys.readouterr().err
    assert "report folder" in err and "not writable" in err and len(err.strip().splitlines()) == 1, err


def test_a_malformed_header_entry_is_named_by_position_never_by_value() -> None:
    from ci_perf.auth import Auth
    from ci_perf.errors import ConfigError

    with pytest.raises(ConfigError) as err:
        Auth.from_env({"CI_PERF_HEADERS": "X-Ok: fine; Authorization Bearer sk_live_secret_value"})
    assert "entry 2" in str(err.value) and "sk_live_secret_value" not in str(err.value)


def test_a_missing_script_is_one_line_up_front(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.py"
    assert main(["run", "--host", "http://127.0.0.1:9", "--script", str(missing), "--report-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"--script {missing}: no such file" in err and "did not answer" not in err, err
