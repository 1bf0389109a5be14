"""The `local` backend: PostgreSQL, Redis and the API as plain processes on 127.0.0.1 (no Docker).

PostgreSQL runs in the foreground (`postgres -D`, not `pg_ctl start`) so that it is our child and
in a process group we own; as root it runs as the `postgres` user, since PostgreSQL refuses root.
"""

from __future__ import annotations

import contextlib
import functools
import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

from ci_perf import net
from ci_perf.errors import ConfigError, ServiceError
from ci_perf.net import free_port
from ci_perf.services import dbsetup, procs
from ci_perf.services import placeholders as ph
from ci_perf.services.base import StackConfig, StackInfo, register, wait_until
from ci_perf.services.placeholders import Address
from ci_perf.services.services_spec import ServiceSpec

PG_TOOLS = ("initdb", "postgres", "pg_isready", "psql")
PG_PACKAGE, REDIS_PACKAGE = "postgresql", "redis-server"  # Debian/Ubuntu packages: any PostgreSQL major
DEBIAN_PG_ROOT = Path("/usr/lib/postgresql")  # one bin folder per installed major
# A throwaway database for load tests: durability buys nothing, speed and stable latency do.
PG_SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "shared_preload_libraries": "pg_stat_statements",
    "max_connections": "200",
    "shared_buffers": "128MB",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "logging_collector": "off",
}
SERVICES = ("postgres", "redis", "api")  # the long-running processes (not initdb, migrate, seed)
LOOPBACK = "127.0.0.1"


# What a process ci-perf starts inherits from ci-perf's own environment: how to find programs, the locale,
# where home and temp are, which Python and CA bundle. Nothing else (no tokens, no CI_PERF_* auth): each
# process gets its own settings on top, as the docker backend's containers do.
_INHERITED = {"PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "TZ", "TMPDIR", "TERM",
              "VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE",
              "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "LD_LIBRARY_PATH"}  # fmt: skip


def base_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k in _INHERITED or k.startswith("LC_")}


@register("local")
class LocalStack:
    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.state = procs.RunState(config.run_id)
        self.processes: list[procs.Proc] = []
        self.temp_dirs: list[Path] = []
        self._watched: list[procs.Proc] = []
        self._down = False

    def up(self) -> StackInfo:
        cfg = self.config
        cfg.log_dir.mkdir(parents=True, exist_ok=True)
        without = [s.name for s in cfg.services if not s.command]
        if without:
            raise ConfigError(
                f"stack.services.{without[0]} has no command, which the local backend runs; "
                "add command: (its image is for --backend docker)"
            )
        for what, port in [("api_port", cfg.api_port)] + [(f"stack.services.{s.name}.port", s.port)
                                                          for s in cfg.services]:  # fmt: skip
            if port:
                net.ensure_port_free(port, what, "choose another port (left out, ci-perf picks a free one)")
        api = Address(LOOPBACK, cfg.api_port or free_port())
        services = {s.name: Address(LOOPBACK, s.port or free_port()) for s in cfg.services}
        try:
            db = Address(LOOPBACK, self._start_postgres())
            redis = Address(LOOPBACK, self._start_redis())
            values = ph.stack_values(cfg, db, redis, api, services)
            self._start_services(values, services)
            env = self._api_env(values, api.port)
            if cfg.migrate_command:
                self._run_step("migrate", cfg.migrate_command, env, values)
            base_url = self._start_api(api.port, env, values)
            if cfg.seed_command:
                self._run_step("seed", cfg.seed_command, {**env, "SARK_BASE_URL": base_url}, values)
        except BaseException:
            self.down()
            raise
        names = {*SERVICES, *services}
        # What must stay up for the load (a service whose shell daemonized and left is not watched).
        self._watched = [p for p in self.processes if p.name in names and p.alive()]
        return StackInfo(
            base_url=base_url,
            database_url=values["database_url"],
            redis_url=values["redis_url"],
            run_id=cfg.run_id,
            pids={p.name: p.popen.pid for p in self.processes if p.name in names},
        )

    def down(self) -> None:
        """Stop everything we started (newest first) and remove our temp dirs; safe to call twice."""
        if self._down:
            return
        self._down = True
        for proc in reversed(self.processes):
            procs.stop(proc)
        for path in self.temp_dirs:
            shutil.rmtree(path, ignore_errors=True)
        self.state.forget()

    def gone(self) -> list[str]:
        return [f"process {p.name} (pid {p.popen.pid}) {_ended(p.popen.returncode)}"
                for p in self._watched if not p.alive()]  # fmt: skip

    def pids(self) -> list[int]:
        return [p.popen.pid for p in self.processes]

    # --- PostgreSQL ---------------------------------------------------------------------------

    def _start_postgres(self) -> int:
        pg_bin = pg_bindir()
        cfg, user = self.config, procs.service_user()
        tmp = self._temp_dir("pg", user)
        data, log, port = tmp / "data", cfg.log_dir / "postgres.log", free_port()
        env = {**base_env(), "LC_ALL": "C.UTF-8"}
        initdb = [str(pg_bin / "initdb"), "-D", str(data), "-U", "postgres", "-E", "UTF8",
                  "--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync"]  # fmt: skip
        code, _ = procs.run_logged("initdb", initdb, log, env, 120, user=user)
        if code != 0:
            raise ServiceError(f"postgres: initdb failed (exit {code})\n{_tail(log)}")
        argv = [str(pg_bin / "postgres"), "-D", str(data), "-p", str(port), "-k", str(tmp)]
        for key, value in PG_SETTINGS.items():
            argv += ["-c", f"{key}={value}"]
        # SIGINT is PostgreSQL's fast shutdown; SIGTERM would wait for every client to leave.
        proc = self._spawn("postgres", argv, log, env, user=user, stop_signal=signal.SIGINT)
        ready = [str(pg_bin / "pg_isready"), "-q", "-h", str(tmp), "-p", str(port)]
        ready_log = tmp / "ready.log"
        self._wait("postgres", proc, lambda: procs.run_logged("pg_isready", ready, ready_log, env, 5)[0] == 0, port)
        psql = [str(pg_bin / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", str(tmp), "-p", str(port),
                "-U", "postgres", "-d", "postgres", "-f", str(self._setup_script(tmp, user))]  # fmt: skip
        code, out = procs.run_logged("psql", psql, log, env, 60, user=user)
        if code != 0:
            raise ServiceError(f"postgres: creating the app's role and databases failed (exit {code})\n{out.strip()}")
        return port

    def _setup_script(self, tmp: Path, user: str | None) -> Path:
        path = tmp / "setup.sql"
        # Holds passwords: a file in our private temp dir, never psql's argv.
        path.write_text(dbsetup.app_sql(self.config) + dbsetup.extra_databases_sql(self.config))
        path.chmod(0o600)
        procs.chown_to(path, user)
        return path

    # --- Redis and the API ----------------------------------------------------------------------

    def _start_redis(self) -> int:
        redis_server = shutil.which("redis-server")
        if not redis_server:
            raise ConfigError(f"redis-server not found on PATH; install it: {apt_install(REDIS_PACKAGE)}")
        tmp, port = self._temp_dir("redis", None), free_port()
        argv = [redis_server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--daemonize", "no", "--dir", str(tmp), "--logfile", ""]  # fmt: skip
        proc = self._spawn("redis", argv, self.config.log_dir / "redis.log", base_env())
        self._wait("redis", proc, lambda: _redis_ping(port), port)
        return port

    def _start_services(self, values: dict[str, str], addresses: dict[str, Address]) -> None:
        """Start every declared service at once, then wait for each (they come up in parallel)."""
        started = [(spec, self._spawn_service(spec, values, addresses[spec.name])) for spec in self.config.services]
        for spec, proc in started:
            port = addresses[spec.name].port
            what = f"service {spec.name} (127.0.0.1:{port}, health {spec.health})"
            self._wait(what, proc, functools.partial(_healthy, port, spec.health), port)

    def _spawn_service(self, spec: ServiceSpec, values: dict[str, str], address: Address) -> procs.Proc:
        own = ph.for_process(values, address.host, address.port)
        where = f"stack.services.{spec.name}"
        command, secret_env = ph.fill_shell(spec.command, own, ph.secret_names(self.config), f"{where}.command")
        env = {**base_env(), "HOST": address.host, "PORT": str(address.port)}
        env.update({**ph.fill_env(spec.env, own, f"{where}.env"), **secret_env})
        return self._spawn(spec.name, ["/bin/sh", "-c", command], self.config.log_dir / f"{spec.name}.log", env)

    def _api_env(self, values: dict[str, str], api_port: int) -> dict[str, str]:
        """What the API (and migrate/seed) get: the generic names, then api_env with placeholders filled."""
        cfg = self.config
        env = {**base_env(), "DATABASE_URL": values["database_url"], "REDIS_URL": values["redis_url"],
               "SARK_API_KEY": cfg.api_key, "HOST": LOOPBACK, "PORT": str(api_port)}  # fmt: skip
        env.update(ph.fill_env(cfg.api_env, ph.for_process(values, LOOPBACK, api_port), "api_env"))
        return env

    def _start_api(self, port: int, env: dict[str, str], values: dict[str, str]) -> str:
        cfg = self.config
        if cfg.api_command:  # a shell command line; placeholders filled in, secrets through the env
            command, secret_env = ph.fill_shell(cfg.api_command, ph.for_process(values, LOOPBACK, port),
                                                ph.secret_names(cfg), "api_command")  # fmt: skip
            argv, env = ["/bin/sh", "-c", command], {**env, **secret_env}
        else:
            argv = [sys.executable, "-m", "ci_perf.demo", "--host", LOOPBACK, "--port", str(port)]
        proc = self._spawn("api", argv, cfg.log_dir / "api.log", env, cwd=Path(cfg.api_dir) if cfg.api_dir else None)
        base_url = f"http://127.0.0.1:{port}"
        self._wait(f"api ({base_url}{cfg.health_path})", proc, lambda: _http_ok(port, cfg.health_path), port)
        return base_url

    def _run_step(self, name: str, command: str, env: dict[str, str], values: dict[str, str]) -> None:
        log = self.config.log_dir / f"{name}.log"
        own = ph.for_process(values, LOOPBACK, int(values["api_port"]))
        filled, secret_env = ph.fill_shell(command, own, ph.secret_names(self.config), f"{name}_command")
        cwd = Path(self.config.api_dir) if self.config.api_dir else None
        code, out = procs.run_logged(name, ["/bin/sh", "-c", filled], log, {**env, **secret_env},
                                     self.config.health_timeout_s, cwd=cwd)  # fmt: skip
        if code != 0:
            raise ServiceError(f"{name} command failed (exit {code}): {command}\n{_tail_text(out)}")

    # --- helpers --------------------------------------------------------------------------------

    def _temp_dir(self, what: str, owner: str | None) -> Path:
        path = Path(tempfile.mkdtemp(prefix=f"ci-perf-{self.config.run_id}-{what}-"))
        self.temp_dirs.append(path)
        self.state.add_dir(path)
        procs.chown_to(path, owner)
        return path

    def _spawn(self, name: str, argv: list[str], log: Path, env: dict[str, str], user: str | None = None,
               stop_signal: int = signal.SIGTERM, cwd: Path | None = None) -> procs.Proc:  # fmt: skip
        proc = procs.spawn(name, argv, log, env, user=user, cwd=cwd, stop_signal=stop_signal)
        self.processes.append(proc)
        self.state.add_process(proc)
        return proc

    def _wait(self, what: str, proc: procs.Proc, check: procs.Check, port: int) -> None:
        """Until `check` passes; then the socket on `port` must be our process's: with the port taken, the
        check would pass against whatever holds it (and the load would test that)."""
        wait_until(what, check, self.config.health_timeout_s, interval_s=0.2, logs=proc.log_text, alive=proc.alive)
        inodes = net.listening_inodes(port)
        ours = [net.socket_inodes(pid) for pid in procs.group_members(proc.popen.pid)]
        if not inodes or all(held is None for held in ours) or any(held & inodes for held in ours if held):
            return  # ours, or not visible from here
        held = net.holders(inodes)
        raise ServiceError(
            f"{what}: something else answers on 127.0.0.1:{port}{f' ({held})' if held else ''}, not the process "
            f"ci-perf started; stop it, or choose another port\n--- last log lines of {proc.name} ---\n"
            f"{_tail(proc.log)}"
        )


def find_pg_bindir() -> Path | None:
    """PostgreSQL's server binaries, any supported major: CI_PERF_PG_BIN, `pg_config --bindir`,
    /usr/lib/postgresql/*/bin newest first (Debian, Ubuntu: GitHub's runners have 16, not 15), PATH."""
    if os.environ.get("CI_PERF_PG_BIN"):
        return Path(os.environ["CI_PERF_PG_BIN"])
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, timeout=10).stdout
            candidates.append(Path(out.strip()))
    majors = DEBIAN_PG_ROOT.glob("*/bin")
    candidates += sorted(majors, key=lambda p: _major(p.parent.name), reverse=True)
    on_path = shutil.which("postgres") or shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).parent)
    return next((c for c in candidates if all((c / tool).exists() for tool in PG_TOOLS)), None)


def pg_bindir() -> Path:
    found = find_pg_bindir()
    if found is None:
        raise ConfigError(
            "PostgreSQL server not found (pg_config --bindir, /usr/lib/postgresql/*/bin, PATH); "
            f"install it: {apt_install(PG_PACKAGE)}, or set CI_PERF_PG_BIN to its bin folder"
        )
    missing = [tool for tool in PG_TOOLS if not (found / tool).exists()]
    if missing:
        raise ConfigError(f"CI_PERF_PG_BIN={found} has no {', '.join(missing)}; point it at PostgreSQL's bin folder")
    return found


def missing_packages() -> list[str]:
    """The packages this backend needs that the machine lacks (the same checks `up` fails on)."""
    missing = [] if find_pg_bindir() else [PG_PACKAGE]
    return missing if shutil.which("redis-server") else [*missing, REDIS_PACKAGE]


def apt_install(package: str) -> str:
    """The command that installs a Debian/Ubuntu package for whoever runs ci-perf."""
    return ("" if os.geteuid() == 0 else "sudo ") + f"apt-get install -y {package}"


def _major(name: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", name)) or (0,)


def cleanup_local(run_id: str | None, force: bool = False) -> procs.Cleanup:
    """Remove what a killed run left behind (one run, or every run when run_id is None); a run whose
    ci-perf is still alive is left alone unless `force`."""
    folder = procs.state_dir()
    if not folder.is_dir():
        return procs.Cleanup()
    # <run_id>.json: the local backend's processes; <run_id>.<part>.json: other parts of the run (tokens,
    # the load tool's processes).
    files = (
        [folder / f"{run_id}.json", *sorted(folder.glob(f"{run_id}.*.json"))]
        if run_id
        else procs.own_state_files(folder)
    )
    return procs.cleanup_runs([path for path in files if path.exists()], force)


def _ended(code: int | None) -> str:
    return f"was killed by signal {-code}" if code is not None and code < 0 else f"exited with code {code}"


def _redis_ping(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
        s.sendall(b"PING\r\n")
        return s.recv(64).startswith(b"+PONG")


def _healthy(port: int, health: str) -> bool:
    if health == "tcp":
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    return _http_ok(port, health)


def _http_ok(port: int, path: str) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", path)
        return conn.getresponse().status == 200
    finally:
        conn.close()


def _tail(log: Path, lines: int = 50) -> str:
    try:
        return _tail_text(log.read_text(errors="replace"), lines)
    except OSError:
        return ""


def _tail_text(text: str, lines: int = 50) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])
