"""Looking inside the system under test while the load runs: CPU and memory per service, PostgreSQL
connections and query times, Redis throughput and latency (the seed's "Monitoring During Tests")."""

from __future__ import annotations

from collections.abc import Mapping

from ci_perf.observe.model import SystemMetrics
from ci_perf.observe.sampler import SystemSampler, Targets
from ci_perf.services.base import StackInfo

API_PID_ENV = "CI_PERF_API_PID"  # external backend: the API's pid on this machine, when known


def targets_for(info: StackInfo, env: Mapping[str, str]) -> Targets:
    """What the stack we brought up lets us observe; an external API only through CI_PERF_API_PID."""
    pids = dict(info.pids)
    unmeasured: dict[str, str] = {}
    if not pids and not info.containers:
        raw = env.get(API_PID_ENV, "").strip()
        if raw.isdigit():
            pids["api"] = int(raw)
        else:
            unmeasured["api"] = f"the API runs outside ci-perf (set {API_PID_ENV} to its pid on this machine)"
    return Targets(
        database_url=info.database_url,
        redis_url=info.redis_url,
        pids=pids,
        containers=dict(info.containers),
        unmeasured=unmeasured,
    )


__all__ = ["API_PID_ENV", "SystemMetrics", "SystemSampler", "Targets", "targets_for"]
