"""Regenerate the k6 golden files: real k6 runs against tests/sark_stub.py, then the parser's output.

    python tests/golden/k6/capture.py              # new k6 runs, then expected.json for every case
    python tests/golden/k6/capture.py --expected   # only re-parse the stored inputs

Each case folder holds what the runner left (k6-summary.json and/or k6-summary-export.json), the
RunMeta the parser was given (meta.json) and the parser's result (expected.json), which
tests/test_k6_parser.py compares byte for byte.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))  # tests/: the shared stub helpers

from ci_perf.auth import Auth  # noqa: E402
from ci_perf.model import RunMeta  # noqa: E402
from ci_perf.parsers.k6 import parse_k6  # noqa: E402
from ci_perf.runners.base import RunArtifacts, RunSpec  # noqa: E402
from ci_perf.runners.k6 import run_k6  # noqa: E402
from ci_perf.scenarios.catalog import get_scenario  # noqa: E402
from conftest import start_stub  # noqa: E402

INPUTS = ("k6-summary.json", "k6-summary-export.json", "k6.stderr.log")  # stderr: the failure texts


@dataclass(frozen=True)
class Case:
    name: str
    scenario: str
    users: int
    duration_s: int
    stub_args: tuple[str, ...] = ()
    user_script: bool = False


CASES = (
    Case("smoke_test", "smoke_test", 1, 6),
    Case("rate_limit_test", "rate_limit_test", 5, 5, ("--rate-limit", "50")),
    Case("spike_test", "spike_test", 10, 8),
    Case("concurrent_failures", "concurrent_operations", 4, 5, ("--fail-rate", "0.1")),
    Case("user_script", "smoke_test", 2, 4, user_script=True),
    Case("outage", "smoke_test", 2, 5, ("--fail-registrations", "--deny-all")),  # SARK failing closed
)


def capture(case: Case, folder: Path) -> None:
    proc, url = start_stub("--api-key", "test-key", *case.stub_args)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            scenario = get_scenario(case.scenario).with_load(users=case.users, duration_s=case.duration_s)
            spec = RunSpec(
                scenario=scenario,
                host=url,
                raw_dir=Path(tmp),
                auth=Auth(api_key="test-key"),
                window_s=2.0,
                script=HERE / "user_script.js" if case.user_script else None,
                progress=lambda p: None,
            )
            artifacts = run_k6(spec)
            folder.mkdir(parents=True, exist_ok=True)
            for name in INPUTS:
                (folder / name).unlink(missing_ok=True)
                if (Path(tmp) / name).is_file() and not (case.user_script and name != "k6-summary-export.json"):
                    lines = (Path(tmp) / name).read_text().splitlines(keepends=True)
                    if name.endswith(".log"):  # only what the parser reads
                        lines = [line for line in lines if "ci-perf failure" in line]
                    (folder / name).write_text("".join(lines))
    finally:
        proc.terminate()
        proc.wait(10)
    meta = RunMeta(
        scenario=scenario.name,
        tool="k6",
        tool_version=artifacts.tool_version,
        users=scenario.users,
        spawn_rate=scenario.spawn_rate,
        duration_s=float(scenario.duration_s),
        host="http://sark-stub",
        started_at=artifacts.started_at,
        window_s=2.0,
    )
    (folder / "meta.json").write_text(json.dumps(asdict(meta), indent=2) + "\n")


def artifacts_for(folder: Path) -> RunArtifacts:
    roles = ("k6_summary", "k6_summary_export", "stderr")
    files = {role: folder / name for role, name in zip(roles, INPUTS, strict=True) if (folder / name).is_file()}
    return RunArtifacts(tool="k6", tool_version="1.1.0", started_at="", exit_code=0, files=files)


def expected_text(folder: Path) -> str:
    meta = RunMeta(**json.loads((folder / "meta.json").read_text()))
    result = parse_k6(artifacts_for(folder), meta)
    return json.dumps(result.to_dict(), indent=2, sort_keys=True) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--expected", action="store_true", help="only regenerate expected.json from stored inputs")
    args = p.parse_args()
    for case in CASES:
        folder = HERE / case.name
        if not args.expected:
            print(f"capturing {case.name} ({case.duration_s}s of k6)", flush=True)
            capture(case, folder)
        (folder / "expected.json").write_text(expected_text(folder))
    print(f"golden files written under {HERE}")


if __name__ == "__main__":
    main()
