"""The sampler on the docker backend: one-shot Docker stats per container, PostgreSQL and Redis
through their published ports (images of scripts/build-test-images; skipped without an engine)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import requests

from ci_perf.observe import SystemSampler, targets_for
from ci_perf.services.base import StackConfig
from stack_helpers import headers, sark_wiring
from test_docker_backend import API_KEY, DB_IMAGE, REDIS_IMAGE, engine  # noqa: F401  (the fixture)

pytestmark = pytest.mark.docker


def test_docker_stack_containers_database_and_redis_are_observed(engine: Any, tmp_path: Path) -> None:  # noqa: F811
    from ci_perf.services.docker import DockerStack

    cfg = StackConfig(backend="docker", log_dir=tmp_path / "logs",
                      **sark_wiring(db_image=DB_IMAGE, redis_image=REDIS_IMAGE, api_key=API_KEY,
                                    health_timeout_s=60, docker_network="bridge"))  # fmt: skip
    stack = DockerStack(cfg)
    info = stack.up()
    try:
        assert set(info.containers) == {"postgres", "redis", "opa", "api"}
        with SystemSampler(targets_for(info, {}), interval_s=0.5) as sampler, requests.Session() as http:
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline:
                http.get(info.base_url + "/api/v1/servers/?limit=5", headers=headers(), timeout=5)
    finally:
        stack.down()
    m = sampler.metrics
    assert m is not None
    for name in ("api", "postgres", "redis"):
        series = m.service(name)
        assert series is not None and series.note == "" and len(series.samples) >= 2, (name, series)
        assert all(s.rss_mb and s.rss_mb > 0.5 for s in series.samples), name
        assert series.cpu(), name  # from the second sample on
    assert m.database is not None and m.database.calls >= 100 and m.db_query_ms is not None
    assert m.redis is not None and len(m.redis.samples) >= 2 and m.redis.note == ""
