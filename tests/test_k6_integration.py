"""Real k6 1.1.0 runs through runner + parser against the SARK stub (a few seconds each)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ci_perf.auth import Auth
from ci_perf.errors import RunnerError
from ci_perf.model import RunMeta, RunResult
from ci_perf.parsers.k6 import parse_k6
from ci_perf.runners.base import Progress, RunArtifacts, RunSpec
from ci_perf.runners.k6 import run_k6
from ci_perf.scenarios.catalog import get_scenario
from conftest import start_stub

pytestmark = pytest.mark.integration
AUTH = Auth(api_key="test-key")


def run(url: str, raw: Path, scenario: str, users: int, seconds: int, **kw: object) -> tuple[RunArtifacts, RunResult]:
    sc = get_scenario(scenario).with_load(users=users, duration_s=seconds)
    spec = RunSpec(scenario=sc, host=url, raw_dir=raw, auth=AUTH, window_s=2.0, **kw)  # type: ignore[arg-type]
    artifacts = run_k6(spec)
    meta = RunMeta(
        scenario=sc.name,
        tool="k6",
        tool_version=artifacts.tool_version,
        users=sc.users,
        spawn_rate=sc.spawn_rate,
        duration_s=float(sc.duration_s),
        host=url,
        window_s=2.0,
    )
    return artifacts, parse_k6(artifacts, meta)


def k6_export(artifacts: RunArtifacts) -> dict[str, dict[str, float]]:
    """k6's own --summary-export: what k6 itself reports, independent of our handleSummary."""
    metrics: dict[str, dict[str, float]] = json.loads(artifacts.files["k6_summary_export"].read_text())["metrics"]
    return metrics


def assert_adds_up(result: RunResult) -> None:
    assert sum(e.requests for e in result.endpoints) == result.total.requests
    for ep in (*result.endpoints, result.total):
        assert sum(w.requests for w in ep.windows) == ep.requests, ep.key
        assert sum(w.failures for w in ep.windows) == ep.failures, ep.key


def test_smoke_p95_per_endpoint_is_k6s_own(sark_stub: str, tmp_path: Path) -> None:
    seen: list[Progress] = []
    artifacts, result = run(sark_stub, tmp_path, "smoke_test", 1, 6, progress=seen.append, progress_every_s=1.0)
    assert artifacts.exit_code == 0 and artifacts.tool_version == "1.1.0"
    export = k6_export(artifacts)
    assert result.total.requests == export["http_reqs"]["count"] > 10
    assert result.total.p95_ms == export["ci_perf_ok"]["p(95)"]  # success-only: the right answers' Trend
    assert result.total.all_p95_ms == export["http_req_duration"]["p(95)"]
    waiting = export["http_req_waiting"]  # time to first byte: k6's own trend, for GitLab's TTFB
    assert result.waiting is not None
    assert (result.waiting.p90_ms, result.waiting.p95_ms) == (waiting["p(90)"], waiting["p(95)"])
    assert result.total.failures == 0
    assert len(result.endpoints) >= 4
    for ep in result.endpoints:
        sel = f"{{name:{ep.name},method:{ep.method}}}"
        assert ep.p95_ms == export[f"ci_perf_ok{sel}"]["p(95)"]
        assert ep.all_p95_ms == export[f"http_req_duration{sel}"]["p(95)"]
        assert ep.requests == export[f"http_reqs{sel}"]["count"]
    assert_adds_up(result)
    assert seen and seen[-1].requests > 0 and seen[-1].users == 1 and seen[-1].total_s == 6
    assert (tmp_path / "k6.stdout.log").read_text().count("ci-perf k6 summary: smoke_test") == 1


def test_rate_limit_429_counts_as_expected(tmp_path: Path) -> None:
    proc, url = start_stub("--api-key", "test-key", "--rate-limit", "40")
    try:
        artifacts, result = run(url, tmp_path, "rate_limit_test", 5, 4)
    finally:
        proc.terminate()
        proc.wait(10)
    export = k6_export(artifacts)
    summary = json.loads(artifacts.files["k6_summary"].read_text())["metrics"]
    limited = sum(
        v["values"]["count"]
        for k, v in summary.items()
        if k.startswith("ci_perf_status{name:") and k.endswith(",status:429}")
    )
    assert limited > 0
    assert sum(w.limited or 0 for w in result.total.windows) == limited  # per window, from their own counters
    assert not any("429" in e.error for e in result.total.errors)
    assert result.total.failures == sum(e.occurrences for e in result.total.errors)
    assert result.total.requests == export["http_reqs"]["count"]
    assert {e.name for e in result.endpoints} == {"/api/v1/servers/ (burst)", "/api/v1/policy/evaluate"}
    assert_adds_up(result)


def test_staged_scenario_follows_its_stages(sark_stub: str, tmp_path: Path) -> None:
    artifacts, result = run(sark_stub, tmp_path, "spike_test", 10, 8)
    assert result.total.requests == k6_export(artifacts)["http_reqs"]["count"]
    users = [w.users for w in result.total.windows]
    assert users[0] == 1 and max(users) == 10
    assert_adds_up(result)


def test_script_error_raises_runner_error_with_its_stderr(sark_stub: str, tmp_path: Path) -> None:
    script = tmp_path / "broken.js"
    script.write_text("export default function () { throw new Error('boom from the script'); }\nconst x = ;\n")
    with pytest.raises(RunnerError, match="k6 exited with code") as err:
        run(sark_stub, tmp_path / "raw", "smoke_test", 1, 3, script=script)
    assert "Unexpected token" in str(err.value) or "SyntaxError" in str(err.value)


def k6_pids(marker: str) -> list[int]:
    """k6 processes whose argv mentions marker (our raw folder: unique per test)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if argv and argv[0].endswith(b"k6") and marker.encode() in b" ".join(argv):
                found.append(int(entry.name))
    return found


@pytest.fixture
def runner_process(sark_stub: str, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    code = textwrap.dedent(f"""
        from pathlib import Path
        from ci_perf.auth import Auth
        from ci_perf.runners.base import RunSpec
        from ci_perf.runners.k6 import run_k6
        from ci_perf.scenarios.catalog import get_scenario
        run_k6(RunSpec(scenario=get_scenario("smoke_test"), host={sark_stub!r}, raw_dir=Path({str(tmp_path)!r}),
                       auth=Auth(api_key="test-key")))
    """)
    proc = subprocess.Popen([sys.executable, "-c", code])
    try:
        deadline = time.monotonic() + 20
        while not k6_pids(str(tmp_path)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert k6_pids(str(tmp_path)), "k6 did not start"
        time.sleep(1.0)
        yield proc, str(tmp_path)
    finally:
        proc.kill()
        proc.wait()
        for pid in k6_pids(str(tmp_path)):
            os.kill(pid, signal.SIGKILL)


def _gone(marker: str, within_s: float) -> bool:
    deadline = time.monotonic() + within_s
    while k6_pids(marker) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not k6_pids(marker)


def test_ctrl_c_leaves_no_k6(runner_process: tuple[subprocess.Popen[bytes], str]) -> None:
    proc, marker = runner_process
    proc.send_signal(signal.SIGINT)
    assert proc.wait(20) != 0  # KeyboardInterrupt went on up, after stopping k6
    assert _gone(marker, 5)


def test_hard_kill_of_ci_perf_takes_k6_along(runner_process: tuple[subprocess.Popen[bytes], str]) -> None:
    proc, marker = runner_process
    proc.send_signal(signal.SIGTERM)  # unhandled outside the pipeline: the parent-death signal stops k6
    proc.wait(20)
    assert _gone(marker, 10)


def test_auth_headers_cookies_and_csrf_on_writes_only(tmp_path: Path) -> None:
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    seen: list[tuple[str, dict[str, str]]] = []  # method, headers (names lower-cased: HTTP ignores case)

    class Recorder(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            seen.append((self.command, {k.lower(): v for k, v in self.headers.items()}))
            body = b'{"server_id": "s1", "id": "s1", "decision": "allow", "items": [], "total": 0}'
            register = self.command == "POST" and self.path.startswith("/api/v1/servers")
            self.send_response(201 if register else 200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _answer

    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    auth = Auth(
        api_key="k1", bearer_token="jwt1", headers={"X-Team": "perf"}, cookies={"session": "s1"}, csrf_token="c1"
    )
    sc = get_scenario("smoke_test").with_load(duration_s=3)
    try:
        run_k6(
            RunSpec(
                scenario=sc,
                host=f"http://127.0.0.1:{server.server_port}",
                raw_dir=tmp_path,
                auth=auth,
                progress=lambda p: None,
            )
        )
    finally:
        server.shutdown()
        server.server_close()
    assert {m for m, _ in seen} == {"GET", "POST"}
    for method, headers in seen:
        assert headers["x-api-key"] == "k1" and headers["authorization"] == "Bearer jwt1"
        assert headers["x-team"] == "perf" and "session=s1" in headers["cookie"]
        assert (headers.get("x-csrf-token") == "c1") == (method == "POST")
        assert ("csrf_token=c1" in headers["cookie"]) == (method == "POST")
