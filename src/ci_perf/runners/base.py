"""What every runner takes (RunSpec) and gives back (RunArtifacts: files on disk)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ci_perf.auth import Auth
from ci_perf.errors import ConfigError
from ci_perf.model import TOOLS, Tool
from ci_perf.scenarios.catalog import Scenario


@dataclass(frozen=True)
class Progress:
    """One progress line, printed at least every 10 s while the tool runs."""

    elapsed_s: float
    total_s: float
    users: int
    rps: float
    p95_ms: float | None
    requests: int
    failures: int

    def line(self) -> str:
        p95 = f"{self.p95_ms:.0f} ms" if self.p95_ms is not None else "-"
        err = self.failures / self.requests if self.requests else 0.0
        return (
            f"[{self.elapsed_s:5.0f}s/{self.total_s:.0f}s] users={self.users} req/s={self.rps:.1f} "
            f"p95={p95} requests={self.requests} errors={self.failures} ({err:.2%})"
        )


def _print_progress(p: Progress) -> None:
    print(p.line(), flush=True)


@dataclass(frozen=True)
class RunSpec:
    scenario: Scenario  # already scaled by CLI/config overrides
    host: str  # base URL of the API
    raw_dir: Path  # where the tool's own outputs go (created by the runner)
    auth: Auth = field(default_factory=Auth)
    window_s: float = 5.0  # time-series window for the result's per-window statistics
    script: Path | None = None  # the user's own locustfile / k6 script instead of ours
    processes: int | None = None  # Locust: processes here, None = one per core up to users; k6 ignores it
    workers: int = 0  # Locust: a master plus this many worker processes on this machine
    expect_workers: int = 0  # Locust: run only the master, wait for this many remote workers
    master_port: int = 5557  # Locust: the port a --master-only run listens on (Locust's default)
    shard: str = ""  # k6: "i/N", run execution segment i of N
    histogram: bool = False  # k6: also stream per-request output for exact latency histograms
    extra_args: tuple[str, ...] = ()  # passed to the tool verbatim
    run_id: str = ""  # the stack's run: the tool's processes are recorded in its state for `ci-perf down`
    progress: Callable[[Progress], None] = _print_progress
    progress_every_s: float = 10.0


@dataclass(frozen=True)
class RunArtifacts:
    """The files a tool run left, by role, plus what we knew when it ran."""

    tool: Tool
    tool_version: str
    started_at: str  # ISO 8601 UTC
    exit_code: int
    files: dict[str, Path]  # e.g. "locust_json", "windows", "k6_summary", "stdout", "stderr"


Runner = Callable[[RunSpec], RunArtifacts]
RUNNERS: dict[str, Runner] = {}


def register(name: str) -> Callable[[Runner], Runner]:
    def deco(fn: Runner) -> Runner:
        RUNNERS[name] = fn
        return fn

    return deco


def get_runner(name: str) -> Runner:
    if name not in TOOLS:
        raise ConfigError(f"unknown tool {name!r}; choose one of: {', '.join(TOOLS)}")
    importlib.import_module(f"ci_perf.runners.{name}")  # registers it
    return RUNNERS[name]
