"""The scenario catalog: the seed's eleven scenarios as data, shared by the Locust and k6 runners.

Both tools read the same task mix and load shape from here (the runners pass them on as JSON), so a
scenario hits the same endpoints with the same weights whichever tool runs it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from ci_perf.errors import ConfigError

# --- the payload table: what every task sends and which answer is right, for both tools ----------

Decision = str  # "allow" | "deny"


@dataclass(frozen=True)
class Policy:
    """One policy evaluation the tools may send; `expect` follows the target's rules (SARK's stand-in
    policy, docs/architecture.md): role-independent for admin and developer, so that a target that
    answers one way to everything is caught."""

    action: str
    expect: Decision
    tool: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    on_server: bool = False  # send the user's last registered server as server_id (else null)


@dataclass(frozen=True)
class Payload:
    """One task's request. The query picks one value per parameter per request; `{id}` in the path is
    a server the user registered. A right answer has the status, is a JSON object with `keys`, and
    (policy requests) carries the expected decision; anything else is a failure (contract C2)."""

    method: str
    path: str
    name: str  # the endpoint's name in results
    status: int
    keys: tuple[str, ...]
    query: tuple[tuple[str, tuple[str, ...]], ...] = ()
    paging: bool = False  # send `cursor` = the previous page's next_cursor while has_more
    tools: int = 0  # POST /api/v1/servers/: how many tools the registration carries
    policies: tuple[Policy, ...] = ()  # POST /api/v1/policy/evaluate: one picked per request
    read_back: bool = False  # then GET the registered id (as get_server) and check it is that server


REGISTER_NAME = "/api/v1/servers/"
READ_NAME = "/api/v1/servers/{id}"
SERVER_KEYS = ("server_id", "status")
LIST_KEYS = ("items", "next_cursor", "has_more")
TOOL_POLICIES = (
    Policy("tool:invoke", "allow", "read_file", {"path": "/srv/docs/README.md"}, on_server=True),
    Policy("tool:invoke", "allow", "search_docs", {"query": "latency budget"}, on_server=True),
    Policy("tool:invoke", "allow", "query_database", {"query": "SELECT count(*) FROM servers"}, on_server=True),
    Policy("tool:invoke", "deny", "delete_records", {"table": "audit_events"}, on_server=True),  # destructive
    Policy("tool:invoke", "deny", "send_email", {"to": "perf@example.test", "api_token": "t0"}, on_server=True),
)
SERVER_POLICIES = (
    Policy("server:read", "allow", on_server=True),
    Policy("server:list", "allow"),
    Policy("server:register", "allow", parameters={"sensitivity_level": "low"}),
)

PAYLOADS: dict[str, Payload] = {
    "register_server": Payload("POST", "/api/v1/servers/", REGISTER_NAME, 201, SERVER_KEYS, tools=3),
    "register_server_many_tools": Payload(
        "POST", "/api/v1/servers/", "/api/v1/servers/ (many tools)", 201, SERVER_KEYS, tools=50
    ),
    "list_servers": Payload(
        "GET",
        "/api/v1/servers/",
        "/api/v1/servers/",
        200,
        LIST_KEYS,
        (("limit", ("10", "25", "50")), ("sort_order", ("desc",))),
        paging=True,
    ),
    "search_servers": Payload(
        "GET",
        "/api/v1/servers/",
        "/api/v1/servers/?search",
        200,
        LIST_KEYS,
        (("search", ("ci-perf", "mcp", "analytics", "db")), ("limit", ("20",))),
    ),
    "filter_servers": Payload(
        "GET",
        "/api/v1/servers/",
        "/api/v1/servers/?filters",
        200,
        (*LIST_KEYS, "total"),
        (
            ("status", ("registered", "active")),
            ("sensitivity", ("low,medium", "medium")),
            ("tags", ("ci-perf", "ci-perf,database", "analytics")),
            ("match_all_tags", ("true", "false")),
            ("search", ("ci-perf", "mcp")),
            ("include_total", ("true",)),
            ("limit", ("50",)),
        ),
    ),
    "get_server": Payload("GET", "/api/v1/servers/{id}", READ_NAME, 200, ("id", "name", "status")),
    "evaluate_tool_invocation": Payload(
        "POST",
        "/api/v1/policy/evaluate",
        "/api/v1/policy/evaluate",
        200,
        ("decision", "reason"),
        policies=TOOL_POLICIES,
    ),
    "evaluate_server_action": Payload(
        "POST",
        "/api/v1/policy/evaluate",
        "/api/v1/policy/evaluate (server action)",
        200,
        ("decision", "reason"),
        policies=SERVER_POLICIES,
    ),
    "health": Payload("GET", "/health/", "/health/", 200, ("status",)),
    "health_ready": Payload("GET", "/health/ready", "/health/ready", 200, ("ready",)),
    "health_detailed": Payload("GET", "/health/detailed", "/health/detailed", 200, ("status", "dependencies")),
    "burst_list": Payload("GET", "/api/v1/servers/", "/api/v1/servers/ (burst)", 200, LIST_KEYS, (("limit", ("10",)),)),
    "register_then_read": Payload(
        "POST", "/api/v1/servers/", "/api/v1/servers/ (then read back)", 201, SERVER_KEYS, tools=3, read_back=True
    ),
}

# A registration (SARK's ServerRegistrationRequest): "{uid}" is replaced by a fresh id per request,
# tools are TOOLS[i % len] (names suffixed past the first round), one sensitivity and one tag set
# are picked, metadata.owner_id is the user's user_id. Low/medium only: critical servers are refused.
SERVER: dict[str, Any] = {
    "template": {
        "name": "ci-perf-{uid}",
        "transport": "http",
        "endpoint": "http://mcp-{uid}.perf.invalid:8080/mcp",
        "version": "2025-06-18",
        "description": "Registered by a ci-perf load test",
        "capabilities": ["tools", "prompts", "resources"],
    },
    "tools": [
        {
            "name": n,
            "description": f"Load-test tool {n}",
            "sensitivity_level": lvl,
            "parameters": {"type": "object", "properties": {"query": {"type": "string"}}},
        }
        for n, lvl in (
            ("read_file", "low"),
            ("search_docs", "low"),
            ("query_database", "medium"),
            ("send_email", "medium"),
            ("delete_records", "medium"),
        )
    ],
    "sensitivity": ["low", "medium"],
    "tags": [["ci-perf", "database"], ["ci-perf", "analytics"], ["ci-perf"]],
    "team_id": "4c6b8c2e-0f7a-4c1e-9d3b-2a5e6f7a8b9c",
}

# Task name -> (method, endpoint name as it appears in results).
TASKS: dict[str, tuple[str, str]] = {task: (p.method, p.name) for task, p in PAYLOADS.items()}


def task_json(task: str) -> dict[str, Any]:
    data = asdict(PAYLOADS[task])
    data["query"] = {k: list(v) for k, v in PAYLOADS[task].query}
    return data


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
    walk: bool = False  # every user plays the mix in order (weights as repeats), not at random

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
        data["tasks"] = {name: task_json(name) for name, _ in self.mix}
        data["server"] = SERVER
        return json.dumps(data)


_MIXED = (
    ("list_servers", 30),
    ("search_servers", 10),
    ("get_server", 20),
    ("evaluate_tool_invocation", 20),
    ("evaluate_server_action", 5),
    ("register_server", 10),
    ("health", 3),
    ("health_ready", 1),
    ("health_detailed", 1),
)
# Every endpoint once per round, in order: a smoke test reaches each of them however short it is.
_WALK = tuple(
    (task, 1)
    for task in (
        "health",
        "health_ready",
        "health_detailed",
        "register_server",
        "list_servers",
        "search_servers",
        "filter_servers",
        "get_server",
        "evaluate_tool_invocation",
        "evaluate_server_action",
    )
)

SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            "smoke_test",
            1,
            1,
            30,
            "Verify API is working",
            "One user walks every endpoint in turn.",
            _WALK,
            (0.1, 0.3),
            walk=True,
        ),
        Scenario(
            "load_test_moderate",
            100,
            10,
            300,
            "Baseline performance",
            "Moderate sustained load with the mixed workload.",
            _MIXED,
            (0.5, 2.0),
        ),
        Scenario(
            "load_test_high",
            500,
            50,
            600,
            "High traffic performance",
            "High sustained load with the mixed workload.",
            _MIXED,
            (0.5, 2.0),
        ),
        Scenario(
            "server_registration_focused",
            200,
            20,
            300,
            "Test registration at 1000 req/s",
            "Mostly server registrations, with reads of what was registered.",
            (("register_server", 80), ("get_server", 10), ("list_servers", 10)),
            (0.05, 0.15),
            focus="registration",
        ),
        Scenario(
            "policy_evaluation_focused",
            500,
            50,
            300,
            "Test policy eval at high load",
            "Policy decisions for tool invocations and server actions.",
            (("evaluate_tool_invocation", 70), ("evaluate_server_action", 30)),
            (0.05, 0.2),
            focus="policy",
        ),
        Scenario(
            "stress_test",
            1000,
            100,
            900,
            "Determine max capacity",
            "Ramps to many users to find the breaking point.",
            _MIXED,
            (0.1, 0.5),
            stages=(Stage(0.2, 0.25), Stage(0.4, 0.5), Stage(0.6, 0.75), Stage(0.8, 1.0), Stage(1.0, 1.0)),
        ),
        Scenario(
            "spike_test",
            500,
            100,
            300,
            "Test auto-scaling/recovery",
            "A sudden spike from a tenth of the users to all of them, then back.",
            _MIXED,
            (0.5, 1.0),
            stages=(Stage(0.2, 0.1), Stage(0.25, 1.0), Stage(0.5, 1.0), Stage(0.55, 0.1), Stage(1.0, 0.1)),
        ),
        Scenario(
            "soak_test",
            50,
            10,
            1800,
            "Detect memory leaks",
            "Long-running stability under steady moderate load.",
            _MIXED,
            (0.5, 2.0),
        ),
        Scenario(
            "rate_limit_test",
            100,
            100,
            120,
            "Verify rate limits work",
            "Bursts without think time; 429 answers are expected, not failures.",
            (("burst_list", 80), ("evaluate_tool_invocation", 20)),
            (0.0, 0.0),
            expected_statuses=(429,),
        ),
        Scenario(
            "database_stress",
            200,
            20,
            600,
            "Test DB query performance",
            "Registrations carrying many tools, searches and listings with filters.",
            (
                ("register_server_many_tools", 40),
                ("search_servers", 15),
                ("filter_servers", 15),
                ("list_servers", 20),
                ("get_server", 10),
            ),
            (0.1, 0.5),
        ),
        Scenario(
            "concurrent_operations",
            300,
            30,
            300,
            "Test data consistency",
            "Register-then-read-back and reads racing writes on the same servers.",
            (("register_then_read", 40), ("get_server", 30), ("evaluate_server_action", 15), ("list_servers", 15)),
            (0.05, 0.2),
        ),
    )
}


def get_scenario(name: str) -> Scenario:
    try:
        return SCENARIOS[name]
    except KeyError:
        raise ConfigError(
            f"unknown scenario {name!r}; choose one of: {', '.join(SCENARIOS)} (see `ci-perf scenarios`)"
        ) from None
