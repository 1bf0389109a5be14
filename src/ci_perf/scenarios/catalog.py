"""The scenario catalog: the seed's eleven scenarios as data, shared by the Locust and k6 runners.

Both tools read the same task mix and load shape from here (the runners pass them on as JSON), so a
scenario hits the same endpoints with the same weights whichever tool runs it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from typing import Any

from ci_perf.errors import ConfigError

# Task name -> (method, endpoint name as it appears in results). Shared by locustfile.py and k6_script.js.
TASKS: dict[str, tuple[str, str]] = {
    "register_server": ("POST", "/api/v1/servers/"),
    "register_server_many_tools": ("POST", "/api/v1/servers/ (many tools)"),
    "list_servers": ("GET", "/api/v1/servers/"),
    "search_servers": ("GET", "/api/v1/servers/?search"),
    "get_server": ("GET", "/api/v1/servers/{id}"),
    "evaluate_tool_invocation": ("POST", "/api/v1/policy/evaluate"),
    "evaluate_server_action": ("POST", "/api/v1/policy/evaluate (server action)"),
    "health": ("GET", "/health/"),
    "burst_list": ("GET", "/api/v1/servers/ (burst)"),
    "register_then_read": ("POST", "/api/v1/servers/ (then read back)"),
}


@dataclass(frozen=True)
class Stage:
    """Reach `users_fraction` of the scenario's users by `until_fraction` of its duration."""

    until_fraction: float
    users_fraction: float


@dataclass(frozen=True)
class Scenario:
    name: str
    users: int
    spawn_rate: float
    duration_s: int
    purpose: str
    description: str
    mix: tuple[tuple[str, int], ...]  # (task, weight)
    think_time_s: tuple[float, float] = (0.1, 0.5)  # wait between tasks, per user
    stages: tuple[Stage, ...] = ()  # empty: ramp at spawn_rate, then hold
    expected_statuses: tuple[int, ...] = ()  # answers that count as success besides 2xx (e.g. 429)
    focus: str = ""  # endpoint group whose throughput target applies ("registration", "policy")

    def with_load(
        self, users: int | None = None, spawn_rate: float | None = None, duration_s: int | None = None
    ) -> Scenario:
        return replace(
            self,
            users=users if users is not None else self.users,
            spawn_rate=spawn_rate if spawn_rate is not None else self.spawn_rate,
            duration_s=duration_s if duration_s is not None else self.duration_s,
        )

    def to_json(self) -> str:
        """What the locustfile and the k6 script read from CI_PERF_SCENARIO."""
        data: dict[str, Any] = asdict(self)
        data["tasks"] = {name: {"method": TASKS[name][0], "name": TASKS[name][1]} for name, _ in self.mix}
        return json.dumps(data)


_MIXED = (
    ("list_servers", 30),
    ("search_servers", 10),
    ("get_server", 20),
    ("evaluate_tool_invocation", 20),
    ("evaluate_server_action", 5),
    ("register_server", 10),
    ("health", 5),
)

SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("smoke_test", 1, 1, 30, "Verify API is working",
                 "One user walks every endpoint of the mixed workload.", _MIXED, (0.1, 0.3)),
        Scenario("load_test_moderate", 100, 10, 300, "Baseline performance",
                 "Moderate sustained load with the mixed workload.", _MIXED, (0.5, 2.0)),
        Scenario("load_test_high", 500, 50, 600, "High traffic performance",
                 "High sustained load with the mixed workload.", _MIXED, (0.5, 2.0)),
        Scenario("server_registration_focused", 200, 20, 300, "Test registration at 1000 req/s",
                 "Mostly server registrations, with reads of what was registered.",
                 (("register_server", 80), ("get_server", 10), ("list_servers", 10)),
                 (0.05, 0.15), focus="registration"),
        Scenario("policy_evaluation_focused", 500, 50, 300, "Test policy eval at high load",
                 "Policy decisions for tool invocations and server actions.",
                 (("evaluate_tool_invocation", 70), ("evaluate_server_action", 30)),
                 (0.05, 0.2), focus="policy"),
        Scenario("stress_test", 1000, 100, 900, "Determine max capacity",
                 "Ramps to many users to find the breaking point.", _MIXED, (0.1, 0.5),
                 stages=(Stage(0.2, 0.25), Stage(0.4, 0.5), Stage(0.6, 0.75), Stage(0.8, 1.0),
                         Stage(1.0, 1.0))),
        Scenario("spike_test", 500, 100, 300, "Test auto-scaling/recovery",
                 "A sudden spike from a tenth of the users to all of them, then back.", _MIXED,
                 (0.5, 1.0),
                 stages=(Stage(0.2, 0.1), Stage(0.25, 1.0), Stage(0.5, 1.0), Stage(0.55, 0.1),
                         Stage(1.0, 0.1))),
        Scenario("soak_test", 50, 10, 1800, "Detect memory leaks",
                 "Long-running stability under steady moderate load.", _MIXED, (0.5, 2.0)),
        Scenario("rate_limit_test", 100, 100, 120, "Verify rate limits work",
                 "Bursts without think time; 429 answers are expected, not failures.",
                 (("burst_list", 80), ("evaluate_tool_invocation", 20)), (0.0, 0.0),
                 expected_statuses=(429,)),
        Scenario("database_stress", 200, 20, 600, "Test DB query performance",
                 "Registrations carrying many tools, searches and listings with filters.",
                 (("register_server_many_tools", 40), ("search_servers", 30), ("list_servers", 20),
                  ("get_server", 10)), (0.1, 0.5)),
        Scenario("concurrent_operations", 300, 30, 300, "Test data consistency",
                 "Register-then-read-back and reads racing writes on the same servers.",
                 (("register_then_read", 40), ("get_server", 30), ("evaluate_server_action", 15),
                  ("list_servers", 15)), (0.05, 0.2)),
    )
}


def get_scenario(name: str) -> Scenario:
    try:
        return SCENARIOS[name]
    except KeyError:
        raise ConfigError(
            f"unknown scenario {name!r}; choose one of: {', '.join(SCENARIOS)} (see `ci-perf scenarios`)"
        ) from None
