"""The install step's completeness check: a copy that lost a folder or a data file says so in one line."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"


def selfcheck(src: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(src)}
    return subprocess.run(
        [sys.executable, "-m", "ci_perf.selfcheck"], capture_output=True, text=True, env=env, timeout=60
    )


def copy_without(tmp_path: Path, missing: str) -> Path:
    dest = tmp_path / "src"
    shutil.copytree(SRC / "ci_perf", dest / "ci_perf", ignore=shutil.ignore_patterns("__pycache__"))
    target = dest / "ci_perf" / missing
    shutil.rmtree(target) if target.is_dir() else target.unlink()
    return dest


def test_a_complete_copy_passes(tmp_path: Path) -> None:
    done = selfcheck(SRC)
    assert done.returncode == 0 and done.stderr == "", done.stderr


@pytest.mark.parametrize(
    ("missing", "named"), [("reports", "ci_perf.reports"), ("scenarios/k6_script.js", "k6_script.js")]
)
def test_a_copy_that_lost_a_part_names_it_in_one_line(tmp_path: Path, missing: str, named: str) -> None:
    done = selfcheck(copy_without(tmp_path, missing))
    assert done.returncode == 3
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and named in lines[0] and ".gitignore" in lines[0], done.stderr
