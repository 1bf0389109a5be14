"""Real Locust 2.47.0 runs through the runner and the parser against the SARK stub: our numbers must
be Locust's own (its HTML report carries its final per-endpoint statistics), windows must add up to
the totals, a broken locustfile is a crash, and Ctrl-C / SIGTERM leave no Locust process behind."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from ci_perf.auth import Auth
from ci_perf.errors import RunnerError
from ci_perf.model import RunMeta, RunResult
from ci_perf.parsers.locust import parse_locust
from ci_perf.runners.base import Progress, RunArtifacts, RunSpec
from ci_perf.runners.locust import run_locust
from ci_perf.scenarios.catalog import get_scenario

pytestmark = pytest.mark.integration
AUTH = Auth(api_key="test-key")


def _run(
    url: str, raw: Path, processes: int = 1, seconds: int = 6, script: Path | None = None
) -> tuple[RunArtifacts, RunResult, list[Progress]]:
    seen: list[Progress] = []
    scenario = get_scenario("smoke_test").with_load(users=5, spawn_rate=5, duration_s=seconds)
    spec = RunSpec(
        scenario,
        url,
        raw,
        AUTH,
        window_s=1.0,
        processes=processes,
        script=script,
        progress=seen.append,
        progress_every_s=2,
    )
    artifacts = run_locust(spec)
    meta = RunMeta("smoke_test", "locust", artifacts.tool_version, 5, 5, seconds, url)
    return artifacts, parse_locust(artifacts, meta), seen


def locust_report(html: Path) -> dict[str, dict[str, Any]]:
    """Locust's own final statistics, as embedded in its HTML report, by "METHOD name"."""
    text = html.read_text(encoding="utf-8")
    marker = "window.templateArgs = "
    args, _ = json.JSONDecoder().raw_decode(text[text.index(marker) + len(marker) :])
    return {f"{r['method']} {r['name']}".strip(): r for r in args["requests_statistics"]}


@pytest.mark.parametrize("processes", [1, 2])
def test_smoke_run_equals_locusts_own_numbers(sark_stub: str, tmp_path: Path, processes: int) -> None:
    artifacts, result, progress = _run(sark_stub, tmp_path / "raw", processes)
    assert artifacts.exit_code == 0 and artifacts.tool_version == "2.47.0"
    report = locust_report(artifacts.files["html"])
    assert set(report) == {e.key for e in result.endpoints} | {"Aggregated"}
    entries = json.loads(artifacts.files["locust_json"].read_text())
    exact_max = {f"{e['method']} {e['name']}": e["max_response_time"] for e in entries}  # the HTML rounds it
    exact_max["Aggregated"] = max(exact_max.values())
    for ep in (*result.endpoints, result.total):
        own = {**report[ep.key], "max_response_time": exact_max[ep.key]}
        assert ep.requests == own["num_requests"] and ep.failures == own["num_failures"], ep.key
        # Locust's figures are over every request: ours beside them (all_p95_ms), clamped to the max.
        assert ep.all_p95_ms == min(own["response_time_percentile_0.95"], round(own["max_response_time"], 3))
        # No failure here, so the success-only figures are Locust's too (bucketed, clamped to the max).
        assert ep.p99_ms == min(own["response_time_percentile_0.99"], ep.max_ms), ep.key
        assert ep.max_ms == round(own["max_response_time"], 3), ep.key
        assert sum(w.requests for w in ep.windows) == ep.requests, ep.key
        assert sum(w.failures for w in ep.windows) == ep.failures, ep.key
    assert result.total.requests == sum(e["num_requests"] for e in entries) > 20
    assert result.total.failures == 0  # the stub demands X-API-Key: auth reached every request
    assert {e.name for e in result.endpoints} >= {"/api/v1/servers/", "/api/v1/policy/evaluate"}
    assert progress and progress[-1].requests > 0 and progress[-1].total_s == 6
    assert max(w.users for w in result.total.windows) == 5
    assert (tmp_path / "raw" / "locust.stdout.log").read_text().count("users=") >= 2


def test_failed_requests_are_not_a_crash(tmp_path: Path) -> None:
    from conftest import start_stub

    proc, url = start_stub("--api-key", "test-key", "--fail-rate", "0.3")
    try:
        artifacts, result, _ = _run(url, tmp_path / "raw", seconds=4)
    finally:
        proc.terminate()
        proc.wait(10)
    assert artifacts.exit_code == 1 and result.total.failures > 0
    assert sum(e.occurrences for e in result.total.errors) == result.total.failures


def test_broken_locustfile_raises_runner_error(sark_stub: str, tmp_path: Path) -> None:
    script = tmp_path / "broken.py"
    script.write_text("from locust import HttpUser\nclass U(HttpUser:\n    pass\n")
    with pytest.raises(RunnerError, match="SyntaxError") as err:
        _run(sark_stub, tmp_path / "raw", script=script)
    assert "wrote no locust.json" in str(err.value)


def test_own_locustfile_still_gets_windows_and_progress(sark_stub: str, tmp_path: Path) -> None:
    script = tmp_path / "mine.py"
    script.write_text(
        "from locust import FastHttpUser, task, constant\n"
        "class Mine(FastHttpUser):\n"
        "    wait_time = constant(0.05)\n"
        "    @task\n"
        "    def hello(self):\n"
        "        self.client.get('/health/', name='health')\n"
    )
    _, result, progress = _run(sark_stub, tmp_path / "raw", seconds=3, script=script)
    assert [e.key for e in result.endpoints] == ["GET health"]
    assert sum(w.requests for w in result.total.windows) == result.total.requests > 10
    assert progress


CHILD = """
import sys
from pathlib import Path
from ci_perf.auth import Auth
from ci_perf.runners.base import RunSpec
from ci_perf.runners.locust import run_locust
from ci_perf.scenarios.catalog import get_scenario
spec = RunSpec(get_scenario("smoke_test").with_load(users=4, spawn_rate=4, duration_s=120), sys.argv[1],
               Path(sys.argv[2]), Auth(api_key="test-key"), processes=2, progress_every_s=1)
run_locust(spec)
"""


def _locust_processes(marker: str) -> list[psutil.Process]:
    found = []
    for p in psutil.process_iter(["cmdline"]):
        cmd = " ".join(p.info["cmdline"] or ())
        if "locust" in cmd and marker in cmd:
            found.append(p)
    return found


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_leaves_no_locust_process(sark_stub: str, tmp_path: Path, sig: signal.Signals) -> None:
    raw = tmp_path / f"raw-{sig.name}"
    child = subprocess.Popen([sys.executable, "-c", CHILD, sark_stub, str(raw)])
    try:
        log = raw / "locust.stdout.log"
        deadline = time.monotonic() + 60
        while not (log.is_file() and "users=" in log.read_text()):
            assert time.monotonic() < deadline, "Locust never reported progress"
            time.sleep(0.2)
        assert len(_locust_processes(str(raw))) >= 3  # master and two forked workers
        child.send_signal(sig)
        assert child.wait(40) != 0
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    time.sleep(0.5)
    left = _locust_processes(str(raw))
    for p in left:
        p.kill()
    assert not left, f"orphaned Locust processes: {[p.pid for p in left]}"
