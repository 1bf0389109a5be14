"""Run Locust headless on a scenario: argv, environment, live progress, and the files it leaves.

Locust always gets our plugin in front of the locustfile (`-f locust_plugin.py,locustfile.py`), ours or
the user's, so windows and progress lines work for both. It runs in its own process group, which
is terminated as a whole on Ctrl-C or SIGTERM (with `--processes N` it forks workers).
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import IO

import ci_perf
from ci_perf.auth import mask
from ci_perf.errors import RunnerError
from ci_perf.net import free_port
from ci_perf.runners import locust_dist
from ci_perf.runners.base import Progress, RunArtifacts, RunSpec, register
from ci_perf.services import procs

SCENARIOS_DIR = Path(__file__).resolve().parent.parent / "scenarios"
PLUGIN = SCENARIOS_DIR / "locust_plugin.py"
LOCUSTFILE = SCENARIOS_DIR / "locustfile.py"
STOP_GRACE_S = 15.0  # Locust writes its json on SIGTERM; give it time before SIGKILL
TAIL_LINES = 20

PROGRESS_RE = re.compile(
    r"^\[\s*(?P<elapsed>\d+)s/(?P<total>\d+)s\] users=(?P<users>\d+) req/s=(?P<rps>[\d.]+) "
    r"p95=(?:(?P<p95>[\d.]+) ms|-) requests=(?P<requests>\d+) errors=(?P<failures>\d+) "
)
VERSION_RE = re.compile(r"Starting Locust (\S+)")


def find_locust() -> str:
    """The `locust` beside this Python first (the pinned extra), else the one on PATH."""
    here = Path(sys.executable).parent / "locust"
    if here.is_file() and os.access(here, os.X_OK):
        return str(here)
    found = shutil.which("locust")
    if not found:
        raise RunnerError("Locust is not installed; install the pinned runners: pip install 'ci-perf[runners]'")
    return found


def output_files(raw_dir: Path) -> dict[str, Path]:
    return {
        "locust_json": raw_dir / "locust.json",  # --json-file appends ".json" itself
        "windows": raw_dir / "locust_windows.json",
        "stats_csv": raw_dir / "locust_stats.csv",
        "failures_csv": raw_dir / "locust_failures.csv",
        "html": raw_dir / "locust.html",
        "stdout": raw_dir / "locust.stdout.log",
        "stderr": raw_dir / "locust.stderr.log",
    }


def staged(spec: RunSpec) -> bool:
    """Our locustfile turns stages into a shape class, which makes Locust ignore -u/-r/-t."""
    return spec.script is None and bool(spec.scenario.stages)


def locustfiles(spec: RunSpec) -> str:
    """Our plugin in front of the locustfile, ours or the user's."""
    return f"{PLUGIN},{spec.script.resolve() if spec.script else LOCUSTFILE}"


def processes(spec: RunSpec) -> int:
    """The --processes to run: as set, else one per core we may run on (Locust is bound to one core by
    the GIL: ~2,300 req/s per process here), never more than users; 1 when workers are set explicitly."""
    if spec.processes is not None:
        return spec.processes
    if spec.workers or spec.expect_workers:
        return 1
    try:
        cores = len(os.sched_getaffinity(0))  # a CI container may be allowed fewer cores than it sees
    except AttributeError:
        cores = os.cpu_count() or 1
    return max(1, min(cores, spec.scenario.users))


def build_argv(exe: str, spec: RunSpec, files: dict[str, Path], master_port: int = 0) -> list[str]:
    argv = [
        exe,
        "-f",
        locustfiles(spec),
        "--headless",
        "--host",
        spec.host,
        "--only-summary",
        "--json-file",
        str(files["locust_json"].with_suffix("")),
        "--csv",
        str(spec.raw_dir / "locust"),
        "--html",
        str(files["html"]),
    ]
    if not staged(spec):
        s = spec.scenario
        argv += ["--users", str(s.users), "--spawn-rate", f"{s.spawn_rate:g}", "--run-time", f"{s.duration_s}s"]
    if (n := processes(spec)) > 1:
        # Forked workers find their master on Locust's default port 5557 unless told otherwise: two runs
        # on one machine (parallel CI jobs, test suites) would then share workers, auth and all.
        argv += [
            "--processes",
            str(n),
            "--master-bind-host",
            "127.0.0.1",
            "--master-bind-port",
            str(master_port),
            "--master-port",
            str(master_port),
        ]
    return argv + locust_dist.master_args(spec, master_port) + list(spec.extra_args)


def build_env(spec: RunSpec, files: dict[str, Path], base: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
    # The plugin imports ci_perf: make it importable even for a `locust` from another environment.
    root = str(Path(ci_perf.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    env.update(
        {
            "PYTHONUNBUFFERED": "1",
            "CI_PERF_SCENARIO": spec.scenario.to_json(),
            "CI_PERF_AUTH": spec.auth.to_json(),
            "CI_PERF_WINDOW_S": f"{spec.window_s:g}",
            "CI_PERF_WINDOWS_FILE": str(files["windows"]),
            "CI_PERF_PROGRESS_S": f"{spec.progress_every_s:g}",
            "CI_PERF_TOTAL_S": str(spec.scenario.duration_s),
            # Workers number their users apart by index: user n of worker i is n * workers + i (C5).
            "CI_PERF_LOCUST_WORKERS": str(max(processes(spec), spec.workers, spec.expect_workers, 1)),
        }
    )
    return env


def parse_progress(line: str) -> Progress | None:
    m = PROGRESS_RE.match(line)
    if not m:
        return None
    return Progress(
        elapsed_s=float(m["elapsed"]),
        total_s=float(m["total"]),
        users=int(m["users"]),
        rps=float(m["rps"]),
        p95_ms=float(m["p95"]) if m["p95"] else None,
        requests=int(m["requests"]),
        failures=int(m["failures"]),
    )


def _pump(stream: IO[str], log: Path, secrets: list[str], sink: queue.Queue[Progress] | None, tail: deque[str]) -> None:
    """Copy one pipe to its log file (secrets masked), keeping a tail and spotting progress lines."""
    with log.open("w", encoding="utf-8") as out:
        for line in stream:
            line = mask(line, secrets)
            out.write(line)
            out.flush()
            tail.append(line.rstrip("\n"))
            if sink is not None and (p := parse_progress(line)):
                sink.put(p)


def stop_group(proc: subprocess.Popen[str], grace_s: float = STOP_GRACE_S) -> None:
    """SIGTERM Locust's whole process group (master and forked workers), SIGKILL what outlives grace."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(grace_s)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # forked workers can outlive the master
    proc.wait()


@contextlib.contextmanager
def _sigterm_as_exit() -> Iterator[None]:
    """While Locust runs, turn our own SIGTERM into KeyboardInterrupt, as the pipeline does in every other
    phase: the finally block stops the group, and the CLI says "interrupted" and exits 130."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _supervise(argv: list[str], env: dict[str, str], spec: RunSpec, files: dict[str, Path],
               state: procs.RunState | None) -> tuple[int, list[str]]:  # fmt: skip
    """Run Locust to its end, forwarding progress; returns (exit code, last stderr lines)."""
    secrets = spec.auth.secrets()
    progress: queue.Queue[Progress] = queue.Queue()
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    with _sigterm_as_exit():
        proc = subprocess.Popen(
            argv,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
            bufsize=1,
            start_new_session=True,
            # Killed when ci-perf dies, even by SIGKILL: with nobody left to read its output, a graceful stop
            # breaks on the closed pipes. Its forked workers follow it (locust_plugin).
            preexec_fn=procs.pdeathsig(signal.SIGKILL),
        )
        assert proc.stdout is not None and proc.stderr is not None
        recorded = _Recorded(state, proc.pid, "locust master")
        pumps = [
            threading.Thread(
                target=_pump, args=(proc.stdout, files["stdout"], secrets, progress, deque()), daemon=True
            ),
            threading.Thread(target=_pump, args=(proc.stderr, files["stderr"], secrets, None, tail), daemon=True),
        ]
        for t in pumps:
            t.start()
        try:
            while proc.poll() is None or any(t.is_alive() for t in pumps):
                recorded.forks()
                with contextlib.suppress(queue.Empty):
                    spec.progress(progress.get(timeout=0.2))
        finally:
            stop_group(proc)
            for t in pumps:
                t.join(5)
    while not progress.empty():
        spec.progress(progress.get_nowait())
    return proc.returncode, list(tail)


class _Recorded:
    """Locust's master and the workers it forks (--processes), in the run's state for `ci-perf down`."""

    def __init__(self, state: procs.RunState | None, pid: int, name: str) -> None:
        self.state, self.pid, self.seen = state, pid, {pid}
        if state is not None:
            state.add_pid(name, pid)

    def forks(self) -> None:
        if self.state is None:
            return
        for child in procs.children(self.pid):
            if child not in self.seen:
                self.seen.add(child)
                self.state.add_pid("locust worker", child)


def _tool_version(stderr_log: Path) -> str:
    with contextlib.suppress(OSError), stderr_log.open(encoding="utf-8") as fh:
        for _, line in zip(range(50), fh, strict=False):
            if m := VERSION_RE.search(line):
                return m[1]
    return "unknown"


def check_outputs(code: int, files: dict[str, Path], tail: list[str]) -> None:
    """Exit code 1 only means some request failed; no json (or a broken one) means Locust crashed."""
    last = " | ".join(line for line in tail[-8:] if line.strip()) or "no output on stderr"
    if code < 0:
        raise RunnerError(f"Locust was killed by signal {-code}; last stderr lines: {last}")
    for role in ("locust_json", "windows"):
        path = files[role]
        if not path.is_file() or path.stat().st_size == 0:
            raise RunnerError(f"Locust crashed (exit code {code}) and wrote no {path.name}; last stderr lines: {last}")


@register("locust")
def run_locust(spec: RunSpec) -> RunArtifacts:
    if spec.script is not None and not spec.script.is_file():
        raise RunnerError(f"locustfile {spec.script} does not exist")
    locust_dist.check_spec(spec)
    exe = find_locust()
    spec.raw_dir.mkdir(parents=True, exist_ok=True)
    files = output_files(spec.raw_dir)
    for path in files.values():  # a stale file from an earlier run must not hide a crash
        path.unlink(missing_ok=True)
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    port = free_port() if spec.workers or processes(spec) > 1 else spec.master_port
    env = build_env(spec, files)
    if spec.expect_workers:
        print(
            f"ci-perf: Locust master waiting for {spec.expect_workers} worker(s) on port {port}: "
            f"ci-perf worker --master-host <this host> --master-port {port}",
            flush=True,
        )
    worker = locust_dist.worker_argv(exe, locustfiles(spec), "127.0.0.1", port)
    with (
        procs.run_part(spec.run_id, "locust") as state,
        locust_dist.local_workers(worker, env, spec.raw_dir, spec.workers, state),
    ):
        code, tail = _supervise(build_argv(exe, spec, files, port), env, spec, files, state)
    check_outputs(code, files, tail)
    present = {role: path for role, path in files.items() if path.exists()}
    return RunArtifacts("locust", _tool_version(files["stderr"]), started_at, code, present)
