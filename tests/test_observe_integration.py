"""The sampler against a real local stack: PostgreSQL, Redis and the demo API as processes."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import requests

from ci_perf.observe import SystemSampler, targets_for
from stack_helpers import HAVE_SERVICES, SKIP_REASON, headers, local_stack

pytestmark = [pytest.mark.integration, pytest.mark.skipif(not HAVE_SERVICES, reason=SKIP_REASON)]

SERVER = {"name": "s", "transport": "http", "endpoint": "http://127.0.0.1:9/", "tools": []}
EVALUATION = {"user_id": str(uuid.uuid4()), "action": "tool:invoke", "tool": "t", "parameters": {}}


def test_local_stack_resources_database_and_redis_are_observed(tmp_path: Path) -> None:
    with local_stack(tmp_path) as (_, info):
        assert set(info.pids) == {"postgres", "redis", "opa", "api"}
        auth = headers(write=True, role="admin")
        with SystemSampler(targets_for(info, {}), interval_s=0.3) as sampler, requests.Session() as http:
            for i in range(150):
                server = {**SERVER, "name": f"s{i}"}
                answers = [http.post(info.base_url + "/api/v1/servers/", json=server, headers=auth)]
                answers += [
                    http.get(info.base_url + "/api/v1/servers/?limit=5", headers=auth),
                    http.post(
                        info.base_url + "/api/v1/policy/evaluate",
                        headers=auth,
                        json={**EVALUATION, "server_id": answers[0].json()["server_id"]},
                    ),
                ]
                assert [a.status_code for a in answers] == [201, 200, 200], [a.text for a in answers]
    m = sampler.metrics
    assert m is not None
    for name in ("api", "postgres", "redis"):
        series = m.service(name)
        assert series is not None and series.note == "" and len(series.samples) >= 2, name
        assert all(s.rss_mb and s.rss_mb > 1 for s in series.samples)
    assert max(c for _, c in m.service("api").cpu()) > 0  # type: ignore[union-attr]
    db = m.database
    assert db is not None and db.note == ""
    assert db.servers_before == 0 and db.servers_after == 150
    assert db.calls >= 300 and db.query_mean_ms is not None and 0 < db.query_mean_ms < 50
    assert any("INSERT INTO mcp_servers" in s.query for s in db.statements)
    assert all(s.max_ms is not None for s in db.statements)  # the reset worked: figures are over the run
    assert db.peak_connections and db.peak_connections >= 1
    assert m.redis is not None and m.redis.note == "" and len(m.redis.samples) >= 2
    assert all(s.ping_ms is not None and s.ping_ms < 100 for s in m.redis.samples)
    assert max(s.clients or 0 for s in m.redis.samples) >= 2  # the API's pool and us
