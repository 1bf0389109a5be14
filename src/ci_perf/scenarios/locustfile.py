"""The Locust side of every catalog scenario: one FastHttpUser whose task mix, think time, accepted
statuses and (optional) stages come from CI_PERF_SCENARIO, and whose auth comes from CI_PERF_AUTH.

CI_PERF_SCENARIO is the JSON of Scenario.to_json(), or just a catalog name for manual runs
(`CI_PERF_SCENARIO=smoke_test locust -f locustfile.py -H http://127.0.0.1:8000`). What each task sends
and which answer is right come from the payload table (catalog.PAYLOADS, in the JSON as `tasks`), which
k6_script.js reads too; answers are judged by answers.judge (contract C2). Each policy answer's decision
rides to the plugin in the request's context (`decision`), where it is counted.
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
from urllib.parse import urlencode

from locust import LoadTestShape, between, constant
from locust.contrib.fasthttp import FastHttpUser

from ci_perf.auth import Auth
from ci_perf.scenarios.answers import judge
from ci_perf.scenarios.catalog import READ_NAME, REGISTER_NAME, SCENARIOS
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
PAYLOADS: dict[str, dict[str, Any]] = SCENARIO["tasks"]
SERVER: dict[str, Any] = SCENARIO["server"]
MAX_IDS = 200  # ids a user remembers for reads; bounded so long soaks don't grow memory
THINK = tuple(float(x) for x in SCENARIO.get("think_time_s", (0.1, 0.5)))
# The registration a read falls back on when the user has none yet (scenarios without register_server).
FALLBACK_REGISTER = {
    "method": "POST",
    "path": "/api/v1/servers/",
    "name": REGISTER_NAME,
    "status": 201,
    "keys": ["server_id", "status"],
    "tools": 3,
}
READ_BACK = {
    "method": "GET",
    "path": "/api/v1/servers/{id}",
    "name": READ_NAME,
    "status": 200,
    "keys": ["id", "name", "status"],
}


def _fill(value: Any, uid: str) -> Any:
    if isinstance(value, str):
        return value.replace("{uid}", uid)
    if isinstance(value, dict):
        return {k: _fill(v, uid) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, uid) for v in value]
    return value


def server_body(n_tools: int, owner_id: str) -> dict[str, Any]:
    """A registration from the table's template (catalog.SERVER), as k6_script.js builds it."""
    tools = SERVER["tools"]
    body: dict[str, Any] = _fill(SERVER["template"], uuid.uuid4().hex[:12])
    body["tools"] = [
        {**tools[i % len(tools)], "name": tools[i % len(tools)]["name"] + (f"_{i}" if i >= len(tools) else "")}
        for i in range(n_tools)
    ]
    body["sensitivity_level"] = random.choice(SERVER["sensitivity"])
    body["metadata"] = {
        "tags": random.choice(SERVER["tags"]),
        "team_id": SERVER["team_id"],
        "owner_id": owner_id,
        "source": "ci-perf",
    }
    return body


def query_for(spec: dict[str, Any], cursor: str | None) -> dict[str, str]:
    q = {k: random.choice(values) for k, values in spec["query"].items()}
    if cursor:
        q["cursor"] = cursor
    return q


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
        self.cursors: dict[str, str | None] = {}  # paging task -> next_cursor of its previous page
        self.identity = Identity(_user_number(self), TOKENS)
        self.step = 0  # walk scenarios: position in the mix

    def headers(self, write: bool) -> dict[str, str]:
        """Auth for one request: a tokens file's bearer token is picked per request (renewal)."""
        base = WRITE_HEADERS if write else READ_HEADERS
        if not self.identity.has_tokens:
            return base
        return {**base, "Authorization": f"Bearer {self.identity.token()}"}

    def send(
        self,
        spec: dict[str, Any],
        *,
        path: str | None = None,
        query: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
        expect: str | None = None,
        check: Callable[[dict[str, Any]], str] | None = None,
    ) -> dict[str, Any] | None:
        """One request of the table, judged; the JSON body of a right answer, else None."""
        write = spec["method"] == "POST"
        url = (path or spec["path"]) + (f"?{urlencode(query)}" if query else "")
        with self.client.request(
            spec["method"], url, json=body, headers=self.headers(write), name=spec["name"], catch_response=True
        ) as resp:
            error = getattr(resp, "error", None)
            verdict = judge(
                resp.status_code, resp.text or "", spec, EXPECTED, expect, type(error).__name__ if error else ""
            )
            if verdict.decision is not None:
                resp.request_meta["context"]["decision"] = verdict.decision  # the plugin counts it
            failure = verdict.failure or (check(verdict.body) if check and verdict.body is not None else "")
            if failure:
                resp.failure(failure)
                return None
            resp.success()
            return verdict.body

    def register(self, spec: dict[str, Any]) -> str | None:
        body = self.send(spec, body=server_body(int(spec["tools"]), self.identity.user_id))
        if body is None or body.get("server_id") is None:
            return None
        sid = str(body["server_id"])
        self.my_ids.append(sid)
        del self.my_ids[:-MAX_IDS]
        if spec.get("read_back"):
            self.send(
                READ_BACK,
                path=f"/api/v1/servers/{sid}",
                check=lambda b: "" if str(b.get("id")) == sid else "wrong answer: id mismatch",
            )
        return sid

    def some_id(self) -> str | None:
        """A server this user registered, or a fresh registration."""
        return random.choice(self.my_ids) if self.my_ids else self.register(FALLBACK_REGISTER)

    def play(self, task: str) -> None:
        spec = PAYLOADS[task]
        if spec["policies"]:
            policy = random.choice(spec["policies"])
            sid = self.my_ids[-1] if policy["on_server"] and self.my_ids else None
            self.send(
                spec,
                expect=policy["expect"],
                body={
                    "user_id": self.identity.user_id,
                    "action": policy["action"],
                    "tool": policy["tool"],
                    "server_id": sid,
                    "parameters": policy["parameters"],
                },
            )
        elif spec["method"] == "POST":
            self.register(spec)
        elif "{id}" in spec["path"]:
            sid = self.some_id()
            if sid is not None:
                self.send(spec, path=spec["path"].replace("{id}", sid))
        else:
            page = self.send(spec, query=query_for(spec, self.cursors.get(task)))
            if spec["paging"]:  # follow the cursor while there are pages; start over after the last
                self.cursors[task] = (
                    str(page["next_cursor"]) if page and page.get("has_more") and page.get("next_cursor") else None
                )


def _task(name: str) -> Callable[[SarkUser], None]:
    def run(user: SarkUser) -> None:
        user.play(name)

    run.__name__ = name
    return run


TASK_FUNCTIONS: dict[str, Callable[[SarkUser], None]] = {name: _task(name) for name in PAYLOADS}


def task_list(mix: list[tuple[str, int]]) -> list[Callable[[SarkUser], None]]:
    """Weights as repeats, reduced by their gcd: what Locust's metaclass does with a dict, which it
    only does while the class is created (so a dict assigned afterwards would lose the weights)."""
    step = math.gcd(*(int(w) for _, w in mix)) or 1
    return [TASK_FUNCTIONS[name] for name, weight in mix for _ in range(int(weight) // step)]


SEQUENCE = task_list(SCENARIO["mix"])


def walk(user: SarkUser) -> None:
    """Walk scenarios: the mix in order, one task per turn."""
    task = SEQUENCE[user.step % len(SEQUENCE)]
    user.step += 1
    task(user)


SarkUser.tasks = [walk] if SCENARIO.get("walk") else SEQUENCE  # type: ignore[assignment]


def stage_targets(scenario: dict[str, Any]) -> list[tuple[float, int]]:
    """Stages as (end time in s, users), from the scenario's fractions of duration and users."""
    duration, users = float(scenario["duration_s"]), int(scenario["users"])
    return [
        (s["until_fraction"] * duration, max(round(s["users_fraction"] * users), 0)) for s in scenario.get("stages", ())
    ]


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
