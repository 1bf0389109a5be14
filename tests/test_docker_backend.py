"""The docker backend against a real engine and the images of scripts/build-test-images.

Skipped when no engine is reachable or the test images are missing, unless CI_PERF_REQUIRE_DOCKER=1
(set by scripts/test once it has built them): then the skip is a failure, so CI cannot pass by skipping.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from ci_perf.errors import CiPerfError, ConfigError, ServiceError
from ci_perf.services.base import LABEL, StackConfig, new_run_id
from ci_perf.services.docker_spec import DEMO_IMAGE, SERVICE_LABEL
from stack_helpers import headers, sark_wiring

pytestmark = pytest.mark.docker

DB_IMAGE = "ci-perf-test/timescaledb:pg15"
REDIS_IMAGE = "ci-perf-test/redis:7"
TEST_IMAGES = (DB_IMAGE, REDIS_IMAGE, DEMO_IMAGE)
API_KEY = "docker-test-key"


def _unavailable() -> str | None:
    try:
        import docker

        client = docker.from_env()
        client.ping()
    except Exception as e:
        return f"no Docker engine reachable ({type(e).__name__}); start dockerd"
    try:
        missing = [name for name in TEST_IMAGES if not client.images.list(name=name)]
    finally:
        client.close()
    return f"test images missing: {', '.join(missing)}; run scripts/build-test-images" if missing else None


@pytest.fixture(scope="module")
def engine() -> Iterator[Any]:
    problem = _unavailable()
    if problem:
        if os.environ.get("CI_PERF_REQUIRE_DOCKER") == "1":
            pytest.fail(f"CI_PERF_REQUIRE_DOCKER=1 but {problem}")
        pytest.skip(problem)
    import docker

    client = docker.from_env()
    yield client
    client.close()


@pytest.fixture
def cfg(tmp_path: Path, engine: Any) -> StackConfig:
    return StackConfig(
        backend="docker",
        log_dir=tmp_path / "logs",
        **sark_wiring(db_image=DB_IMAGE, redis_image=REDIS_IMAGE, api_key=API_KEY, health_timeout_s=60),
    )


def assert_nothing_left(client: Any, run_id: str) -> None:
    selector = {"label": f"{LABEL}={run_id}"}
    assert client.containers.list(all=True, filters=selector) == []
    assert client.networks.list(filters=selector) == []
    ps = subprocess.run(
        ["docker", "ps", "-a", "-q", "--filter", f"label={LABEL}={run_id}"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert ps.stdout.strip() == ""


def up_expecting(cfg: StackConfig, error: type[CiPerfError]) -> CiPerfError:
    from ci_perf.services.docker import DockerStack

    stack = DockerStack(cfg)
    try:
        with pytest.raises(error) as info:
            stack.up()
    finally:
        stack.down()  # idempotent after the teardown up() did itself; a stack that came up goes too
    return info.value


@pytest.mark.parametrize("network", ["host", "bridge"])
def test_full_stack_serves_health_and_authenticated_calls(engine: Any, cfg: StackConfig, network: str) -> None:
    from ci_perf.services.docker import DockerStack

    cfg = replace(
        cfg,
        docker_network=network,  # type: ignore[arg-type]
        migrate_command="python -m ci_perf.demo migrate",
        seed_command="python -c \"import os; print('seeding', os.environ['REDIS_HOST'], os.environ['REDIS_URL'])\"",
    )
    stack = DockerStack(cfg)
    info = stack.up()
    try:
        assert info.base_url.startswith("http://127.0.0.1:") and info.run_id == cfg.run_id
        assert requests.get(info.base_url + "/health/", timeout=5).status_code == 200
        listed = requests.get(info.base_url + "/api/v1/servers/", headers=headers(), timeout=5)
        assert listed.status_code == 200 and "items" in listed.json()
        assert requests.get(info.base_url + "/api/v1/servers/", timeout=5).status_code == 401
        labelled = engine.containers.list(filters={"label": f"{LABEL}={cfg.run_id}"})
        assert {c.labels[SERVICE_LABEL] for c in labelled} == {"db", "redis", "opa", "api"}
        if network == "bridge":
            assert len(engine.networks.list(filters={"label": f"{LABEL}={cfg.run_id}"})) == 1
    finally:
        stack.down()
    stack.down()
    assert_nothing_left(engine, cfg.run_id)
    logs = {p.name: p.read_text() for p in cfg.log_dir.iterdir()}
    assert set(logs) == {"db.log", "redis.log", "opa.log", "api.log", "migrate.log", "seed.log"}
    assert "ready to accept connections" in logs["db.log"]
    assert "schema ready" in logs["migrate.log"] and "redis://" in logs["seed.log"]


def test_api_that_exits_at_once_fails_with_its_log(engine: Any, cfg: StackConfig) -> None:
    cfg = replace(cfg, api_image=DEMO_IMAGE, api_command="sh -c 'echo api-boom-marker >&2; exit 3'")
    message = str(up_expecting(cfg, ServiceError))
    assert "api" in message and "exited before becoming healthy" in message
    assert "api-boom-marker" in message
    assert "api-boom-marker" in (cfg.log_dir / "api.log").read_text()
    assert_nothing_left(engine, cfg.run_id)


def test_health_path_that_never_answers_200_times_out(engine: Any, cfg: StackConfig) -> None:
    # 10 s: long enough for PostgreSQL's first start, short enough for a test.
    cfg = replace(
        cfg,
        api_image=DEMO_IMAGE,
        api_command="python -m http.server --bind {host} {port}",
        health_path="/never-200",
        health_timeout_s=10,
    )
    message = str(up_expecting(cfg, ServiceError))
    assert message.startswith("api (") and "did not become healthy within 10s" in message
    assert "/never-200" in message  # http.server logs each 404 it answered
    assert_nothing_left(engine, cfg.run_id)


def test_failing_migration_fails_with_its_log(engine: Any, cfg: StackConfig) -> None:
    cfg = replace(cfg, migrate_command="echo migration-marker; exit 7")
    message = str(up_expecting(cfg, ServiceError))
    assert "migrate command" in message and "exit code 7" in message and "migration-marker" in message
    assert (cfg.log_dir / "migrate.log").read_text().strip() == "migration-marker"
    assert_nothing_left(engine, cfg.run_id)


@pytest.mark.parametrize("field", ["db_image", "redis_image", "api_image"])
def test_missing_image_is_one_clear_line(engine: Any, cfg: StackConfig, field: str) -> None:
    image = f"ci-perf-test/does-not-exist-{new_run_id()}:1"
    changes: dict[str, Any] = {field: image}
    error = up_expecting(replace(cfg, **changes), CiPerfError)
    assert isinstance(error, ConfigError | ServiceError)  # not found vs. registry unreachable
    message = str(error)
    assert "\n" not in message and image in message
    assert f"--{field.replace('_', '-')}" in message
    assert_nothing_left(engine, cfg.run_id)


def test_cleanup_by_run_id_and_all(engine: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from ci_perf.services import docker as backend

    # "All" must not touch the runs of other people on this engine: give this test its own label key.
    key = f"ci-perf-test.run-id-{new_run_id()}"
    monkeypatch.setattr(backend, "LABEL", key)
    run_a, run_b = new_run_id(), new_run_id()
    for run in (run_a, run_a, run_b):
        engine.containers.create(REDIS_IMAGE, ["sleep", "300"], labels={key: run})
    engine.networks.create(f"ci-perf-{run_a}", labels={key: run_a})

    removed = backend.cleanup_docker(run_a).removed
    assert len([r for r in removed if r.startswith("container ")]) == 2
    assert removed[-1] == f"network ci-perf-{run_a}"
    assert engine.containers.list(all=True, filters={"label": f"{key}={run_a}"}) == []
    assert len(engine.containers.list(all=True, filters={"label": f"{key}={run_b}"})) == 1

    assert len(backend.cleanup_docker(None).removed) == 1
    assert engine.containers.list(all=True, filters={"label": key}) == []
    assert backend.cleanup_docker(None).removed == []


@contextmanager
def squatter() -> Iterator[int]:
    """Something else on a loopback port that answers 200 to everything, health checks included."""

    class Ok(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Ok)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_taken_api_port_is_refused_before_anything_starts(engine: Any, cfg: StackConfig) -> None:
    """Host networking, the API's port held by another process: one line naming the port and its holder,
    exit 3 (the machine's state), and no container started (issue 14 item 6)."""
    with squatter() as port:
        error = up_expecting(replace(cfg, api_port=port), ServiceError)
    message = str(error)
    assert message.startswith(f"api_port: port {port} on 127.0.0.1 is already in use by pid {os.getpid()}")
    assert "\n" not in message and error.exit_code == 3
    assert not cfg.log_dir.exists()  # nothing started, so no log saved
    assert_nothing_left(engine, cfg.run_id)


def test_a_health_answer_not_from_our_container_is_refused(
    engine: Any, cfg: StackConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The port taken after the check (a race, or a check that cannot see it): the health check passes
    against the holder, but the answer must come from the container we started."""
    from ci_perf.services import docker as backend

    monkeypatch.setattr(backend.net, "ensure_port_free", lambda *args: None)  # as if taken just after it
    with squatter() as port:
        message = str(up_expecting(replace(cfg, api_port=port), ServiceError))
    assert message.startswith(f"api ({DEMO_IMAGE}): something else answers on 127.0.0.1:{port} (pid {os.getpid()}")
    assert "not the container ci-perf started" in message
    assert_nothing_left(engine, cfg.run_id)


def test_a_stack_removed_during_the_load_is_an_infra_error(engine: Any, tmp_path: Path) -> None:
    """Another job's `ci-perf down --all` left this live run alone (its owner label names a live ci-perf);
    its containers removed anyway, the run ends with exit 3 and says the stack went away, instead of
    reporting the failed requests as a threshold failure (issue 14 item 7)."""
    from ci_perf.services.docker import OWNER_LABEL, cleanup_docker

    env = {**os.environ, "CI_PERF_STATE_DIR": str(tmp_path / "state")}
    argv = [sys.executable, "-m", "ci_perf", "run", "--backend", "docker", "--db-image", DB_IMAGE, "--redis-image",
            REDIS_IMAGE, "--users", "2", "--duration", "40s", "--report-dir", str(tmp_path / "reports")]  # fmt: skip
    with (tmp_path / "run.log").open("w") as log:
        run = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 180
        while not list((tmp_path / "state").glob("*.locust.json")) and time.monotonic() < deadline:
            assert run.poll() is None, (tmp_path / "run.log").read_text()[-3000:]
            time.sleep(0.5)
        run_id = next((tmp_path / "state").glob("*.locust.json")).name.split(".")[0]
        containers = engine.containers.list(filters={"label": f"{LABEL}={run_id}"})
        assert {json.loads(c.labels[OWNER_LABEL])["pid"] for c in containers} == {run.pid}
        left_alone = cleanup_docker(run_id)  # as `ci-perf down --run-id` from another job, without --force
        assert left_alone.removed == [] and "is still running" in left_alone.skipped[run_id]
        for container in containers:  # as a forced down, or anything else that removes them
            container.remove(force=True)
        assert run.wait(120) == 3
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
        cleanup_docker(run_id, force=True)
    out = (tmp_path / "run.log").read_text()
    assert "ci-perf: error: the stack went away during the load: container ci-perf-" in out, out[-3000:]
    assert "was removed" in out
    assert json.loads((tmp_path / "reports" / "results.json").read_text())["infra"]["stage"] == "stack"
    assert_nothing_left(engine, run_id)
