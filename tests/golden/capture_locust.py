"""Regenerate the Locust golden files from real runs of the pinned Locust against tests/sark_stub.py.

    /tmp/venv/bin/python tests/golden/capture_locust.py            # all cases
    /tmp/venv/bin/python tests/golden/capture_locust.py smoke      # some
    /tmp/venv/bin/python tests/golden/capture_locust.py --expected # only re-parse the stored inputs

Each case folder under tests/golden/locust/ gets Locust's own outputs that the parser reads
(locust.json, locust_windows.json), the RunMeta used (meta.json) and what the parser makes of them
(expected.json). tests/test_locust_golden.py parses the inputs again and compares byte for byte.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
GOLDEN = HERE / "locust"
INPUTS = {"locust_json": "locust.json", "windows": "locust_windows.json"}


@dataclass(frozen=True)
class Case:
    scenario: str
    users: int
    duration_s: int
    stub_args: tuple[str, ...] = ()
    processes: int = 1
    window_s: float = 1.0


CASES = {
    "smoke": Case("smoke_test", 4, 4),
    "failures": Case("smoke_test", 4, 4, ("--fail-rate", "0.1")),
    "processes2": Case("smoke_test", 6, 4, processes=2),
    "rate_limit": Case("rate_limit_test", 4, 3, ("--rate-limit", "40")),
    "staged": Case("spike_test", 6, 4),  # stages -> our LoadTestShape
    "outage": Case("smoke_test", 2, 4, ("--fail-registrations", "--deny-all")),  # SARK failing closed
}


def meta_for(case_dir: Path) -> object:
    from ci_perf.model import RunMeta

    return RunMeta(**json.loads((case_dir / "meta.json").read_text()))


def expected_text(case_dir: Path) -> str:
    """What the parser makes of a case's inputs, as the bytes expected.json holds."""
    from ci_perf.model import RunMeta
    from ci_perf.parsers.locust import parse_locust
    from ci_perf.runners.base import RunArtifacts

    meta = meta_for(case_dir)
    assert isinstance(meta, RunMeta)
    files = {role: case_dir / name for role, name in INPUTS.items()}
    artifacts = RunArtifacts("locust", meta.tool_version, meta.started_at, 0, files)
    return json.dumps(parse_locust(artifacts, meta).to_dict(), indent=1, sort_keys=True) + "\n"


def capture(name: str, case: Case) -> None:
    sys.path.insert(0, str(HERE.parent))
    from ci_perf.auth import Auth
    from ci_perf.model import RunMeta
    from ci_perf.runners.base import RunSpec
    from ci_perf.runners.locust import run_locust
    from ci_perf.scenarios.catalog import get_scenario
    from conftest import start_stub

    scenario = get_scenario(case.scenario).with_load(
        users=case.users, spawn_rate=case.users, duration_s=case.duration_s
    )
    proc, url = start_stub("--api-key", "test-key", *case.stub_args)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            spec = RunSpec(
                scenario, url, Path(tmp), Auth(api_key="test-key"), window_s=case.window_s, processes=case.processes
            )
            artifacts = run_locust(spec)
            out = GOLDEN / name
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir(parents=True)
            for role, file_name in INPUTS.items():
                shutil.copyfile(artifacts.files[role], out / file_name)
    finally:
        proc.terminate()
        proc.wait(10)
    meta = RunMeta(
        case.scenario,
        "locust",
        artifacts.tool_version,
        case.users,
        float(case.users),
        float(case.duration_s),
        "http://127.0.0.1:8000",
        "2026-01-01T00:00:00+00:00",
        case.window_s,
    )
    (out / "meta.json").write_text(json.dumps(asdict(meta), indent=1, sort_keys=True) + "\n")
    (out / "expected.json").write_text(expected_text(out))
    print(f"captured {name}: {out}")


def main(names: list[str]) -> None:
    if names == ["--expected"]:
        for name in CASES:
            (GOLDEN / name / "expected.json").write_text(expected_text(GOLDEN / name))
        return
    for name in names or list(CASES):
        capture(name, CASES[name])


if __name__ == "__main__":
    main(sys.argv[1:])
