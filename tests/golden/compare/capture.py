"""Regenerate the saved results `ci-perf compare` is tested on: two real runs of the demo API.

    .venv/bin/python tests/golden/compare/capture.py

base.json: smoke_test with k6, 5 users for 30 s, on the local backend. head_slower.json: the same run
with the demo adding 15 ms to every request (CI_PERF_DEMO_LATENCY_MS=15). Each file is the run's
results.json as ci-perf wrote it. tests/test_compare_cli.py judges one against the other.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
RUNS = {"base.json": [], "head_slower.json": ["--api-env", "CI_PERF_DEMO_LATENCY_MS=15"]}
LOAD = ["--backend", "local", "--scenario", "smoke_test", "--tool", "k6", "--users", "5", "--duration", "30s"]


def main() -> None:
    ci_perf = Path(sys.executable).with_name("ci-perf")
    with tempfile.TemporaryDirectory(prefix="ci-perf-compare-capture-") as tmp:
        env = {**os.environ, "CI_PERF_STATE_DIR": str(Path(tmp) / "state")}  # our runs only
        for name, extra in RUNS.items():
            report = Path(tmp) / name
            cmd = [str(ci_perf), "run", *LOAD, "--publish", "none", "--report-dir", str(report), *extra]
            subprocess.run(cmd, check=True, env=env)
            shutil.copyfile(report / "results.json", HERE / name)
            print(f"wrote {HERE / name}")


if __name__ == "__main__":
    main()
