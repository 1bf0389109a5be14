"""Distributed Locust: a master and worker processes, on this machine or spread over several hosts.

`--workers N` starts a headless master bound to 127.0.0.1 on a free port plus N `--worker` processes,
each in its own process group so that all of them are torn down on every way out. `--master
--expect-workers N` runs only the master (bound to every interface, like Locust's default) and waits for
remote workers, which `ci-perf worker --master-host H` starts. The master writes the json and our
windows file; workers ship their windows to it (locust_plugin.py).
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

from ci_perf.errors import ConfigError
from ci_perf.runners.base import RunSpec
from ci_perf.services import procs

MASTER_WAIT_S = 60  # local workers that cannot connect within this fail the run instead of hanging it
WORKER_GRACE_S = 10.0


def check_spec(spec: RunSpec) -> None:
    if spec.workers and spec.expect_workers:
        raise ConfigError("use --workers N (workers on this machine) or --master --expect-workers N, not both")
    if (spec.workers or spec.expect_workers) and (spec.processes or 1) > 1:
        raise ConfigError("--processes forks workers itself; use it or --workers / --master, not both")
    if spec.workers < 0 or spec.expect_workers < 0:
        raise ConfigError("the number of Locust workers must be positive")


def master_args(spec: RunSpec, port: int) -> list[str]:
    """Locust master flags; empty when the run is not distributed."""
    if spec.workers:
        return [
            "--master",
            "--expect-workers",
            str(spec.workers),
            "--master-bind-host",
            "127.0.0.1",
            "--master-bind-port",
            str(port),
            "--expect-workers-max-wait",
            str(MASTER_WAIT_S),
        ]
    if spec.expect_workers:
        return ["--master", "--expect-workers", str(spec.expect_workers), "--master-bind-port", str(port)]
    return []


def worker_argv(exe: str, locustfiles: str, master_host: str, master_port: int) -> list[str]:
    return [exe, "-f", locustfiles, "--worker", "--master-host", master_host, "--master-port", str(master_port)]


def start_worker(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[str]:
    """One worker in its own process group, stdout and stderr to its log file."""
    with log.open("w", encoding="utf-8") as out:
        return subprocess.Popen(
            argv,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
            preexec_fn=procs.pdeathsig(signal.SIGKILL),  # goes when ci-perf dies, even by SIGKILL
        )


@contextlib.contextmanager
def local_workers(
    argv: list[str], env: dict[str, str], raw_dir: Path, count: int, state: procs.RunState | None = None
) -> Iterator[list[subprocess.Popen[str]]]:
    """Start `count` workers (recorded in `state`); whatever happens in the block, stop every one of
    them afterwards."""
    from ci_perf.runners.locust import stop_group  # a shared helper; imported late to avoid a cycle

    workers: list[subprocess.Popen[str]] = []
    try:
        for i in range(count):
            workers.append(start_worker(argv, env, raw_dir / f"locust-worker-{i + 1}.log"))
            if state is not None:
                state.add_pid(f"locust worker {i + 1}", workers[-1].pid)
        yield workers
    finally:
        for proc in workers:
            stop_group(proc, WORKER_GRACE_S)


def run_worker(spec: RunSpec, master_host: str, master_port: int) -> int:
    """`ci-perf worker`: one Locust worker in the foreground until its master quits; its exit code."""
    from ci_perf.runners.locust import build_env, find_locust, locustfiles, output_files, stop_group

    spec.raw_dir.mkdir(parents=True, exist_ok=True)
    argv = worker_argv(find_locust(), locustfiles(spec), master_host, master_port)
    env = build_env(spec, output_files(spec.raw_dir))
    env.pop("CI_PERF_WINDOWS_FILE", None)  # the master writes it
    proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, text=True, start_new_session=True,
                            preexec_fn=procs.pdeathsig(signal.SIGKILL))  # fmt: skip
    try:
        return proc.wait()
    finally:
        stop_group(proc, WORKER_GRACE_S)  # Ctrl-C / SIGTERM: the worker's group goes too
