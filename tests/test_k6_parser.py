"""The k6 summary parser against golden files captured from real k6 1.1.0 runs (regenerate with
`python tests/golden/k6/capture.py`), and its one-line errors for broken files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ci_perf.errors import ResultError
from ci_perf.model import AGGREGATE, RunMeta, RunResult
from ci_perf.parsers import get_parser
from ci_perf.parsers.k6 import parse_k6, users_at
from ci_perf.runners.base import RunArtifacts

GOLDEN = Path(__file__).parent / "golden" / "k6"
CASES = sorted(p.name for p in GOLDEN.iterdir() if (p / "expected.json").is_file())
META = RunMeta(
    scenario="smoke_test",
    tool="k6",
    tool_version="1.1.0",
    users=1,
    spawn_rate=1,
    duration_s=6,
    host="http://sark-stub",
    window_s=2.0,
)


def _artifacts(**files: Path) -> RunArtifacts:
    return RunArtifacts(tool="k6", tool_version="1.1.0", started_at="", exit_code=0, files=dict(files))


def _golden(case: str) -> tuple[RunResult, str]:
    import sys

    sys.path.insert(0, str(GOLDEN))
    try:
        from capture import artifacts_for  # the same inputs the capture script parsed
    finally:
        sys.path.remove(str(GOLDEN))
    folder = GOLDEN / case
    meta = RunMeta(**json.loads((folder / "meta.json").read_text()))
    return parse_k6(artifacts_for(folder), meta), (folder / "expected.json").read_text()


def test_cases_present() -> None:
    assert {"smoke_test", "rate_limit_test", "spike_test", "concurrent_failures", "user_script", "outage"} <= set(CASES)


def test_outage_fails_closed_registrations_and_contradicted_policies() -> None:
    """SARK with its policy engine down: every registration 500 (counted failed, no latency), every
    policy answer deny (the allow-expecting ones are wrong answers), decisions deny only."""
    result, _ = _golden("outage")
    reg = result.endpoint("POST /api/v1/servers/")
    assert reg is not None and reg.requests == reg.failures > 0 and reg.successes == 0
    assert (reg.p95_ms, reg.max_ms) == (0, 0)
    assert [e.error for e in reg.errors] == ['HTTP 500: {"detail": "Server registration failed"}']
    assert result.decisions is not None and set(result.decisions) == {"deny"}
    policy = [e for e in result.endpoints if e.name.startswith("/api/v1/policy/evaluate")]
    assert sum(e.requests for e in policy) == result.decisions["deny"]
    for ep in policy:
        assert {e.error for e in ep.errors} <= {"wrong answer: decision deny, expected allow"}
    server_actions = result.endpoint("POST /api/v1/policy/evaluate (server action)")
    assert server_actions is not None and server_actions.failures == server_actions.requests  # all expect allow


@pytest.mark.parametrize("case", CASES)
def test_golden_byte_for_byte(case: str) -> None:
    result, expected = _golden(case)
    assert json.dumps(result.to_dict(), indent=2, sort_keys=True) + "\n" == expected


@pytest.mark.parametrize("case", CASES)
def test_stats_are_k6s_own(case: str) -> None:
    """Every number comes straight from k6's --summary-export, which k6 wrote from the same sinks: latency
    from our script's success-only Trend (ci_perf_ok), the all-requests p95 from http_req_duration,
    failures = error statuses + wrong answers. A user's own script: http_req_duration as it is."""
    result, _ = _golden(case)
    export = json.loads((GOLDEN / case / "k6-summary-export.json").read_text())["metrics"]
    own = case != "user_script"
    latency = "ci_perf_ok" if own else "http_req_duration"
    wrong = export.get("ci_perf_wrong", {}).get("count", 0) if own else 0
    assert result.total.requests == export["http_reqs"]["count"]
    assert result.total.p95_ms == export[latency]["p(95)"]
    assert result.total.all_p95_ms == (export["http_req_duration"]["p(95)"] if own else None)
    assert result.total.failures == export["http_req_failed"]["passes"] + wrong
    for ep in result.endpoints:
        sel = f"{{name:{ep.name},method:{ep.method}}}" if own else f"{{name:{ep.name}}}"
        duration = export.get(f"{latency}{sel}", {})
        if own and not duration.get("count"):  # no right answer: no latency, never one made of failures
            assert (ep.p50_ms, ep.p95_ms, ep.max_ms) == (0, 0, 0) and ep.failures == ep.requests
            continue
        assert (ep.p50_ms, ep.p90_ms, ep.p95_ms, ep.p99_ms) == (
            duration["med"],
            duration["p(90)"],
            duration["p(95)"],
            duration["p(99)"],
        )
        assert (ep.min_ms, ep.avg_ms, ep.max_ms) == (duration["min"], duration["avg"], duration["max"])
        assert ep.requests == export[f"http_reqs{sel}"]["count"]
        assert ep.successes == duration["count"] or not own
        assert ep.histogram is None


@pytest.mark.parametrize("case", [c for c in CASES if c != "user_script"])
def test_windows_and_errors_add_up(case: str) -> None:
    result, _ = _golden(case)
    assert sum(ep.requests for ep in result.endpoints) == result.total.requests
    for ep in (*result.endpoints, result.total):
        assert ep.windows, ep.key
        assert sum(w.requests for w in ep.windows) == ep.requests
        assert sum(w.failures for w in ep.windows) == ep.failures
        assert sum(e.occurrences for e in ep.errors) == ep.failures
    assert result.meta.window_s == 2.0


def test_rate_limit_429_is_expected_not_failed() -> None:
    result, _ = _golden("rate_limit_test")
    summary = json.loads((GOLDEN / "rate_limit_test" / "k6-summary.json").read_text())["metrics"]
    limited = sum(
        v["values"]["count"]
        for k, v in summary.items()
        if k.startswith("ci_perf_status{name:") and k.endswith(",status:429}")
    )
    assert limited > 0
    assert sum(w.limited or 0 for w in result.total.windows) == limited
    assert not any("429" in e.error for e in result.total.errors)
    assert result.total.failures <= result.total.requests - limited


def test_staged_users_follow_the_plan() -> None:
    result, _ = _golden("spike_test")
    users = [w.users for w in result.total.windows]
    assert max(users) == 10 and users[0] == 1  # a tenth, then the spike


def test_user_script_gets_aggregate_and_named_endpoints() -> None:
    result, _ = _golden("user_script")
    assert result.total.name == AGGREGATE and result.total.windows == ()
    assert [e.key for e in result.endpoints] == ["GET /api/v1/servers/?search", "GET /health/"]


def test_registered_for_k6() -> None:
    assert get_parser("k6") is parse_k6


def test_users_at_interpolates_like_ramping_vus() -> None:
    plan = {"start_users": 1, "stages": [[9, 10], [10, 10]]}
    assert [users_at(plan, t) for t in (0, 4.5, 9, 15, 99)] == [1, 6, 10, 10, 10]


def _broken(tmp_path: Path, text: str) -> RunArtifacts:
    path = tmp_path / "k6-summary.json"
    path.write_text(text)
    return _artifacts(k6_summary=path)


def test_summary_of_an_older_script_is_refused_in_one_line(tmp_path: Path) -> None:
    doc = json.loads((GOLDEN / "smoke_test" / "k6-summary.json").read_text())
    doc["ci_perf"]["format"] = 2  # per-window sub-metrics this parser no longer reads: never zero windows
    with pytest.raises(ResultError, match=r"older ci-perf k6 script \(format 2\).* reads format 3") as err:
        parse_k6(_broken(tmp_path, json.dumps(doc)), META)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("text", "what"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "not a JSON object"),
        ('{"metrics": {}}', "has no metrics.http_reqs"),
        ('{"metrics": {"http_reqs": {"count": 3, "rate": 1}, "http_req_duration": {"avg": 1}}}', "has no 'min'"),
        ('{"metrics": {"http_reqs": {"count": 3, "rate": 1}}}', "has no metric 'http_req_duration'"),
    ],
)
def test_malformed_summary_is_one_line_naming_the_file(tmp_path: Path, text: str, what: str) -> None:
    with pytest.raises(ResultError) as err:
        parse_k6(_broken(tmp_path, text), META)
    message = str(err.value)
    assert str(tmp_path / "k6-summary.json") in message and what in message
    assert "\n" not in message


def test_missing_summary(tmp_path: Path) -> None:
    with pytest.raises(ResultError, match="missing"):
        parse_k6(_artifacts(k6_summary=tmp_path / "nope.json"), META)
    with pytest.raises(ResultError, match="no summary file"):
        parse_k6(_artifacts(), META)
