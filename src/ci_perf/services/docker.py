"""The docker backend: PostgreSQL/TimescaleDB, Redis and the API as containers (Docker SDK).

The only module importing `docker`. Every container, network and built image carries the run-id
label, so `cleanup_docker` can remove what a killed run left behind. Any failure in up() tears the
whole stack down (logs saved first) before the error propagates.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import socket
import threading
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import replace
from pathlib import Path
from typing import Any

import docker
import requests
from docker.errors import BuildError, DockerException, ImageNotFound, NotFound
from docker.models.containers import Container
from docker.models.images import Image
from docker.models.networks import Network
from docker.utils import parse_repository_tag

from ci_perf import net
from ci_perf.errors import ConfigError, ServiceError
from ci_perf.services import dbsetup, demo_image, procs
from ci_perf.services import docker_spec as spec_
from ci_perf.services import placeholders as ph
from ci_perf.services.base import LABEL, StackConfig, StackInfo, _tail, register, wait_until
from ci_perf.services.docker_spec import ContainerSpec

# The SDK reports a vanished engine as a requests error, not a DockerException.
ENGINE_ERRORS: tuple[type[Exception], ...] = (DockerException, requests.exceptions.ConnectionError)
JOB_TIMEOUT_S = 600.0  # migrate/seed commands may legitimately take minutes
STOP_TIMEOUT_S = 3
OBSERVED = {"db": "postgres", "redis": "redis", "api": "api"}
OWNER_LABEL = "ci-perf.owner"  # the ci-perf that started the container: procs.owner() as JSON


def connect() -> docker.DockerClient:
    try:
        client = docker.from_env()
        client.ping()
    except DockerException as e:
        raise ServiceError(
            f"cannot reach the Docker engine ({_first_line(e)}); start dockerd or use --backend local"
        ) from None
    return client


def _first_line(e: BaseException, limit: int = 300) -> str:
    text = str(getattr(e, "explanation", None) or e).strip()
    return (text.splitlines() or [""])[0][:limit]


def _logs(container: Container) -> str:
    try:
        return bytes(container.logs(stdout=True, stderr=True)).decode("utf-8", "replace")
    except DockerException:
        return ""


def _running(container: Container) -> bool:
    try:
        container.reload()
    except NotFound:
        return False
    return container.status in ("created", "running")


def _state(container: Container) -> str:
    """How a container that is no longer running ended."""
    try:
        container.reload()
    except NotFound:
        return "was removed"
    return f"is {container.status} (exit code {container.attrs.get('State', {}).get('ExitCode')})"


def _listens(container: Container, port: int) -> bool:
    """Whether the socket listening on the host's `port` is the container's (host networking: one table).
    Its processes' sockets are read inside it; an image without sh and ls is judged by its being alive
    with no bind error in its log."""
    inodes = net.listening_inodes(port)
    if not inodes:
        return True  # not visible from here (another network namespace): the health check must do
    with contextlib.suppress(DockerException):
        _, output = container.exec_run(["sh", "-c", "ls -l /proc/[0-9]*/fd/ 2>/dev/null"])
        listing = bytes(output or b"").decode("utf-8", "replace")
        if " -> " in listing:  # we could read its fds: the answer is decisive
            return bool(net.inodes_in(listing) & inodes)
    return _running(container) and "address already in use" not in _logs(container).lower()


def _exposed_port(image: Image) -> int | None:
    ports = (image.attrs.get("Config") or {}).get("ExposedPorts") or {}
    tcp = sorted(int(p.split("/")[0]) for p in ports if p.endswith("/tcp"))
    return tcp[0] if tcp else None


def _healthy(port: int, health: str) -> bool:
    if health == "tcp":
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return True
    return requests.get(f"http://127.0.0.1:{port}{health}", timeout=2).status_code == 200


def _redis_ping(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        s.sendall(b"PING\r\n")
        return s.recv(64).startswith(b"+PONG")


@register("docker")
class DockerStack:
    def __init__(self, config: StackConfig) -> None:
        self.cfg = config
        self._client: docker.DockerClient | None = None
        self._network: Network | None = None
        self._containers: list[tuple[str, Container]] = []
        self._lock = threading.Lock()
        self._demo_lock = threading.Lock()
        self._cancel = threading.Event()  # one service failed: stop waiting for the others

    # -- Stack protocol ------------------------------------------------------------------------------

    def up(self) -> StackInfo:
        try:
            return self._up()
        except ENGINE_ERRORS as e:  # an engine error the steps did not name: still one line
            self.down()
            raise ServiceError(f"docker: {_first_line(e)}") from None
        except BaseException:
            self.down()
            raise

    def down(self) -> None:
        """Stop, save logs, remove; safe to call any number of times."""
        client, self._client = self._client, None
        if client is None:
            return
        self._cancel.set()
        with self._lock:
            containers, self._containers = self._containers, []
        # Teardown must not mask the error that caused it, even if the engine itself went away.
        with contextlib.suppress(*ENGINE_ERRORS, OSError):
            for service, container in reversed(containers):
                self._save_log(service, container)
        with contextlib.suppress(*ENGINE_ERRORS):
            _remove_labelled(client, self.cfg.run_id)  # also catches anything not yet tracked
        self._network = None
        client.close()

    def gone(self) -> list[str]:
        with self._lock:
            containers = list(self._containers)
        return [f"container {c.name} {_state(c)}" for _, c in containers if not _running(c)]

    # -- bring-up ------------------------------------------------------------------------------------

    def _up(self) -> StackInfo:
        cfg = self.cfg
        self._cancel.clear()
        self._client = connect()
        fixed = [("api_port", cfg.api_port), *((f"stack.services.{s.name}.port", s.port) for s in cfg.services)]
        for what, port in fixed:  # before anything starts
            if port:
                net.ensure_port_free(port, what, "choose another port (left out, ci-perf picks a free one)")
        if cfg.docker_network == "bridge":
            self._network = self._client.networks.create(
                spec_.network_name(cfg.run_id), driver="bridge", labels=self._labels("network")
            )
        images = [functools.partial(self._ensure_image, s.image, s.name) for s in cfg.services]
        db, redis, (api_image, exposed), *_ = self._parallel(
            self._start_db, self._start_redis, self._api_image, *images
        )
        ports = {s.name: spec_.service_address(cfg, s) for s in cfg.services}
        api = spec_.api_spec(cfg, api_image, exposed, db, redis, ports)
        values = spec_.stack_values(cfg, db, redis, api.port, ports)
        services = [spec_.service_spec(cfg, s, ports[s.name], values) for s in cfg.services]
        if services:  # after the databases, before the API; in parallel with each other
            self._parallel(*(functools.partial(self._start_service, s) for s in services))
        secret = sorted(ph.secret_names(cfg))
        if cfg.migrate_command:
            self._job(spec_.job_spec(api, "migrate", cfg.migrate_command, values, secret))
        # An image's own CMD listens where it EXPOSEs, known only now: it must be free too.
        net.ensure_port_free(api.host_port, "the API", "use docker_network: bridge (ci-perf then publishes it "
                             "on a free port), or --api-command with {port}")  # fmt: skip
        container = self._run(api)
        url = f"http://127.0.0.1:{api.host_port}{cfg.health_path}"
        self._wait(api, container, lambda: requests.get(url, timeout=2).status_code == 200)
        if cfg.seed_command:
            self._job(spec_.job_spec(api, "seed", cfg.seed_command, values, secret))
        observed = {**OBSERVED, **{s.name: s.name for s in cfg.services}}
        with self._lock:
            # Named as the local backend names its processes, for the system sampler.
            containers = {observed[s]: c.id for s, c in self._containers if s in observed}
        return replace(spec_.stack_info(cfg, db, redis, api), containers=containers)

    def _parallel(self, *tasks: Callable[[], Any]) -> list[Any]:
        """Run the tasks at once; on the first failure cancel the waits of the others and re-raise it."""
        with ThreadPoolExecutor(len(tasks)) as pool:
            futures: list[Future[Any]] = [pool.submit(t) for t in tasks]
            try:
                done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            except BaseException:  # Ctrl-C / SIGTERM: let the workers' waits end now, not at their timeout
                self._cancel.set()
                raise
            failed = [f for f in futures if f in done and f.exception() is not None]
            if failed:
                self._cancel.set()
                wait(futures)  # no container may be created after we start tearing down
                error = failed[0].exception()
                assert error is not None
                raise error
        return [f.result() for f in futures]

    def _start_db(self) -> ContainerSpec:
        self._ensure_image(self.cfg.db_image, "db")
        timescaledb = self._has_timescaledb(self.cfg.db_image)
        spec = spec_.db_spec(self.cfg, timescaledb)
        container = self._run(spec)
        # TCP, not the socket: the official entrypoint's init-time server listens on the socket only.
        argv = ["pg_isready", "-q", "-h", "127.0.0.1", "-p", str(spec.port), "-U", self.cfg.db_user]
        self._wait(spec, container, lambda: container.exec_run([*argv, "-d", self.cfg.db_name]).exit_code == 0)
        if self.cfg.databases:
            self._create_databases(container, timescaledb)
        return spec

    def _create_databases(self, container: Container, timescaledb: bool) -> None:
        """The extra databases, by psql inside the db container; the SQL (it may hold a password) goes
        through the exec's environment and stdin, not its argv."""
        sql = dbsetup.extra_databases_sql(self.cfg, timescaledb)
        script = 'printf "%s" "$CI_PERF_SQL" | psql -X -q -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d "$POSTGRES_DB"'
        code, output = container.exec_run(["sh", "-c", script], environment={"CI_PERF_SQL": sql})
        if code != 0:
            text = bytes(output or b"").decode("utf-8", "replace").strip()
            raise ServiceError(f"db: creating the extra databases failed (exit {code}): {_tail(text, 20)}")

    def _start_service(self, spec: ContainerSpec) -> None:
        container = self._run(spec)
        check = functools.partial(_healthy, spec.host_port, spec.health)
        self._wait(spec, container, check)

    def _start_redis(self) -> ContainerSpec:
        self._ensure_image(self.cfg.redis_image, "redis")
        spec = spec_.redis_spec(self.cfg)
        container = self._run(spec)
        self._wait(spec, container, lambda: _redis_ping(spec.host_port))
        return spec

    def _has_timescaledb(self, image: str) -> bool:
        """Official timescaledb images ship the library; the plain-PostgreSQL stand-ins do not."""
        probe = "ls /usr/local/lib/postgresql/timescaledb*.so /usr/lib/postgresql/*/lib/timescaledb*.so"
        try:
            self._docker().containers.run(
                image,
                ["-c", probe + " >/dev/null 2>&1"],
                entrypoint=["sh"],
                remove=True,
                labels=self._labels("db-probe"),
                network_mode="none",
            )
        except DockerException:
            return False
        return True

    def _api_image(self) -> tuple[str, int | None]:
        if self.cfg.api_build_context:
            image = self._build(Path(self.cfg.api_build_context))
        else:
            image = self._ensure_image(self.cfg.api_image or spec_.DEMO_IMAGE, "api")
        return (image.tags[0] if image.tags else image.id), _exposed_port(image)

    def _build(self, context: Path, tag: str = "", dockerfile: str | None = None,
               buildargs: dict[str, str] | None = None, labels: dict[str, str] | None = None) -> Image:  # fmt: skip
        if not context.is_dir():
            raise ConfigError(f"--api-build-context {context} is not a folder")
        # One tag per context folder: reruns reuse the layer cache instead of piling up images.
        tag = tag or "ci-perf-build/api:" + hashlib.sha256(str(context.resolve()).encode()).hexdigest()[:12]
        log = self.cfg.log_dir / "api-build.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        try:
            image, output = self._docker().images.build(
                path=str(context),
                tag=tag,
                dockerfile=dockerfile,
                buildargs=buildargs,
                labels=spec_.labels(self.cfg.run_id, "api") if labels is None else labels,
                network_mode="host",
                rm=True,
                forcerm=True,
            )
        except BuildError as e:
            text = "".join(str(chunk.get("stream", chunk.get("error", ""))) for chunk in e.build_log)
            log.write_text(text)
            raise ServiceError(f"docker build of {context} failed: {e.msg}\n{_tail(text, 50)}") from None
        log.write_text("".join(str(chunk.get("stream", "")) for chunk in output))
        return image

    def _build_demo(self) -> Image:
        """DEMO_IMAGE (the API and the sark preset's opa stand-in) as it is, unless it is missing, or
        was built by ci-perf from other sources than this one's: then dockerfiles/demo-api.Dockerfile."""
        env = os.environ
        with self._demo_lock:  # the API and the opa service ask for it at the same time
            with contextlib.suppress(ImageNotFound):
                image = self._docker().images.get(spec_.DEMO_IMAGE)
                if not demo_image.stale(image.labels or {}, env):
                    return image
            with demo_image.build_context(env, spec_.DEMO_IMAGE) as (ctx, labels):
                print(f"ci-perf: building the demo API image {spec_.DEMO_IMAGE} from {demo_image.DOCKERFILE}",
                      flush=True)  # fmt: skip
                return self._build(ctx, spec_.DEMO_IMAGE, "Dockerfile", demo_image.build_args(env),
                                   {spec_.SERVICE_LABEL: "api", **labels})  # fmt: skip

    def _ensure_image(self, image: str, service: str) -> Image:
        if image == spec_.DEMO_IMAGE:
            return self._build_demo()
        client = self._docker()
        try:
            return client.images.get(image)
        except ImageNotFound:
            pass
        repo, tag = parse_repository_tag(image)
        try:
            return client.images.pull(repo, tag=tag or "latest")
        except DockerException as e:
            kind = ConfigError if isinstance(e, NotFound) else ServiceError
            raise kind(
                f"{service} image {image!r} is not available locally and cannot be pulled ({_first_line(e)}); "
                "build or load it, or choose another with "
                f"{spec_.IMAGE_FLAGS.get(service, f'stack.services.{service}.image')}"
            ) from None

    # -- containers ----------------------------------------------------------------------------------

    def _labels(self, service: str) -> dict[str, str]:
        """The run id (what `down` finds) and its owner, this ci-perf (what `down --all` leaves alone
        while it lives)."""
        return {**spec_.labels(self.cfg.run_id, service), OWNER_LABEL: json.dumps(procs.owner())}

    def _docker(self) -> docker.DockerClient:
        if self._client is None:
            raise ServiceError("the docker stack was torn down while starting")
        return self._client

    def _run(self, spec: ContainerSpec) -> Container:
        if self._cancel.is_set():
            raise ServiceError(f"start of {spec.service} cancelled")
        net: dict[str, Any] = {"network_mode": "host"}
        if self._network is not None:
            net = {"network": self._network.name}
            if spec.host_port:
                net["ports"] = {f"{spec.port}/tcp": ("127.0.0.1", spec.host_port)}
        try:
            container = self._docker().containers.run(
                spec.image,
                spec.command,
                detach=True,
                environment=spec.env,
                name=spec_.container_name(self.cfg.run_id, spec.service),
                labels=self._labels(spec.service),
                **net,
            )
        except DockerException as e:  # e.g. a missing entrypoint, a port in use
            raise ServiceError(f"{spec.service} ({spec.image}) could not start: {_first_line(e)}") from None
        with self._lock:
            self._containers.append((spec.service, container))
        return container

    def _wait(self, spec: ContainerSpec, container: Container, check: Callable[[], bool]) -> None:
        what = f"{spec.service} ({spec.image})"
        wait_until(
            what,
            check,
            self.cfg.health_timeout_s,
            logs=lambda: _logs(container),
            alive=lambda: not self._cancel.is_set() and _running(container),
        )
        if self.cfg.docker_network == "host" and spec.host_port and not _listens(container, spec.host_port):
            # With host networking a taken port fails our container, and the check passes against its holder.
            held = net.holders(net.listening_inodes(spec.host_port))
            raise ServiceError(
                f"{what}: something else answers on 127.0.0.1:{spec.host_port}{f' ({held})' if held else ''}, "
                "not the container ci-perf started; stop it, or use docker_network: bridge\n"
                f"--- last log lines of {spec.service} ---\n{_tail(_logs(container), 50)}"
            )

    def _job(self, spec: ContainerSpec) -> None:
        container = self._run(spec)
        command = spec.command[-1] if spec.command else ""
        try:
            code = int(container.wait(timeout=JOB_TIMEOUT_S)["StatusCode"])
        except requests.exceptions.RequestException:
            raise ServiceError(
                f"{spec.service} command {command!r} did not finish within {JOB_TIMEOUT_S:.0f}s"
            ) from None
        if code != 0:  # left for down(), which saves its log
            tail = _tail(_logs(container), 50)
            raise ServiceError(
                f"{spec.service} command {command!r} failed with exit code {code}\n"
                f"--- last log lines of {spec.service} ---\n{tail}"
            )
        self._save_log(spec.service, container)
        with self._lock:
            self._containers.remove((spec.service, container))
        with contextlib.suppress(NotFound):
            container.remove(v=True)

    def _save_log(self, service: str, container: Container) -> None:
        with contextlib.suppress(DockerException):  # already gone or exited: the log is what matters
            container.stop(timeout=STOP_TIMEOUT_S)
        self.cfg.log_dir.mkdir(parents=True, exist_ok=True)
        (self.cfg.log_dir / f"{service}.log").write_text(_logs(container))


def _remove_labelled(client: docker.DockerClient, run_id: str | None, force: bool = True) -> procs.Cleanup:
    """Remove the containers and networks of one run (or of every run); unless `force`, leave alone the
    runs whose ci-perf still lives (by their owner label)."""
    selector = {"label": f"{LABEL}={run_id}" if run_id else LABEL}
    containers = client.containers.list(all=True, filters=selector)
    networks = client.networks.list(filters=selector)
    done = procs.Cleanup()
    for labels in [c.labels for c in containers] + [n.attrs.get("Labels") or {} for n in networks]:
        reason = "" if force else procs.live_owner(_owner(labels.get(OWNER_LABEL, "")))
        if reason:
            done.skipped[labels.get(LABEL, "")] = reason
    for container in containers:
        if container.labels.get(LABEL) in done.skipped:
            continue
        try:
            container.remove(force=True, v=True)
            done.removed.append(f"container {container.name}")
        except NotFound:
            pass  # removed meanwhile (auto-remove probe, a parallel down)
    for network in networks:
        if (network.attrs.get("Labels") or {}).get(LABEL) in done.skipped:
            continue
        try:
            network.remove()
            done.removed.append(f"network {network.name}")
        except NotFound:
            pass
    return done


def _owner(text: str) -> object:
    try:
        return json.loads(text)
    except ValueError:
        return None


def cleanup_docker(run_id: str | None, force: bool = False) -> procs.Cleanup:
    """Remove every container and network of one run (or of all runs when run_id is None), except those
    of runs whose ci-perf still lives, unless `force`."""
    client = connect()
    try:
        return _remove_labelled(client, run_id, force)
    finally:
        client.close()
