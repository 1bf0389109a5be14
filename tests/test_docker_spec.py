"""The docker backend's wiring as data (ports, commands, env, URLs): no engine needed."""

from __future__ import annotations

from pathlib import Path

from ci_perf.services.base import LABEL, StackConfig
from ci_perf.services.docker_spec import (
    SERVICE_LABEL,
    api_spec,
    db_spec,
    job_spec,
    labels,
    redis_spec,
    stack_info,
)


def config(**kw: object) -> StackConfig:
    return StackConfig(backend="docker", log_dir=Path("/tmp/logs"), run_id="r1", api_key="k", **kw)  # type: ignore[arg-type]


def test_host_mode_puts_every_service_on_its_own_loopback_port() -> None:
    cfg = config(db_password="p@ss/word")
    db, redis = db_spec(cfg, timescaledb=False), redis_spec(cfg)
    api = api_spec(cfg, "demo:1", None, db, redis)
    assert db.port == db.host_port and redis.port == redis.host_port and api.port == api.host_port
    assert len({db.port, redis.port, api.port}) == 3
    assert f"port={db.port}" in (db.command or []) and "listen_addresses=127.0.0.1" in (db.command or [])
    assert (redis.command or [])[-2:] == ["--bind", "127.0.0.1"]
    assert api.command == ["python", "-m", "ci_perf.demo", "--host", "127.0.0.1", "--port", str(api.port)]
    assert api.env["DATABASE_URL"] == f"postgresql://sark:p%40ss%2Fword@127.0.0.1:{db.port}/sark"
    assert api.env["REDIS_URL"] == f"redis://127.0.0.1:{redis.port}/0" and api.env["SARK_API_KEY"] == "k"


def test_bridge_mode_uses_container_names_inside_and_published_ports_outside() -> None:
    cfg = config(docker_network="bridge", api_port=18080)
    db, redis = db_spec(cfg, timescaledb=False), redis_spec(cfg)
    api = api_spec(cfg, "demo:1", None, db, redis)
    assert (db.port, redis.port, api.port, api.host_port) == (5432, 6379, 8000, 18080)
    assert api.env["DATABASE_URL"].endswith("@ci-perf-r1-db:5432/sark")
    assert api.env["REDIS_URL"] == "redis://ci-perf-r1-redis:6379/0"
    info = stack_info(cfg, db, redis, api)
    assert info.base_url == "http://127.0.0.1:18080" and f"127.0.0.1:{db.host_port}/" in info.database_url


def test_timescaledb_images_keep_their_own_preload() -> None:
    assert "shared_preload_libraries=timescaledb,pg_stat_statements" in (db_spec(config(), True).command or [])
    assert "shared_preload_libraries=pg_stat_statements" in (db_spec(config(), False).command or [])


def test_user_image_listens_where_it_exposes_unless_given_a_command() -> None:
    cfg = config(api_image="sark:1", api_env={"LOG_LEVEL": "debug"})
    db, redis = db_spec(cfg, False), redis_spec(cfg)
    fixed = api_spec(cfg, "sark:1", 9000, db, redis)
    assert fixed.command is None and fixed.port == 9000 and fixed.env["LOG_LEVEL"] == "debug"
    cmd = config(api_image="sark:1", api_command="uvicorn app:app --host {host} --port {port}")
    moved = api_spec(cmd, "sark:1", 9000, db, redis)
    assert moved.command == ["uvicorn", "app:app", "--host", "127.0.0.1", "--port", str(moved.port)]


def test_jobs_run_in_the_api_image_with_its_env() -> None:
    cfg = config()
    api = api_spec(cfg, "demo:1", None, db_spec(cfg, False), redis_spec(cfg))
    job = job_spec(api, "migrate", "alembic upgrade head")
    assert job.image == "demo:1" and job.command == ["sh", "-c", "alembic upgrade head"]
    assert job.env == api.env and job.host_port == 0
    assert labels("r1", "migrate") == {LABEL: "r1", SERVICE_LABEL: "migrate"}
