"""The sampler: one daemon thread, off the load tool's request path, reading every source each
interval (2 s by default: a few cheap reads, nothing that competes with the API for CPU).

A source that cannot be read is recorded as "not measured" with its reason; nothing here raises
into the run.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

from ci_perf.observe.model import (
    DatabaseMetrics,
    RedisMetrics,
    RedisSample,
    ResourceSample,
    ServiceSeries,
    SystemMetrics,
)
from ci_perf.observe.postgres import PostgresObserver
from ci_perf.observe.redis_info import RedisConnection
from ci_perf.observe.resources import ContainerStats, ProcessTree, ResourceReader, Unavailable, docker_client

log = logging.getLogger("ci_perf.observe")


@dataclass(frozen=True)
class Targets:
    """What to observe: service name -> pid (process tree) or container id, and the data stores."""

    database_url: str = ""
    redis_url: str = ""
    pids: Mapping[str, int] = field(default_factory=dict)
    containers: Mapping[str, str] = field(default_factory=dict)
    unmeasured: Mapping[str, str] = field(default_factory=dict)  # service -> why it cannot be observed


class _Series:
    def __init__(self, name: str, note: str = "") -> None:
        self.name, self.note = name, note
        self.samples: list[ResourceSample] = []

    def frozen(self) -> ServiceSeries:
        return ServiceSeries(self.name, tuple(self.samples), self.note)


class SystemSampler:
    def __init__(self, targets: Targets, interval_s: float = 2.0, setup_timeout_s: float = 10.0) -> None:
        self.targets, self.interval_s, self.setup_timeout_s = targets, interval_s, setup_timeout_s
        self._stop, self._ready = threading.Event(), threading.Event()
        self._thread = threading.Thread(target=self._main, name="ci-perf-system-sampler", daemon=True)
        self._series = {name: _Series(name, f"not measured: {why}") for name, why in targets.unmeasured.items()}
        self._readers: dict[str, ResourceReader] = {}
        self._pg: PostgresObserver | None = None
        self._redis: RedisConnection | None = None
        self._redis_samples: list[RedisSample] = []
        self._notes: dict[str, str] = {}
        self._t0 = time.monotonic()
        self.started_at = time.time()
        self.metrics: SystemMetrics | None = None

    def __enter__(self) -> SystemSampler:
        self._thread.start()
        self._ready.wait(self.setup_timeout_s)  # the statement counters are reset before the load starts
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(self.setup_timeout_s + 5)

    def _main(self) -> None:
        loop = asyncio.new_event_loop()
        try:
            self._setup(loop)
            self._ready.set()
            self._t0, self.started_at = time.monotonic(), time.time()
            with ThreadPoolExecutor(max_workers=4, thread_name_prefix="ci-perf-sampler") as pool:
                self._tick(loop, pool)
                # A tick's start every interval_s: a slow read makes the next wait shorter, not later.
                while not self._stop.wait(max(0.0, self.interval_s - (time.monotonic() - self._t0) % self.interval_s)):
                    self._tick(loop, pool)
            self.metrics = self._finish(loop)
        except Exception:  # a bug here must never take the run down; the report says "not measured"
            log.exception("system sampler failed")
        finally:
            self._ready.set()
            loop.close()

    def _setup(self, loop: asyncio.AbstractEventLoop) -> None:
        for name, pid in self.targets.pids.items():
            self._add_reader(name, _tree(pid))
        if self.targets.containers:
            self._add_containers(self.targets.containers)
        if self.targets.database_url:
            pg = PostgresObserver(self.targets.database_url)
            try:
                loop.run_until_complete(pg.begin())
                self._pg = pg
            except Unavailable as exc:
                self._notes["database"] = f"not measured: {exc}"
        else:
            self._notes["database"] = "not measured: no database URL (external backend)"
        self._connect_redis()

    def _add_containers(self, containers: Mapping[str, str]) -> None:
        try:
            client = docker_client()
        except Unavailable as exc:
            for name in containers:
                self._series.setdefault(name, _Series(name)).note = f"not measured: {exc}"
            return
        for name, cid in containers.items():
            self._add_reader(name, _container(client, cid))

    def _add_reader(self, name: str, make: Callable[[], ResourceReader]) -> None:
        series = self._series.setdefault(name, _Series(name))
        try:
            self._readers[name] = make()
        except Unavailable as exc:
            series.note = f"not measured: {exc}"

    def _connect_redis(self) -> None:
        if not self.targets.redis_url:
            self._notes.setdefault("redis", "not measured: no Redis URL (external backend)")
            return
        try:
            self._redis = RedisConnection(self.targets.redis_url)
        except Unavailable as exc:
            self._notes["redis"] = f"not measured: {exc}"

    def _tick(self, loop: asyncio.AbstractEventLoop, pool: ThreadPoolExecutor) -> None:
        t_s = round(time.monotonic() - self._t0, 3)
        # In parallel: Docker answers a one-shot stats request in up to ~0.5 s, per container.
        futures = {name: pool.submit(reader.read, t_s) for name, reader in self._readers.items()}
        for name, future in futures.items():
            try:
                self._series[name].samples.append(future.result())
            except Exception as exc:  # the process exited, the container went away
                self._series[name].note = f"sampling stopped at {t_s:.0f}s: {exc}"
                del self._readers[name]
        if self._pg is not None:
            try:
                loop.run_until_complete(self._pg.sample(t_s))
            except Exception as exc:
                self._notes["database_sample"] = f"some connection samples missing ({type(exc).__name__})"
        self._sample_redis(t_s)

    def _sample_redis(self, t_s: float) -> None:
        if self._redis is None and self.targets.redis_url and "redis" not in self._notes:
            self._connect_redis()
        if self._redis is None:
            return
        try:
            self._redis_samples.append(self._redis.sample(t_s))
        except (Unavailable, OSError, ValueError) as exc:  # Redis went away: retry next tick
            self._notes["redis_gap"] = f"Redis unreachable at times ({type(exc).__name__} at {t_s:.0f}s)"
            self._redis.close()
            self._redis = None

    def _finish(self, loop: asyncio.AbstractEventLoop) -> SystemMetrics:
        database = DatabaseMetrics(note=self._notes.get("database", ""))
        if self._pg is not None:
            try:
                database = loop.run_until_complete(self._pg.finish())
            except Exception as exc:
                database = DatabaseMetrics(note=f"not measured: final read failed ({type(exc).__name__})")
        if "database_sample" in self._notes:
            database = replace(database, note="; ".join(filter(None, [database.note, self._notes["database_sample"]])))
        if self._redis is not None:
            self._redis.close()
        redis_note = "; ".join(v for k, v in self._notes.items() if k.startswith("redis"))
        return SystemMetrics(
            started_at=round(self.started_at, 3), interval_s=self.interval_s,
            services=tuple(s.frozen() for s in self._series.values()), database=database,
            redis=RedisMetrics(tuple(self._redis_samples), redis_note),
        )  # fmt: skip


def _tree(pid: int) -> Callable[[], ResourceReader]:
    return lambda: ProcessTree(pid)


def _container(client: object, cid: str) -> Callable[[], ResourceReader]:
    return lambda: ContainerStats(client, cid)
