"""A deterministic policy rule set, standing in for SARK's OPA policies.

The same request always gets the same decision (given the same server facts), which is what makes
decisions cacheable and load-test results comparable between runs.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

POLICY_VERSION = "demo-1"
ACTIONS = (
    "tool:invoke",
    "server:register",
    "server:read",
    "server:list",
    "server:update",
    "server:delete",
)
LEVELS = ("low", "medium", "high", "critical")
_DESTRUCTIVE = re.compile(r"(delete|drop|destroy|truncate|shutdown|wipe|exec|rm_|kill)", re.IGNORECASE)
_SECRET_KEYS = re.compile(r"(password|passwd|secret|token|private_key|credential)", re.IGNORECASE)


class PolicyInputError(ValueError):
    """The request body is not a policy request (answered 422)."""


@dataclass(frozen=True)
class PolicyRequest:
    action: str
    tool: str
    server_id: str
    parameters: dict[str, Any]

    @classmethod
    def parse(cls, body: Any) -> PolicyRequest:
        if not isinstance(body, dict):
            raise PolicyInputError("body must be a JSON object")
        action = body.get("action")
        if not isinstance(action, str) or not action:
            raise PolicyInputError("action is required")
        tool = body.get("tool") or ""
        params = body.get("parameters") or {}
        if not isinstance(tool, str) or not isinstance(params, dict):
            raise PolicyInputError("tool must be a string and parameters an object")
        if action == "tool:invoke" and not tool:
            raise PolicyInputError("tool is required for tool:invoke")
        return cls(action, tool, str(body.get("server_id") or ""), params)

    def cache_key(self) -> str:
        raw = json.dumps([self.action, self.tool, self.server_id, self.parameters], sort_keys=True, default=str)
        return "policy:" + hashlib.sha1(raw.encode()).hexdigest()

    @property
    def needs_server(self) -> bool:
        return self.action == "tool:invoke" and bool(self.server_id)


def evaluate(req: PolicyRequest, facts: dict[str, Any] | None) -> dict[str, Any]:
    """Decide. `facts` is the server row (status, server_level, tool_level) or None when unknown."""
    decision, reason = _decide(req, facts)
    return {
        "decision": decision,
        "allow": decision == "allow",
        "reason": reason,
        "action": req.action,
        "tool": req.tool or None,
        "server_id": req.server_id or None,
        "policy_version": POLICY_VERSION,
    }


def _decide(req: PolicyRequest, facts: dict[str, Any] | None) -> tuple[str, str]:
    if req.action not in ACTIONS:
        return "deny", f"unknown action {req.action}"
    if req.action in ("server:read", "server:list"):
        return "allow", "read access is allowed"
    if req.action in ("server:update", "server:delete"):
        return "deny", f"{req.action} requires an administrator"
    if req.action == "server:register":
        level = req.parameters.get("sensitivity_level", "medium")
        if level == "critical":
            return "deny", "critical servers must be registered by an administrator"
        return "allow", "registration allowed"
    return _decide_tool(req, facts)


def _decide_tool(req: PolicyRequest, facts: dict[str, Any] | None) -> tuple[str, str]:
    if _DESTRUCTIVE.search(req.tool):
        return "deny", "destructive tools are not allowed"
    if any(_SECRET_KEYS.search(str(k)) for k in req.parameters):
        return "deny", "parameters carry a secret"
    if not req.server_id:
        return "allow", "tool allowed (no server context)"
    if facts is None:
        return "deny", "unknown server"
    if facts["status"] != "active":
        return "deny", f"server is {facts['status']}"
    level = facts.get("tool_level") or facts.get("server_level") or "medium"
    if level == "critical":
        return "deny", "critical tools need an approval"
    return "allow", f"{level} sensitivity tool allowed"
