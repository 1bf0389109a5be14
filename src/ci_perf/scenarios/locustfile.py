"""The Locust side of every catalog scenario: one FastHttpUser whose task mix, think time, accepted
statuses and (optional) stages come from CI_PERF_SCENARIO, and whose auth comes from CI_PERF_AUTH.

CI_PERF_SCENARIO is the JSON of Scenario.to_json(), or just a catalog name for manual runs
(`CI_PERF_SCENARIO=smoke_test locust -f locustfile.py -H http://127.0.0.1:8000`). Results are named
with the endpoint names of catalog.TASKS, so both tools report the same rows.
"""

# Locust ships type hints but leaves some of its API unannotated.
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import json
import math
import os
import random
import uuid
from collections.abc import Callable
from dataclasses import fields
from typing import Any

from locust import LoadTestShape, between, constant
from locust.contrib.fasthttp import FastHttpUser, ResponseContextManager

from ci_perf.auth import Auth
from ci_perf.scenarios.catalog import SCENARIOS, TASKS
from ci_perf.scenarios.identity import Identity, TokensFile


def _load_scenario() -> dict[str, Any]:
    raw = os.environ.get("CI_PERF_SCENARIO", "").strip() or "smoke_test"
    if raw.startswith("{"):
        data: dict[str, Any] = json.loads(raw)
        return data
    loaded: dict[str, Any] = json.loads(SCENARIOS[raw].to_json())
    return loaded


def _load_auth() -> tuple[Auth, str]:
    """Auth and its tokens file (C5). Fields this Auth does not know are left out, not fatal."""
    raw = os.environ.get("CI_PERF_AUTH", "").strip()
    if not raw:
        return Auth.from_env(os.environ), ""
    data: dict[str, Any] = json.loads(raw)
    known = {f.name for f in fields(Auth)}
    return Auth(**{k: v for k, v in data.items() if k in known}), str(data.get("tokens_file") or "")


def _headers(auth: Auth, write: bool) -> dict[str, str]:
    """Auth headers, plus cookies as one Cookie header; the CSRF cookie rides on writes only."""
    headers = auth.request_headers(write=write)
    cookies = dict(auth.cookies)
    if write and auth.csrf_token:
        cookies[auth.csrf_cookie] = auth.csrf_token
    if cookies:
        headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
    return headers


SCENARIO = _load_scenario()
AUTH, TOKENS_PATH = _load_auth()
# Read once per process; every user of the process picks its identity's tokens from it.
TOKENS = TokensFile.read(TOKENS_PATH) if TOKENS_PATH else None
READ_HEADERS = _headers(AUTH, write=False)
WRITE_HEADERS = _headers(AUTH, write=True)
EXPECTED = frozenset(int(s) for s in SCENARIO.get("expected_statuses", ()))
NAMES = {task: name for task, (_, name) in TASKS.items()}
TOOL_NAMES = ("read_file", "search_docs", "query_database", "send_email", "delete_records", "run_report")
SERVER_ACTIONS = ("server:register", "server:read", "server:update", "server:delete")
SENSITIVITY = ("low", "medium", "high", "critical")
# Ids registered in this process, shared by its users so that reads race writes on the same servers.
KNOWN_IDS: list[str] = []
MAX_KNOWN = 500
THINK = tuple(float(x) for x in SCENARIO.get("think_time_s", (0.1, 0.5)))


def _remember(server_id: str) -> None:
    KNOWN_IDS.append(server_id)
    if len(KNOWN_IDS) > MAX_KNOWN:
        del KNOWN_IDS[: len(KNOWN_IDS) - MAX_KNOWN]


def _judge(resp: ResponseContextManager, *body_keys: str) -> dict[str, Any] | None:
    """Mark the response; return its JSON body when it is a 2xx carrying `body_keys`, else None."""
    status = resp.status_code
    if status in EXPECTED:
        resp.success()
        return None
    if not 200 <= status < 300:
        error = getattr(resp, "error", None)
        resp.failure(f"HTTP {status}" if status else f"connection error: {type(error).__name__}")
        return None
    try:
        body = resp.json()
    except ValueError:
        resp.failure("response is not JSON")
        return None
    if not isinstance(body, dict) or any(k not in body for k in body_keys):
        resp.failure(f"response lacks {', '.join(body_keys)}")
        return None
    resp.success()
    return body


def server_body(n_tools: int) -> dict[str, Any]:
    uid = uuid.uuid4().hex[:12]
    return {
        "name": f"perf-{uid}",
        "transport": "http",
        "endpoint": f"http://perf-{uid}.example.internal:8080/mcp",
        "version": "1.0.0",
        "description": "Registered by ci-perf load test",
        "capabilities": ["tools", "prompts", "resources"],
        "tools": [
            {
                "name": f"{TOOL_NAMES[i % len(TOOL_NAMES)]}_{i}",
                "description": f"Load-test tool {i}",
                "parameters": {"type": "object", "properties": {"query": {"type": "string"}}},
                "sensitivity_level": SENSITIVITY[i % len(SENSITIVITY)],
            }
            for i in range(n_tools)
        ],
        "sensitivity_level": random.choice(SENSITIVITY[:3]),  # critical servers are refused (C3)
        "metadata": {"team": "performance", "source": "ci-perf", "environment": "test"},
    }


_STARTED = [0]  # users started in this process
WORKERS = max(int(os.environ.get("CI_PERF_LOCUST_WORKERS") or 1), 1)


def _user_number(user: FastHttpUser) -> int:
    """A global user number: this process's count, interleaved with the other workers' by index."""
    local = _STARTED[0]
    _STARTED[0] += 1
    index = max(int(getattr(user.environment.runner, "worker_index", 0) or 0), 0)
    return local * WORKERS + index


class SarkUser(FastHttpUser):
    """Plays the scenario's mix; the task table is filled in below from CI_PERF_SCENARIO."""

    wait_time = constant(0) if THINK[1] <= 0 else between(*THINK)

    def on_start(self) -> None:
        self.my_ids: list[str] = []
        self.identity = Identity(_user_number(self), TOKENS)

    def headers(self, write: bool) -> dict[str, str]:
        """Auth for one request: a tokens file's bearer token is picked per request (renewal)."""
        base = WRITE_HEADERS if write else READ_HEADERS
        if not self.identity.has_tokens:
            return base
        return {**base, "Authorization": f"Bearer {self.identity.token()}"}

    def _register(self, task: str, n_tools: int) -> str | None:
        with self.client.post("/api/v1/servers/", json=server_body(n_tools), headers=self.headers(True),
                              name=NAMES[task], catch_response=True) as resp:
            body = _judge(resp, "server_id")
        if body is None:
            return None
        sid = str(body["server_id"])
        self.my_ids.append(sid)
        _remember(sid)
        return sid

    def _some_id(self) -> str | None:
        """An id known to exist: this user's, this process's, a listed one, or a fresh registration."""
        if self.my_ids:
            return random.choice(self.my_ids)
        if KNOWN_IDS:
            return random.choice(KNOWN_IDS)
        with self.client.get("/api/v1/servers/?limit=20&offset=0", headers=self.headers(False),
                             name=NAMES["list_servers"], catch_response=True) as resp:
            body = _judge(resp, "items")
        ids = [str(s["id"]) for s in (body or {}).get("items", []) if isinstance(s, dict) and "id" in s]
        KNOWN_IDS.extend(ids[:MAX_KNOWN])
        return random.choice(ids) if ids else self._register("register_server", 3)

    def _get(self, path: str, task: str, *keys: str) -> dict[str, Any] | None:
        with self.client.get(path, headers=self.headers(False), name=NAMES[task], catch_response=True) as resp:
            return _judge(resp, *keys)

    def _evaluate(self, task: str, payload: dict[str, Any]) -> None:
        payload = {"user_id": self.identity.user_id, **payload}
        with self.client.post("/api/v1/policy/evaluate", json=payload, headers=self.headers(True),
                              name=NAMES[task], catch_response=True) as resp:
            body = _judge(resp, "decision")
            if body is not None and body["decision"] not in ("allow", "deny"):
                resp.failure(f"unknown decision {body['decision']!r}")


def register_server(user: SarkUser) -> None:
    user._register("register_server", 3)


def register_server_many_tools(user: SarkUser) -> None:
    user._register("register_server_many_tools", 50)


def list_servers(user: SarkUser) -> None:
    limit = random.choice((10, 20, 50))
    user._get(f"/api/v1/servers/?limit={limit}&offset={random.randrange(0, 100, 10)}", "list_servers", "items")


def search_servers(user: SarkUser) -> None:
    user._get(f"/api/v1/servers/?search=perf-{uuid.uuid4().hex[0]}&limit=20", "search_servers", "items")


def get_server(user: SarkUser) -> None:
    sid = user._some_id()
    if sid is not None:
        user._get(f"/api/v1/servers/{sid}", "get_server", "id")


def evaluate_tool_invocation(user: SarkUser) -> None:
    sid = user.my_ids[-1] if user.my_ids else (KNOWN_IDS[-1] if KNOWN_IDS else None)
    tool = random.choice(TOOL_NAMES)
    payload: dict[str, Any] = {"action": "tool:invoke", "tool": tool, "server_id": sid, "parameters": {}}
    user._evaluate("evaluate_tool_invocation", payload)


def evaluate_server_action(user: SarkUser) -> None:
    sid = random.choice(KNOWN_IDS) if KNOWN_IDS else None
    user._evaluate("evaluate_server_action", {"action": random.choice(SERVER_ACTIONS), "server_id": sid})


def health(user: SarkUser) -> None:
    user._get("/health/", "health", "status")


def burst_list(user: SarkUser) -> None:
    # No think time comes from the scenario (rate_limit_test); 429 is accepted through EXPECTED.
    user._get("/api/v1/servers/?limit=10", "burst_list", "items")


def register_then_read(user: SarkUser) -> None:
    """Register, then read the id back: the registration fails when its server cannot be read."""
    with user.client.post("/api/v1/servers/", json=server_body(3), headers=user.headers(True),
                          name=NAMES["register_then_read"], catch_response=True) as resp:
        body = _judge(resp, "server_id")
        if body is None:
            return
        sid = str(body["server_id"])
        back = user._get(f"/api/v1/servers/{sid}", "get_server", "id")
        if back is None or str(back.get("id")) != sid:
            resp.failure("registered server could not be read back")
            return
        user.my_ids.append(sid)
        _remember(sid)


TASK_FUNCTIONS: dict[str, Callable[[SarkUser], None]] = {
    f.__name__: f
    for f in (register_server, register_server_many_tools, list_servers, search_servers, get_server,
              evaluate_tool_invocation, evaluate_server_action, health, burst_list, register_then_read)
}
assert set(TASK_FUNCTIONS) == set(TASKS), "every catalog task needs a Locust implementation"


def task_list(mix: list[tuple[str, int]]) -> list[Callable[[SarkUser], None]]:
    """Weights as repeats, reduced by their gcd: what Locust's metaclass does with a dict, which it
    only does while the class is created (so a dict assigned afterwards would lose the weights)."""
    step = math.gcd(*(int(w) for _, w in mix)) or 1
    return [TASK_FUNCTIONS[name] for name, weight in mix for _ in range(int(weight) // step)]


SarkUser.tasks = task_list(SCENARIO["mix"])  # type: ignore[assignment]


def stage_targets(scenario: dict[str, Any]) -> list[tuple[float, int]]:
    """Stages as (end time in s, users), from the scenario's fractions of duration and users."""
    duration, users = float(scenario["duration_s"]), int(scenario["users"])
    return [(s["until_fraction"] * duration, max(round(s["users_fraction"] * users), 0))
            for s in scenario.get("stages", ())]


if SCENARIO.get("stages"):
    # Only defined for staged scenarios: a shape class makes Locust ignore -u/-r/-t.
    class StagesShape(LoadTestShape):
        stages = stage_targets(SCENARIO)
        spawn_rate = float(SCENARIO["spawn_rate"])

        def tick(self) -> tuple[int, float] | None:
            run_time = self.get_run_time()
            for until, users in self.stages:
                if run_time < until:
                    return users, self.spawn_rate
            return None
