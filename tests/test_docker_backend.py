"""The docker backend against a real engine and the images of scripts/build-test-images.

Skipped when no engine is reachable or the test images are missing, unless CI_PERF_REQUIRE_DOCKER=1
(set by scripts/test once it has built them): then the skip is a failure, so CI cannot pass by skipping.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import replace
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
    with pytest.raises(error) as info:
        stack.up()
    stack.down()  # idempotent after the teardown up() did itself
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
