"""The system sampler: synthetic inputs for the pure parts, and sources that are missing degrade to
"not measured" instead of failing the run."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import psutil

from ci_perf.observe import SystemSampler, Targets, targets_for
from ci_perf.observe.model import (
    ConnectionSample,
    DatabaseMetrics,
    RedisMetrics,
    RedisSample,
    ResourceSample,
    ServiceSeries,
    StatementStat,
    SystemMetrics,
)
from ci_perf.observe.postgres import Row, is_app_statement, statement_deltas, weighted_mean_ms
from ci_perf.observe.redis_info import parse_info
from ci_perf.observe.resources import ContainerStats, ProcessTree, container_rss_mb
from ci_perf.services.base import StackInfo


def sample_metrics() -> SystemMetrics:
    return SystemMetrics(
        started_at=1700000000.5, interval_s=2.0,
        services=(ServiceSeries("api", (ResourceSample(0.0, 12.5, 40.0), ResourceSample(2.0, None, 41.5))),
                  ServiceSeries("postgres", note="not measured: gone")),
        database=DatabaseMetrics((ConnectionSample(0.0, {"idle": 3, "active": 1}),),
                                 (StatementStat("SELECT 1", 10, 0.5, 5.0, 2.0, 1.1),), 10, 0.5, 3, 13),
        redis=RedisMetrics((RedisSample(0.0, 120.0, 4, 1.2, 0.08),)),
    )  # fmt: skip


def test_system_metrics_round_trip_through_json() -> None:
    m = sample_metrics()
    again = SystemMetrics.from_dict(json.loads(json.dumps(m.to_dict())))
    assert again == m
    assert again.db_query_ms == 0.5
    assert again.database is not None and again.database.peak_connections == 4
    assert again.service("api") is not None and again.service("api").rss() == [(0.0, 40.0), (2.0, 41.5)]  # type: ignore[union-attr]


def test_statement_deltas_diff_snapshots_and_skip_our_own_and_utility_statements() -> None:
    start = {(1, 1, "SELECT a"): Row("SELECT a", 100, 50.0, 9.0, 1.0)}
    end = {
        (1, 1, "SELECT a"): Row("SELECT a", 300, 150.0, 9.0, 1.0),  # 200 calls, 100 ms during the run
        (1, 2, "INSERT b"): Row("INSERT b", 50, 100.0, 8.0, 0.5),  # new during the run: exact
        (1, 3, "BEGIN"): Row("BEGIN", 500, 1.0, 0.1, 0.0),
        (1, 4, "/* ci-perf observe */ SELECT"): Row("/* ci-perf observe */ SELECT", 5, 1.0, 1.0, 0.0),
    }
    stats = statement_deltas(start, end, was_reset=False)
    assert [s.query for s in stats] == ["INSERT b", "SELECT a"]  # slowest mean first
    a = stats[1]
    assert (a.calls, a.mean_ms, a.max_ms, a.p95_ms) == (200, 0.5, None, None)  # max is not over the run
    assert stats[0].p95_ms == round(2.0 + 1.645 * 0.5, 3)
    assert weighted_mean_ms(stats) == round(200 / 250, 4)  # (100 + 100 ms) / 250 calls
    assert weighted_mean_ms([]) is None
    assert not is_app_statement("SELECT pg_advisory_unlock_all();\nCLOSE ALL;")


def test_redis_info_and_docker_stats_parsing() -> None:
    info = parse_info("# Server\r\nredis_version:7.0.0\r\nconnected_clients:7\r\ninstantaneous_ops_per_sec:42\r\n")
    assert info["connected_clients"] == "7" and info["instantaneous_ops_per_sec"] == "42"
    mib = 1024 * 1024
    assert container_rss_mb({"memory_stats": {"usage": 90 * mib, "stats": {"anon": 30 * mib}}}) == 30.0
    assert container_rss_mb({"memory_stats": {"usage": 90 * mib, "stats": {"inactive_file": 10 * mib}}}) == 80.0
    assert container_rss_mb({}) is None


def test_container_cpu_percent_from_successive_one_shot_samples() -> None:
    reader = ContainerStats.__new__(ContainerStats)
    reader._previous, reader._online_cpus = None, 1
    first = {"cpu_usage": {"total_usage": 1_000}, "system_cpu_usage": 10_000, "online_cpus": 2}
    assert reader.cpu_pct(first) is None  # needs two samples
    second = {"cpu_usage": {"total_usage": 1_500}, "system_cpu_usage": 11_000, "online_cpus": 2}
    assert reader.cpu_pct(second) == 100.0  # half the machine's ticks on 2 CPUs: one core busy


def test_process_tree_sums_the_children() -> None:
    child = "x = bytearray(30_000_000); import time; time.sleep(30)"
    code = f"import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', {child!r}]); time.sleep(30)"
    parent = subprocess.Popen([sys.executable, "-c", code])
    try:
        time.sleep(1.5)
        tree = ProcessTree(parent.pid)
        sample = tree.read(1.0)
        assert sample.rss_mb is not None and sample.rss_mb > 30  # the child's 30 MB are counted
    finally:
        for child in psutil.Process(parent.pid).children(recursive=True):
            child.kill()
        parent.kill()
        parent.wait()


def test_external_api_is_not_measured_unless_a_pid_is_given() -> None:
    info = StackInfo(base_url="http://127.0.0.1:1")
    assert "CI_PERF_API_PID" in targets_for(info, {}).unmeasured["api"]
    assert targets_for(info, {"CI_PERF_API_PID": str(os.getpid())}).pids == {"api": os.getpid()}
    local = StackInfo(base_url="x", pids={"api": 1, "postgres": 2})
    assert targets_for(local, {}).unmeasured == {}


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_every_missing_source_degrades_to_not_measured() -> None:
    port = _closed_port()
    targets = Targets(database_url=f"postgresql://u:p@127.0.0.1:{port}/db", redis_url=f"redis://127.0.0.1:{port}/0",
                      pids={"api": 2**22 + 12345}, unmeasured={"worker": "unknown"})  # fmt: skip
    with SystemSampler(targets, interval_s=0.1) as sampler:
        time.sleep(0.35)
    m = sampler.metrics
    assert m is not None
    notes = {s.service: s.note for s in m.services}
    assert notes["worker"] == "not measured: unknown"
    assert notes["api"].startswith("not measured: process")
    assert m.database is not None and m.database.note.startswith("not measured: PostgreSQL not reachable")
    assert m.db_query_ms is None
    assert m.redis is not None and m.redis.note.startswith("not measured: Redis not reachable")


def test_the_sampler_observes_a_process_given_by_pid() -> None:
    with SystemSampler(Targets(pids={"self": os.getpid()}), interval_s=0.1) as sampler:
        sum(i * i for i in range(2_000_000))
        time.sleep(0.3)
    m = sampler.metrics
    assert m is not None
    series = m.service("self")
    assert series is not None and len(series.samples) >= 3 and series.note == ""
    assert all(s.rss_mb and s.rss_mb > 5 for s in series.samples)
    assert m.redis is not None and m.redis.note.startswith("not measured: no Redis URL")
