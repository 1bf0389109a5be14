"""Longer runs than the integration tests allow, for the findings and the sampler's cost.

Runs one scenario on the local backend against the demo API (with its fault knobs) and prints the
scenario's findings, the system figures and how long one sampler tick took (the sampler must stay
cheap: a few milliseconds every 2 s, off the request path).

  python bench/observe_findings.py soak_test --users 50 --duration 300 --leak-kb 4
  python bench/observe_findings.py soak_test --users 50 --duration 300            # must find no leak
  python bench/observe_findings.py stress_test --users 400 --duration 120 --latency-ms 100
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from ci_perf.observe.resources import ProcessTree
from ci_perf.reports.system import summary_lines
from observed_run import observed_run


def tick_cost_ms(pid: int, reads: int = 50) -> float:
    """Mean wall time of one process-tree read (psutil), the per-service part of a sampler tick."""
    tree = ProcessTree(pid)
    start = time.perf_counter()
    for i in range(reads):
        tree.read(float(i))
    return (time.perf_counter() - start) * 1000 / reads


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("scenario")
    ap.add_argument("--users", type=int, default=50)
    ap.add_argument("--duration", type=int, default=120)
    ap.add_argument("--leak-kb", type=int, default=0)
    ap.add_argument("--latency-ms", type=float, default=0)
    ap.add_argument("--rate-limit", type=int, default=0)
    args = ap.parse_args()
    env = {k: str(v) for k, v in (("CI_PERF_DEMO_LEAK_KB_PER_REQUEST", args.leak_kb),
                                  ("CI_PERF_DEMO_LATENCY_MS", args.latency_ms),
                                  ("RATE_LIMIT_PER_MINUTE", args.rate_limit)) if v}  # fmt: skip
    folder = Path(tempfile.mkdtemp(prefix="observe-findings-bench-"))
    code, outcome = observed_run(folder, args.scenario, args.users, args.duration, env, window_s=5.0)
    print(f"\nexit code {code}; reports in {folder}")
    for line in summary_lines(outcome.system):
        print("  " + line)
    for f in list(outcome.findings):
        print(f"  [{f.status.value}] {f.text}")
    print(f"  sampler tick on one process tree: {tick_cost_ms(os.getpid()):.2f} ms")


if __name__ == "__main__":
    main()
