"""`ci-perf run --backend local` as a non-root user on a machine where root ran ci-perf before (issue 13):
PostgreSQL runs as that user, run state lives in the user's own folder, and `down --all` leaves root's
runs alone."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from ci_perf.services import procs
from stack_helpers import HAVE_SERVICES, SKIP_REASON

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

USER = "ci-perf-tester"
SRC = Path(__file__).resolve().parent.parent / "src"


def user_python(folder: Path) -> Path:
    """An interpreter the user can run: this suite's venv may sit on an interpreter under root's home, so
    a bare venv of the system python3 that sees the suite's site-packages (same minor version) and these
    sources, with a `locust` beside it as ci-perf looks for one."""
    system = shutil.which("python3", path="/usr/bin:/bin")
    if not system:
        pytest.skip("needs /usr/bin/python3 for the non-root user")
    ours = f"{sys.version_info.major}.{sys.version_info.minor}"
    theirs = subprocess.run(
        [system, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"], capture_output=True, text=True, check=True
    ).stdout.strip()
    if theirs != ours:
        pytest.skip(f"/usr/bin/python3 is {theirs}, the suite's venv {ours}")
    subprocess.run([system, "-m", "venv", "--without-pip", str(folder)], check=True)
    site = next(Path(p) for p in sys.path if p.endswith("site-packages") and Path(p).is_dir())
    (folder / "lib" / f"python{ours}" / "site-packages" / "ci-perf-suite.pth").write_text(f"{SRC}\n{site}\n")
    # redis-py wants the async-timeout backport below 3.11.3 (Debian's 3.11.2); asyncio has it since 3.11.0.
    (folder / "lib" / f"python{ours}" / "site-packages" / "async_timeout.py").write_text(
        "from asyncio import timeout  # noqa: F401\n"
    )
    locust = folder / "bin" / "locust"
    locust.write_text(f"#!{folder}/bin/python\nimport sys\nfrom locust.main import main\nsys.exit(main())\n")
    locust.chmod(0o755)
    folder.chmod(0o755)
    return folder / "bin" / "python"


@pytest.fixture(scope="module")
def shared_tmp() -> Iterator[Path]:
    """A folder the other user can reach (pytest's own are root's alone)."""
    base = Path(tempfile.mkdtemp(prefix="nonroot-suite-"))
    base.chmod(0o755)
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def python(shared_tmp: Path) -> Path:
    return user_python(shared_tmp / "venv")


@pytest.fixture(scope="module")
def user() -> str:
    if os.geteuid() != 0 or not shutil.which("runuser"):
        pytest.skip("needs root and runuser to create and become a non-root user")
    if not HAVE_SERVICES:
        pytest.skip(SKIP_REASON)
    if subprocess.run(["id", "-u", USER], capture_output=True).returncode != 0:
        subprocess.run(["useradd", "--create-home", "--shell", "/bin/bash", USER], check=True)
    return USER


def as_user(user: str, python: Path, *argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    home = Path(f"~{user}").expanduser()
    base = {
        "PATH": f"{python.parent}:/usr/bin:/bin",
        "HOME": str(home),
        "PYTHONPATH": str(SRC),
        "CI_PERF_TEST_SESSION": os.environ.get("CI_PERF_TEST_SESSION", ""),
        "LANG": "C.UTF-8",
    }
    return subprocess.run(
        [
            "runuser",
            "-u",
            user,
            "--",
            "env",
            "-i",
            *(f"{k}={v}" for k, v in {**base, **env}.items()),
            str(python),
            "-m",
            "ci_perf",
            *argv,
        ],
        capture_output=True,
        text=True,
        timeout=240,
    )


def test_non_root_user_runs_the_local_stack_after_root(user: str, python: Path, shared_tmp: Path) -> None:
    # What root leaves behind: its own state folder, and the machine-wide one of older versions.
    procs.state_dir().mkdir(parents=True, exist_ok=True)
    Path("/tmp/ci-perf-runs").mkdir(mode=0o755, exist_ok=True)
    reports = shared_tmp / "reports"
    reports.mkdir()
    shutil.chown(reports, user)
    run = as_user(
        user,
        python,
        "run",
        "--backend",
        "local",
        "--scenario",
        "smoke_test",
        "--users",
        "1",
        "--duration",
        "3s",
        "--report-dir",
        str(reports),
    )
    assert run.returncode in (0, 1), run.stdout[-3000:] + run.stderr[-3000:]  # 1: a threshold, not a crash
    assert "internal error" not in run.stdout + run.stderr
    total = json.loads((reports / "results.json").read_text())["result"]["total"]
    assert total["requests"] > 0 and total["failures"] == 0, total
    uid = int(subprocess.run(["id", "-u", user], capture_output=True, text=True, check=True).stdout)
    assert not list(Path(f"/tmp/ci-perf-runs-{uid}").glob("*.json")), "the user's run left its state file"


def test_down_all_leaves_other_users_runs_alone(user: str, python: Path, shared_tmp: Path) -> None:
    shared = shared_tmp / "state"
    shared.mkdir(mode=0o1777)
    shared.chmod(0o1777)
    sleeper = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        roots = shared / "root-run.json"
        roots.write_text(
            json.dumps(
                {
                    "run_id": "root-run",
                    "backend": "local",
                    "temp_dirs": [],
                    "processes": [{"name": "api", "pid": sleeper.pid, "started": procs.start_time(sleeper.pid)}],
                }
            )
        )
        down = as_user(user, python, "down", "--all", CI_PERF_STATE_DIR=str(shared))
        assert down.returncode == 0, down.stdout + down.stderr
        assert sleeper.poll() is None, "the user's `down --all` killed root's process"
        assert roots.exists()
    finally:
        sleeper.kill()
        sleeper.wait()
