"""Processes the local backend owns: start in their own process group, stop the whole group, and a
small state file per run so that `ci-perf down` can clean up after a run that was killed."""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from ci_perf.errors import ConfigError

STOP_WAIT_S = 10.0
Check = Callable[[], bool]


def state_dir() -> Path:
    """Where this user's run state files live: CI_PERF_STATE_DIR, else $XDG_RUNTIME_DIR/ci-perf-runs,
    else /tmp/ci-perf-runs-<uid>. Per user, so that one user's folder never blocks or exposes another's."""
    if os.environ.get("CI_PERF_STATE_DIR"):
        return Path(os.environ["CI_PERF_STATE_DIR"])
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.access(runtime, os.W_OK):
        return Path(runtime) / "ci-perf-runs"
    return Path(f"/tmp/ci-perf-runs-{os.geteuid()}")


def own_state_files(folder: Path) -> list[Path]:
    """The state files in `folder` that belong to the caller: `down --all` never reaches another user's runs
    (a shared CI_PERF_STATE_DIR included)."""
    uid = os.geteuid()
    return sorted(p for p in folder.glob("*.json") if _owner(p) == uid)


def _owner(path: Path) -> int | None:
    try:
        return path.stat().st_uid
    except OSError:
        return None


def service_user() -> str | None:
    """The user PostgreSQL runs as: `postgres` when we are root (it refuses root), else ourselves."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise ConfigError("as root, PostgreSQL needs a 'postgres' system user (apt install postgresql)") from None
    return "postgres"


def chown_to(path: Path, user: str | None) -> None:
    if user:
        entry = pwd.getpwnam(user)
        os.chown(path, entry.pw_uid, entry.pw_gid)


def start_time(pid: int) -> str:
    """The kernel's start time of a process (Linux), so a reused pid is never mistaken for ours."""
    fields = _stat(pid)
    return fields[19] if len(fields) > 19 else ""


def _stat(pid: int) -> list[str]:
    """/proc/<pid>/stat from its state on (the name in parentheses may hold spaces); empty when gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()
    except OSError:
        return []


def group_members(pgid: int) -> list[int]:
    """The live processes of a process group (ours: each spawn is its own session and group)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat(int(entry.name))
            if len(fields) > 2 and fields[0] != "Z" and fields[2] == str(pgid):
                found.append(int(entry.name))
    return found


def children(pid: int) -> list[int]:
    """The direct children of a process (Locust's forked workers)."""
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return []
    found: list[int] = []
    for task in tasks:
        with contextlib.suppress(OSError, ValueError):
            found += [int(c) for c in (task / "children").read_text().split()]
    return found


@cache
def _namespace() -> str:
    """Where a pid means something: this boot and this pid namespace."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        return f"{boot}/{os.readlink('/proc/self/ns/pid')}"
    except OSError:
        return ""


def owner() -> dict[str, str | int]:
    """This process as the owner of a run: pid, start time and namespace, checked by `live_owner`."""
    pid = os.getpid()
    return {"pid": pid, "started": start_time(pid), "ns": _namespace()}


def live_owner(record: object) -> str:
    """Why `ci-perf down` must leave a run alone: its ci-perf is still running, or it runs where we cannot
    check (another pid namespace or boot). Empty when the owner is gone or was never recorded."""
    if not isinstance(record, dict) or not record.get("pid"):
        return ""
    pid = str(record["pid"])
    if record.get("ns") != _namespace():
        return f"its ci-perf (pid {pid}) runs in another pid namespace, where it cannot be checked from here"
    if pid.isdigit() and start_time(int(pid)) and start_time(int(pid)) == record.get("started"):
        return f"its ci-perf (pid {pid}) is still running"
    return ""


def die_with_parent(parent: int, sig: int = signal.SIGTERM) -> None:
    """In a child: `sig` when its parent dies, even by SIGKILL (Linux PR_SET_PDEATHSIG), so that a load
    tool is never orphaned; and exit now if the parent already died before this ran."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None).prctl(1, sig)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:
        os._exit(1)


def pdeathsig(sig: int = signal.SIGTERM) -> Callable[[], None] | None:
    """The `preexec_fn` giving a child `die_with_parent` with us as the parent (None off Linux)."""
    parent = os.getpid()
    return (lambda: die_with_parent(parent, sig)) if os.path.exists("/proc/self/stat") else None


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    stop_signal: int = signal.SIGTERM
    started: str = ""

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""


def spawn(
    name: str, argv: Sequence[str], log: Path, env: dict[str, str], user: str | None = None, cwd: Path | None = None,
    stop_signal: int = signal.SIGTERM,
) -> Proc:  # fmt: skip
    """Start argv in a new session (its own process group), output appended to `log`."""
    with open(log, "ab") as out:
        popen = subprocess.Popen(
            list(argv), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=cwd,
            start_new_session=True, user=user, group=_group(user),
        )  # fmt: skip
    return Proc(name, popen, log, stop_signal, start_time(popen.pid))


def _group(user: str | None) -> int | None:
    return pwd.getpwnam(user).pw_gid if user else None


def stop(proc: Proc, wait_s: float = STOP_WAIT_S) -> None:
    """Signal the whole group, wait, then SIGKILL the group (children included)."""
    pgid = proc.popen.pid  # start_new_session: the leader's pid is the group id
    if proc.alive():
        _killpg(pgid, proc.stop_signal)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.popen.wait(wait_s)
    _killpg(pgid, signal.SIGKILL)  # stragglers of the group, even if the leader is gone
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.popen.wait(5)


def _killpg(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def run_logged(name: str, argv: Sequence[str], log: Path, env: dict[str, str], timeout_s: float,
               user: str | None = None, cwd: Path | None = None) -> tuple[int, str]:  # fmt: skip
    """Run a short command to completion; returns (exit code, its output), also appended to `log`."""
    try:
        done = subprocess.run(
            list(argv), capture_output=True, env=env, timeout=timeout_s, user=user, group=_group(user),
            stdin=subprocess.DEVNULL, cwd=cwd,
        )  # fmt: skip
        code, output = done.returncode, (done.stdout + done.stderr).decode(errors="replace")
    except subprocess.TimeoutExpired as exc:
        code, output = -1, f"{name} timed out after {timeout_s:.0f}s\n" + _text(exc.stdout) + _text(exc.stderr)
    except OSError as exc:
        code, output = -1, f"{name} could not start: {exc}\n"
    with open(log, "a") as f:
        f.write(f"$ {' '.join(argv)}\n{output}")
    return code, output


def _text(data: bytes | str | None) -> str:
    return data.decode(errors="replace") if isinstance(data, bytes) else (data or "")


@dataclass
class RunState:
    """What one run started, mirrored to <state_dir>/<run_id>.json after every change."""

    run_id: str
    processes: list[dict[str, object]] = field(default_factory=list)
    temp_dirs: list[str] = field(default_factory=list)

    @property
    def path(self) -> Path:
        return state_dir() / f"{self.run_id}.json"

    def add_process(self, proc: Proc) -> None:
        self.add_pid(proc.name, proc.popen.pid, proc.started)

    def add_pid(self, name: str, pid: int, started: str = "") -> None:
        self.processes.append({"name": name, "pid": pid, "started": started or start_time(pid)})
        self.save()

    def add_dir(self, path: Path) -> None:
        self.temp_dirs.append(str(path))
        self.save()

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        # The owner (this ci-perf) lets `down --all` tell a live run of another job from a killed one.
        tmp.write_text(json.dumps({"run_id": self.run_id, "owner": owner(), "processes": self.processes,
                                   "temp_dirs": self.temp_dirs, "created": time.time()}))  # fmt: skip
        tmp.replace(self.path)

    def forget(self) -> None:
        with contextlib.suppress(OSError):
            self.path.unlink()


def read_state(path: Path) -> dict[str, object]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


@contextlib.contextmanager
def run_part(run_id: str, part: str) -> Iterator[RunState | None]:
    """A part of a run's state (<run_id>.<part>.json: a load tool's processes) for the block, so that
    `ci-perf down` finds them after a SIGKILL; removed when the block ends. None without a run id."""
    state = RunState(f"{run_id}.{part}") if run_id else None
    try:
        yield state
    finally:
        if state is not None:
            state.forget()


def cleanup_state_file(path: Path) -> list[str]:
    """Kill the process groups and remove the temp dirs a state file lists; then the file itself."""
    data: dict[str, Any] = read_state(path)
    removed: list[str] = []
    for p in data.get("processes", []):
        pid = int(p.get("pid", 0))
        if pid > 0 and start_time(pid) and start_time(pid) == p.get("started"):
            _killpg(pid, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
            removed.append(f"process {p.get('name')} (pid {pid})")
    for d in data.get("temp_dirs", []):
        if Path(d).exists():
            shutil.rmtree(d, ignore_errors=True)
            removed.append(f"directory {d}")
    with contextlib.suppress(OSError):
        path.unlink()
    return removed


@dataclass
class Cleanup:
    """What `ci-perf down` removed, and the runs it left alone (run id -> why)."""

    removed: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)

    def add(self, other: Cleanup) -> None:
        self.removed += other.removed
        self.skipped.update(other.skipped)


def cleanup_runs(files: list[Path], force: bool) -> Cleanup:
    """Clean up after the runs these state files belong to, except runs whose ci-perf still lives
    (unless `force`): another job's `down --all` must not pull a live run's stack from under it."""
    runs: dict[str, list[Path]] = {}
    for path in files:
        runs.setdefault(path.name.split(".", 1)[0], []).append(path)
    done = Cleanup()
    for run_id, paths in runs.items():
        reason = next((r for r in (live_owner(read_state(p).get("owner")) for p in paths) if r), "")
        if reason and not force:
            done.skipped[run_id] = reason
            continue
        for path in paths:
            done.removed += cleanup_state_file(path)
    return done
