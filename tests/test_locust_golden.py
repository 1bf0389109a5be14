"""The Locust parser against golden files captured from real Locust 2.47.0 runs
(regenerate: /tmp/venv/bin/python tests/golden/capture_locust.py), and against broken inputs."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

from ci_perf.errors import ResultError
from ci_perf.model import LatencyHistogram, RunMeta, RunResult
from ci_perf.parsers.locust import parse_locust
from ci_perf.runners.base import RunArtifacts

GOLDEN = Path(__file__).parent / "golden" / "locust"
CASES = sorted(p.name for p in GOLDEN.iterdir() if (p / "expected.json").is_file())


def _capture_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("capture_locust", GOLDEN.parent / "capture_locust.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


CAPTURE = _capture_module()


def _parse(case: str) -> RunResult:
    d = GOLDEN / case
    meta = RunMeta(**json.loads((d / "meta.json").read_text()))
    files = {role: d / name for role, name in CAPTURE.INPUTS.items()}
    return parse_locust(RunArtifacts("locust", meta.tool_version, meta.started_at, 0, files), meta)


def test_every_capture_case_has_golden_files() -> None:
    assert set(CASES) == set(CAPTURE.CASES)


@pytest.mark.parametrize("case", CASES)
def test_parser_output_matches_golden_byte_for_byte(case: str) -> None:
    assert CAPTURE.expected_text(GOLDEN / case) == (GOLDEN / case / "expected.json").read_text()


@pytest.mark.parametrize("case", CASES)
def test_totals_equal_locust_json_and_windows_add_up(case: str) -> None:
    result = _parse(case)
    entries = json.loads((GOLDEN / case / "locust.json").read_text())
    assert result.total.requests == sum(e["num_requests"] for e in entries)
    assert result.total.failures == sum(e["num_failures"] for e in entries)
    for ep in (*result.endpoints, result.total):
        assert sum(w.requests for w in ep.windows) == ep.requests, ep.key
        assert sum(w.failures for w in ep.windows) == ep.failures, ep.key
        assert all(w.length_s > 0 for w in ep.windows)
    assert RunResult.from_dict(json.loads(json.dumps(result.to_dict()))) == result


@pytest.mark.parametrize("case", CASES)
def test_percentiles_follow_locusts_rule(case: str) -> None:
    """Locust's calculate_response_time_percentile, restated (importing locust would monkey-patch
    this test process with gevent): walk down from the top while fewer than int(n*q)+1 lie below."""
    for e in json.loads((GOLDEN / case / "locust.json").read_text()):
        times: dict[float, int] = {int(k): v for k, v in e["response_times"].items()}
        n = e["num_requests"] - e["num_none_requests"]
        hist = LatencyHistogram.from_mapping(times)
        for q in (0.5, 0.9, 0.95, 0.99):
            allowed, seen, want = int(n * q), 0, 0.0
            for rt in sorted(times, reverse=True):
                seen += times[rt]
                if n - seen <= allowed:
                    want = rt
                    break
            assert hist.percentile(q) == want, (e["name"], q)


@pytest.mark.parametrize("case", CASES)
def test_success_latency_and_all_requests_p95(case: str) -> None:
    """Latency is over successes (the plugin's histograms hold exactly the successful requests) and never
    above the max; all_p95_ms is Locust's own p95 over every request, clamped to Locust's max."""
    result = _parse(case)
    entries = {(e["method"], e["name"]): e for e in json.loads((GOLDEN / case / "locust.json").read_text())}
    for ep in result.endpoints:
        own = entries[(ep.method, ep.name)]
        assert ep.histogram is not None and ep.histogram.total == ep.successes, ep.key
        assert ep.p50_ms <= ep.p95_ms <= ep.p99_ms <= ep.max_ms <= round(own["max_response_time"], 3), ep.key
        for w in ep.windows:
            assert w.p99_ms is None or w.p99_ms <= ep.max_ms
        hist = LatencyHistogram.from_mapping({int(k): v for k, v in own["response_times"].items()})
        assert ep.all_p95_ms == min(hist.percentile(0.95), round(own["max_response_time"], 3)), ep.key


def test_outage_fails_closed_registrations_and_contradicted_policies() -> None:
    result = _parse("outage")
    reg = result.endpoint("POST /api/v1/servers/")
    assert reg is not None and reg.requests == reg.failures > 0 and reg.successes == 0
    assert (reg.p95_ms, reg.max_ms) == (0, 0) and reg.histogram is not None and reg.histogram.total == 0
    assert [e.error for e in reg.errors] == ['HTTP 500: {"detail": "Server registration failed"}']
    assert result.decisions is not None and set(result.decisions) == {"deny"}
    policy = [e for e in result.endpoints if e.name.startswith("/api/v1/policy/evaluate")]
    assert sum(e.requests for e in policy) == result.decisions["deny"]
    for ep in policy:
        assert {e.error for e in ep.errors} <= {"wrong answer: decision deny, expected allow"}
    server_actions = result.endpoint("POST /api/v1/policy/evaluate (server action)")
    assert server_actions is not None and server_actions.failures == server_actions.requests


def test_failures_case_carries_error_messages() -> None:
    result = _parse("failures")
    assert result.total.failures > 0
    assert sum(e.occurrences for e in result.total.errors) == result.total.failures
    assert all(e.error for e in result.total.errors)


def test_rate_limit_case_counts_429_as_success() -> None:
    result = _parse("rate_limit")
    assert not any("429" in e.error for e in result.total.errors)


# --- broken inputs: one line naming the file and what is wrong ------------------------------------


def _artifacts(tmp_path: Path, stats: str | None, windows: str | None = None) -> RunArtifacts:
    files: dict[str, Path] = {}
    for role, text in (("locust_json", stats), ("windows", windows)):
        if text is not None:
            files[role] = tmp_path / f"{role}.json"
            files[role].write_text(text)
    return RunArtifacts("locust", "2.47.0", "", 0, files)


META = RunMeta("smoke_test", "locust", "2.47.0", 1, 1, 4, "http://127.0.0.1:8000")
GOOD_ENTRY = json.loads((GOLDEN / "smoke" / "locust.json").read_text())[0]
GOOD_WINDOWS = (GOLDEN / "smoke" / "locust_windows.json").read_text()


@pytest.mark.parametrize(
    ("stats", "windows", "message"),
    [
        ("{not json", None, "locust_json.json: not valid JSON"),
        ('{"a": 1}', None, "expected a list of Locust stats entries, found an object"),
        ("[1]", None, "entry 0 is 1, expected an object"),
        (json.dumps([{**GOOD_ENTRY, "num_requests": "7"}]), None, "num_requests is .7., expected a whole number"),
        (
            json.dumps([{k: v for k, v in GOOD_ENTRY.items() if k != "response_times"}]),
            None,
            "entry 0 lacks 'response_times'",
        ),
        (json.dumps([{**GOOD_ENTRY, "response_times": {"x": 1}}]), None, "entry 0 response_times is malformed"),
        (json.dumps([GOOD_ENTRY]), "[]", "locust_windows.json: the document is a list, expected an object"),
        (json.dumps([GOOD_ENTRY]), GOOD_WINDOWS.replace('"window_s"', '"w"'), "lacks 'window_s'"),
        ("[" + json.dumps(GOOD_ENTRY).replace("0.24426499999208318", "NaN") + "]", None, "NaN is not a number"),
        (json.dumps([GOOD_ENTRY]), GOOD_WINDOWS.replace('"window_s": 1.0', '"window_s": 1e-9'), "windows of 1e-09s"),
        (json.dumps([GOOD_ENTRY]), GOOD_WINDOWS.replace('"users": [[0, 4]', '"users": [[0, -4]'), "users[0] is a list"),
    ],
)
def test_malformed_files_raise_one_line_result_error(
    tmp_path: Path, stats: str, windows: str | None, message: str
) -> None:
    art = _artifacts(tmp_path, stats, windows)
    if windows is not None:  # name the windows file as the runner does
        art.files["windows"] = art.files["windows"].rename(tmp_path / "locust_windows.json")
    with pytest.raises(ResultError, match=message.replace("(", r"\(").replace("[", r"\[")) as err:
        parse_locust(art, META)
    assert "\n" not in str(err.value)


def test_missing_files_raise_result_error(tmp_path: Path) -> None:
    with pytest.raises(ResultError, match="no --json-file output"):
        parse_locust(RunArtifacts("locust", "2.47.0", "", 0, {}), META)
    art = RunArtifacts("locust", "2.47.0", "", 0, {"locust_json": tmp_path / "locust.json"})
    with pytest.raises(ResultError, match=r"locust\.json: does not exist"):
        parse_locust(art, META)


def test_without_windows_file_duration_comes_from_locust_timestamps(tmp_path: Path) -> None:
    result = parse_locust(_artifacts(tmp_path, json.dumps([GOOD_ENTRY])), META)
    assert result.total.requests == GOOD_ENTRY["num_requests"]
    assert result.total.windows == ()
    assert result.total.rps > 0
