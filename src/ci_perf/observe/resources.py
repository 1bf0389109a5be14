"""CPU % and anonymous resident memory (heap and stacks, no page cache or shared memory: the same
figure on both backends, and the one a leak grows) per service: psutil on a process tree (local
backend, or a pid given for an external API) and one-shot Docker stats per container (docker).

Each reader is called from the sampler thread every interval and returns a sample, or raises
Unavailable with the reason, which the caller records as "not measured".
"""

from __future__ import annotations

from typing import Any, Protocol

from ci_perf.observe.model import ResourceSample

MB = 1024 * 1024


class Unavailable(Exception):
    """This source cannot be measured here; the message says why (shown as "not measured: ...")."""


class ResourceReader(Protocol):
    def read(self, t_s: float) -> ResourceSample: ...


class ProcessTree:
    """A process and all its descendants (PostgreSQL backends, uvicorn workers) summed.

    Process objects are kept between samples because psutil's cpu_percent measures since the
    previous call on the same object; a child seen for the first time counts from its next sample.
    """

    def __init__(self, pid: int) -> None:
        try:
            import psutil
        except ImportError:
            raise Unavailable("psutil is not installed (pip install psutil)") from None
        self._psutil = psutil
        try:
            self._root = psutil.Process(pid)
        except psutil.Error as exc:
            raise Unavailable(f"process {pid} is not readable ({type(exc).__name__})") from None
        self._known: dict[int, Any] = {}
        self._members()  # prime cpu_percent so the first real sample covers one interval

    def _members(self) -> list[Any]:
        ps = self._psutil
        try:
            tree = [self._root, *self._root.children(recursive=True)]
        except ps.NoSuchProcess:
            raise Unavailable(f"process {self._root.pid} has exited") from None
        fresh: dict[int, Any] = {}
        for proc in tree:
            known = self._known.get(proc.pid)
            fresh[proc.pid] = known if known is not None else proc
            if known is None:
                _quietly(proc.cpu_percent, None)
        self._known = fresh
        return list(fresh.values())

    def read(self, t_s: float) -> ResourceSample:
        cpu = anon = 0.0
        for proc in self._members():
            cpu += _quietly(proc.cpu_percent, None) or 0.0
            info = _quietly(proc.memory_info)
            # rss - shared = RssAnon: heap and stacks, what a leak grows. Shared memory (PostgreSQL's
            # shared_buffers) would be counted again in every backend that touched it.
            anon += max(info.rss - info.shared, 0) if info is not None else 0
        return ResourceSample(t_s, round(cpu, 1), round(anon / MB, 2))


def _quietly(fn: Any, *args: Any) -> Any:
    """A process of the tree may exit between listing and reading: it then simply counts as 0."""
    try:
        return fn(*args)
    except Exception:
        return None


class ContainerStats:
    """One-shot Docker stats (no 1 s wait inside the engine); CPU % from the difference between two
    successive samples, as `docker stats` computes it."""

    def __init__(self, client: Any, container_id: str) -> None:
        try:
            self._container = client.containers.get(container_id)
        except Exception as exc:
            raise Unavailable(f"container {container_id[:12]} not found ({type(exc).__name__})") from None
        self._previous: tuple[float, float] | None = None
        self._online_cpus = 1

    def read(self, t_s: float) -> ResourceSample:
        try:
            stats = self._container.stats(stream=False, one_shot=True)
        except Exception as exc:
            raise Unavailable(f"docker stats failed ({type(exc).__name__})") from None
        return ResourceSample(t_s, self.cpu_pct(stats.get("cpu_stats") or {}), container_rss_mb(stats))

    def cpu_pct(self, cpu: dict[str, Any]) -> float | None:
        total = (cpu.get("cpu_usage") or {}).get("total_usage")
        system = cpu.get("system_cpu_usage")
        self._online_cpus = int(cpu.get("online_cpus") or self._online_cpus)
        if total is None or system is None:
            return None
        previous, self._previous = self._previous, (float(total), float(system))
        if previous is None or system <= previous[1]:
            return None
        share = (float(total) - previous[0]) / (float(system) - previous[1])
        return round(max(share, 0.0) * self._online_cpus * 100, 1)


def container_rss_mb(stats: dict[str, Any]) -> float | None:
    """Anonymous (resident, not page cache) memory: cgroup v1 'rss', v2 'anon'; else usage - cache."""
    mem = stats.get("memory_stats") or {}
    inner = mem.get("stats") or {}
    for key in ("rss", "anon"):
        if key in inner:
            return round(float(inner[key]) / MB, 2)
    usage = mem.get("usage")
    if usage is None:
        return None
    cache = inner.get("inactive_file", inner.get("cache", 0))
    return round(float(usage - cache) / MB, 2)


def docker_client() -> Any:
    try:
        import docker

        client = docker.from_env()
        client.ping()
        return client
    except Exception as exc:
        raise Unavailable(f"Docker engine not reachable ({type(exc).__name__})") from None
