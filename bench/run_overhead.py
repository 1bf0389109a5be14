"""What does a whole `ci-perf run` cost beyond the load itself?

Overhead = wall time of `ci-perf run --backend external --host <fast target>` minus the scenario's
duration: no service is brought up, so what is left is ci-perf (interpreter start, imports, health wait,
starting and stopping the tool, parsing, rendering every report). Target: under 3 s for each tool. The
same tool run by hand with the same settings shows how much of it is the tool's own start and stop.

The breakdown comes from a second, instrumented run in one Python process: the same `ci_perf.cli.main`
with timers around the pipeline's stages (imports, stack up, health wait, tool run, parse, evaluate,
reports); "tool start+stop" is the tool run's time beyond the scenario's duration.

  python bench/run_overhead.py                 # smoke_test, 5 s runs, both tools, 3 runs each
  python bench/run_overhead.py --duration 10 --runs 5 --tools k6
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import fast_target
import loadgen

from ci_perf.runners import locust as locust_runner
from ci_perf.scenarios.catalog import get_scenario

MAX_OVERHEAD_S = 3.0

# Runs in a child interpreter: the pipeline's stages, timed where pipeline.run calls them.
PROBE = r"""
import json, sys, time
t0 = time.perf_counter()
import ci_perf.cli, ci_perf.pipeline as p
stages = {"imports": time.perf_counter() - t0}

def timed(name, fn):
    def wrapper(*a, **kw):
        start = time.perf_counter()
        try:
            return fn(*a, **kw)
        finally:
            stages[name] = stages.get(name, 0.0) + time.perf_counter() - start
    return wrapper

def timed_factory(name, get):
    return lambda key: timed(name, get(key))

def timed_backend(get):
    def make(config):
        backend = get(config)
        backend.up, backend.down = timed("stack up", backend.up), timed("stack down", backend.down)
        return backend
    return make

p.wait_for_health = timed("health wait", p.wait_for_health)
p.get_parser = timed_factory("parse", p.get_parser)
p.get_runner = timed_factory("tool run", p.get_runner)
p.get_backend = timed_backend(p.get_backend)
p.evaluate = timed("evaluate", p.evaluate)
p.write_outputs = timed("reports", p.write_outputs)
code = ci_perf.cli.main(sys.argv[1:])
stages["total"] = time.perf_counter() - t0
print("STAGES " + json.dumps(stages))
sys.exit(code)
"""


def ci_perf_exe() -> list[str]:
    here = Path(sys.executable).parent / "ci-perf"
    return [str(here)] if here.is_file() else [sys.executable, "-m", "ci_perf"]


USERS = 1  # smoke_test's; --users 10 shows the cost of Locust's default worker processes too


def run_args(tool: str, host: str, duration_s: int, out: Path) -> list[str]:
    return [
        "run",
        "--scenario",
        "smoke_test",
        "--tool",
        tool,
        "--backend",
        "external",
        "--host",
        host,
        "--duration",
        f"{duration_s}s",
        "--users",
        str(USERS),
        "--spawn-rate",
        str(USERS),
        "--report-dir",
        str(out),
        "--publish",
        "files",
    ]


def wall(tool: str, host: str, duration_s: int, work: Path) -> float:
    out = Path(tempfile.mkdtemp(dir=work))
    started = time.perf_counter()
    proc = subprocess.run(
        [*ci_perf_exe(), *run_args(tool, host, duration_s, out)], capture_output=True, text=True, check=False, cwd=work
    )
    took = time.perf_counter() - started
    if proc.returncode not in (0, 1):
        raise SystemExit(f"ci-perf run failed ({proc.returncode}):\n{proc.stdout[-1500:]}\n{proc.stderr[-1500:]}")
    return took


def by_hand(tool: str, host: str, duration_s: int, work: Path) -> float:
    """Wall time of the same tool run by hand (bench/loadgen.py's way): the tool's own start and stop."""
    scenario = get_scenario("smoke_test").with_load(users=USERS, spawn_rate=USERS, duration_s=duration_s)
    n = locust_runner.processes(locust_runner.RunSpec(scenario, host, work))
    started = time.perf_counter()
    loadgen.run_by_hand(tool, scenario, host, work, n)
    return time.perf_counter() - started


def breakdown(tool: str, host: str, duration_s: int, work: Path) -> dict[str, float]:
    out = Path(tempfile.mkdtemp(dir=work))
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, *run_args(tool, host, duration_s, out)],
        capture_output=True,
        text=True,
        check=False,
        cwd=work,
    )
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("STAGES ")), None)
    if line is None:
        raise SystemExit(f"instrumented run failed ({proc.returncode}):\n{proc.stderr[-1500:]}")
    stages: dict[str, float] = json.loads(line[len("STAGES ") :])
    stages["tool start+stop"] = stages.pop("tool run", 0.0) - duration_s
    return stages


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tools", nargs="+", choices=("locust", "k6"), default=["locust", "k6"])
    p.add_argument("--duration", type=int, default=5, help="seconds of load per run")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--users", type=int, default=1)
    args = p.parse_args()
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # stopped: still clean up (nginx, temp files)
    global USERS
    USERS = args.users
    work = Path(tempfile.mkdtemp(prefix="ci-perf-overhead-"))
    ok = True
    try:
        with fast_target.serve() as host:
            print(f"target: {host}; smoke_test, {args.users} user(s), {args.duration} s of load per run")
            for tool in args.tools:
                walls = [wall(tool, host, args.duration, work) for _ in range(args.runs)]
                overhead = statistics.median(walls) - args.duration
                own = statistics.median(by_hand(tool, host, args.duration, work) for _ in range(args.runs))
                stages = breakdown(tool, host, args.duration, work)
                good = overhead < MAX_OVERHEAD_S
                ok = ok and good
                print(
                    f"{tool}: wall {', '.join(f'{w:.2f}' for w in walls)} s -> overhead (median) "
                    f"{overhead:.2f} s (target < {MAX_OVERHEAD_S:.0f} s): {'PASS' if good else 'FAIL'}"
                )
                order = (
                    "imports",
                    "stack up",
                    "health wait",
                    "tool start+stop",
                    "parse",
                    "evaluate",
                    "reports",
                    "stack down",
                )
                parts = [f"{k} {stages[k]:.2f}" for k in order if k in stages]
                rest = stages["total"] - args.duration - sum(stages[k] for k in order if k in stages)
                print(
                    f"  {tool} by hand, same settings: wall {own:.2f} s -> the tool's own start and stop "
                    f"{own - args.duration:.2f} s; ci-perf's share {overhead - (own - args.duration):.2f} s"
                )
                print(
                    f"  breakdown (s, one instrumented run): {', '.join(parts)}, other {rest:.2f}; "
                    f"python start (not in the above) ~{overhead - (stages['total'] - args.duration):.2f}"
                )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
