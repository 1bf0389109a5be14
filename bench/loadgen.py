"""Is ci-perf ever the bottleneck of a load test? Requests per second through `ci-perf run` versus the
same tool run by hand with the same settings, against the same fast local target (bench/fast_target.py).

  ci-perf   ci-perf run --backend external --host <target> (health probe, progress, our Locust plugin,
            report rendering: everything a CI run does)
  by hand   locust -f <ci-perf's locustfile> / k6 run <ci-perf's k6 script>, the same scenario JSON in
            CI_PERF_SCENARIO, the same users, spawn rate, duration and processes; nothing else

Runs alternate (A B C, C B A, ...) so that the drift of a shared machine hits all alike; figures are
medians, and each ratio is the median of the per-round ratios. Locust also runs through ci-perf with
--processes 1 against ci-perf's default (one process per core) to show what the default buys. Every
run's p50/p95 come from the tool's own output files, read the same way for both sides, so latency
added by ci-perf's own threads (health probe, progress) would show.

Targets: ci-perf >= 95% of by hand for Locust, >= 98% for k6; Locust default >= 1.7x --processes 1 on 2+
cores.

  python bench/loadgen.py                       # ~6 minutes: 15 s runs, 3 rounds
  python bench/loadgen.py --duration 30 --rounds 3 --tools locust
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import fast_target

from ci_perf.auth import Auth
from ci_perf.model import LatencyHistogram
from ci_perf.runners import k6 as k6_runner
from ci_perf.runners import locust as locust_runner
from ci_perf.scenarios.catalog import Scenario, get_scenario

SCENARIO = "rate_limit_test"  # no think time: every user sends as fast as the tool can
# k6: issue 13 item 5 (the script's per-window and per-status sub-metrics cost 5% before format 3)
MIN_SHARE, MIN_SPEEDUP = {"locust": 0.95, "k6": 0.98}, 1.7


@dataclass(frozen=True)
class Run:
    requests: int
    rps: float
    p50_ms: float
    p95_ms: float
    cpu_ms_per_1k: float = 0.0  # CPU of the whole run (tool and ci-perf, not the target) per 1000 requests
    cpu_s: float = 0.0

    def with_cpu(self, cpu_s: float) -> Run:
        return replace(self, cpu_ms_per_1k=cpu_s * 1e6 / max(self.requests, 1), cpu_s=cpu_s)


def children_cpu() -> float:
    """CPU seconds of every finished child process so far (a run's tool processes included)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(fn: Callable[[], Run]) -> Run:
    before = children_cpu()
    run = fn()
    return run.with_cpu(children_cpu() - before)


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def ci_perf_exe() -> list[str]:
    here = Path(sys.executable).parent / "ci-perf"
    return [str(here)] if here.is_file() else [sys.executable, "-m", "ci_perf"]


def locust_run(path: Path, duration_s: int) -> Run:
    """Locust's --json-file: requests and merged response-time histograms (Locust's rounding)."""
    stats = json.loads(path.read_text(encoding="utf-8"))
    hist = LatencyHistogram()
    for entry in stats:
        hist = hist.merge(LatencyHistogram.from_mapping({float(k): v for k, v in entry["response_times"].items()}))
    n = sum(int(e["num_requests"]) for e in stats)
    return Run(n, n / duration_s, hist.percentile(0.5), hist.percentile(0.95))


def k6_run(path: Path, duration_s: int) -> Run:
    """k6's --summary-export: http_reqs count and http_req_duration med / p(95)."""
    metrics = json.loads(path.read_text(encoding="utf-8"))["metrics"]
    n = int(metrics["http_reqs"]["count"])
    d = metrics["http_req_duration"]
    return Run(n, n / duration_s, float(d["med"]), float(d["p(95)"]))


def run_ci_perf(tool: str, scenario: Scenario, host: str, work: Path, processes: int | None = None) -> Run:
    out = Path(tempfile.mkdtemp(prefix=f"ci-perf-{tool}-", dir=work))
    argv = [
        *ci_perf_exe(),
        "run",
        "--scenario",
        scenario.name,
        "--tool",
        tool,
        "--backend",
        "external",
        "--host",
        host,
        "--users",
        str(scenario.users),
        "--spawn-rate",
        f"{scenario.spawn_rate:g}",
        "--duration",
        f"{scenario.duration_s}s",
        "--report-dir",
        str(out),
        "--publish",
        "files",
    ]
    if processes is not None:
        argv += ["--processes", str(processes)]
    proc = subprocess.run(argv, capture_output=True, text=True, check=False, cwd=work)
    if proc.returncode not in (0, 1):  # 1: a performance gate failed, a normal outcome here
        raise SystemExit(f"ci-perf run failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    raw = out / "raw"
    if tool == "locust":
        return locust_run(raw / "locust.json", scenario.duration_s)
    return k6_run(raw / "k6-summary-export.json", scenario.duration_s)


def run_by_hand(tool: str, scenario: Scenario, host: str, work: Path, processes: int) -> Run:
    out = Path(tempfile.mkdtemp(prefix=f"hand-{tool}-", dir=work))
    env = {**os.environ, "CI_PERF_SCENARIO": scenario.to_json(), "CI_PERF_AUTH": Auth().to_json()}
    if tool == "locust":
        argv = [
            locust_runner.find_locust(),
            "-f",
            str(locust_runner.LOCUSTFILE),
            "--headless",
            "--only-summary",
            "--host",
            host,
            "--users",
            str(scenario.users),
            "--spawn-rate",
            f"{scenario.spawn_rate:g}",
            "--run-time",
            f"{scenario.duration_s}s",
            "--json-file",
            str(out / "locust"),
        ]
        if processes > 1:
            argv += ["--processes", str(processes)]
    else:
        env |= {
            "CI_PERF_HOST": host,
            "CI_PERF_WINDOW_S": "5",
            "CI_PERF_SUMMARY_FILE": str(out / "summary.json"),
            "K6_NO_USAGE_REPORT": "true",
        }
        argv = [
            k6_runner.find_k6(),
            "run",
            "--no-usage-report",
            "--no-color",
            "--address",
            f"127.0.0.1:{fast_target.free_port()}",
            "--summary-export",
            str(out / "export.json"),
            "--summary-trend-stats",
            k6_runner.TREND_STATS,
            str(k6_runner.SCRIPT),
        ]
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, check=False, cwd=out)
    if proc.returncode not in (0, 1, 99):  # Locust: 1 = some request failed; k6: 99 = a threshold crossed
        raise SystemExit(f"{tool} by hand failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    if tool == "locust":
        return locust_run(out / "locust.json", scenario.duration_s)
    return k6_run(out / "export.json", scenario.duration_s)


def median_run(runs: list[Run]) -> Run:
    return Run(
        int(statistics.median(r.requests for r in runs)),
        statistics.median(r.rps for r in runs),
        statistics.median(r.p50_ms for r in runs),
        statistics.median(r.p95_ms for r in runs),
        statistics.median(r.cpu_ms_per_1k for r in runs),
        statistics.median(r.cpu_s for r in runs),
    )


def paired(a: list[Run], b: list[Run]) -> float:
    """Median of the per-round ratios: runs of one round ran back to back, so drift cancels best there."""
    return statistics.median(x.rps / y.rps for x, y in zip(a, b, strict=True))


def paired_cpu(a: list[Run], b: list[Run]) -> float:
    return statistics.median(x.cpu_ms_per_1k / y.cpu_ms_per_1k for x, y in zip(a, b, strict=True))


def show(label: str, run: Run) -> None:
    print(
        f"  {label:32s} {run.rps:9.0f} req/s   p50 {run.p50_ms:6.2f} ms   p95 {run.p95_ms:6.2f} ms   "
        f"CPU {run.cpu_ms_per_1k:6.1f} ms/1k requests   (load average {os.getloadavg()[0]:.1f})"
    )


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def bench_tool(tool: str, scenario: Scenario, host: str, work: Path, rounds: int) -> bool:
    n = locust_runner.processes(locust_runner.RunSpec(scenario, host, work)) if tool == "locust" else 1
    modes: dict[str, Callable[[], Run]] = {
        "ci-perf (default)": lambda: run_ci_perf(tool, scenario, host, work),
        "by hand": lambda: run_by_hand(tool, scenario, host, work, n),
    }
    if tool == "locust":
        modes["ci-perf --processes 1"] = lambda: run_ci_perf(tool, scenario, host, work, processes=1)
    print(
        f"{tool}: {scenario.name}, {scenario.users} users, {scenario.duration_s} s per run"
        + (f", {n} processes by default" if tool == "locust" else "")
    )
    runs: dict[str, list[Run]] = {m: [] for m in modes}
    for r in range(rounds):
        order = list(modes) if r % 2 == 0 else list(reversed(modes))  # A B C, C B A: drift cancels
        for mode in order:
            runs[mode].append(timed(modes[mode]))
            show(f"round {r + 1} {mode}", runs[mode][-1])
    med = {m: median_run(v) for m, v in runs.items()}
    print("  medians:")
    for mode, run in med.items():
        show(mode, run)
    share = paired(runs["ci-perf (default)"], runs["by hand"])
    ok = share >= MIN_SHARE[tool]
    print(
        f"  ci-perf / by hand = {share:.1%} of the throughput (median of per-round ratios; "
        f"target >= {MIN_SHARE[tool]:.0%}): {verdict(ok)}"
    )
    # A busy machine blurs req/s much more than CPU per request (ci-perf's fixed start-up, parse and
    # report CPU is in its figure, so short runs overstate it).
    cpu = paired_cpu(runs["ci-perf (default)"], runs["by hand"])
    print(f"  CPU per request, ci-perf / by hand = {cpu:.2f} (informative: includes ci-perf's fixed CPU)")
    if tool == "locust":
        speedup = paired(runs["ci-perf (default)"], runs["ci-perf --processes 1"])
        if cores() >= 2:
            fast = speedup >= MIN_SPEEDUP
            print(
                f"  default ({n} processes) / --processes 1 = {speedup:.2f}x (target >= {MIN_SPEEDUP}x on "
                f"{cores()} cores): {verdict(fast)}"
            )
            ok = ok and fast
        else:
            print(f"  default / --processes 1 = {speedup:.2f}x (one core: no target)")
    return ok


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tools", nargs="+", choices=("locust", "k6"), default=["locust", "k6"])
    p.add_argument("--users", type=int, default=50)
    p.add_argument("--duration", type=int, default=15, help="seconds per run")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--target-workers", type=int, default=1, help="nginx worker processes")
    args = p.parse_args()
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # stopped: still clean up (nginx, temp files)
    scenario = get_scenario(SCENARIO).with_load(users=args.users, spawn_rate=args.users, duration_s=args.duration)
    work = Path(tempfile.mkdtemp(prefix="ci-perf-loadgen-"))
    ok = True
    try:
        with fast_target.serve(workers=args.target_workers) as host:
            print(f"target: {host} (bench/fast_target.py), {cores()} cores")
            for tool in args.tools:
                ok = bench_tool(tool, scenario, host, work, args.rounds) and ok
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
