"""Processes the local backend owns: start in their own process group, stop the whole group, and a
small state file per run so that `ci-perf down` can clean up after a run that was killed."""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

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


def ensure_port_free(port: int, what: str) -> None:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers do: TIME_WAIT is not "in use"
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            raise ConfigError(
                f"{what} port {port} is already in use on 127.0.0.1; free it, or use port 0 to pick a free one"
            ) from None


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
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[-1].split()[19]


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
        self.processes.append({"name": proc.name, "pid": proc.popen.pid, "started": proc.started})
        self.save()

    def add_dir(self, path: Path) -> None:
        self.temp_dirs.append(str(path))
        self.save()

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"run_id": self.run_id, "backend": "local", "processes": self.processes,
                                   "temp_dirs": self.temp_dirs, "created": time.time()}))  # fmt: skip
        tmp.replace(self.path)

    def forget(self) -> None:
        with contextlib.suppress(OSError):
            self.path.unlink()


def cleanup_state_file(path: Path) -> list[str]:
    """Kill the process groups and remove the temp dirs a state file lists; then the file itself."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        data = {}
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
