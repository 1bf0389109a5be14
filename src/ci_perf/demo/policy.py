"""Policy requests and decisions: SARK's request body, the OPA input built from it, the cache key.

The rules themselves live in the policy service (ci_perf.demo.rules, served by ci_perf.demo.opa, or a
real OPA); this module only asks and reads the answer, failing closed as SARK does.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from typing import Any

LEVELS = ("low", "medium", "high", "critical")
FAIL_CLOSED_PREFIX = "Policy evaluation error: "


class PolicyInputError(ValueError):
    """The request body is not a policy request (answered 422)."""


@dataclass(frozen=True)
class Caller:
    """Who is asking: from the bearer token's claims (or a stand-in identity in api-key/none mode)."""

    user_id: str
    email: str
    role: str
    teams: tuple[str, ...] = ()

    def as_input(self) -> dict[str, Any]:
        return {"id": self.user_id, "email": self.email, "role": self.role, "teams": list(self.teams)}


@dataclass(frozen=True)
class PolicyRequest:
    """SARK's PolicyEvaluationRequest: user_id (UUID), action, tool?, server_id? (UUID or null), parameters."""

    user_id: str
    action: str
    tool: str
    server_id: str
    parameters: dict[str, Any]

    @classmethod
    def parse(cls, body: Any) -> PolicyRequest:
        if not isinstance(body, dict):
            raise PolicyInputError("body must be a JSON object")
        user_id = _uuid(body.get("user_id"), "user_id", required=True)
        action = body.get("action")
        if not isinstance(action, str) or not action:
            raise PolicyInputError("action is required (a string)")
        tool = body.get("tool")
        if tool is not None and not isinstance(tool, str):
            raise PolicyInputError("tool must be a string or null")
        params = body.get("parameters", {})
        if not isinstance(params, dict):
            raise PolicyInputError("parameters must be an object")
        return cls(user_id, action, tool or "", _uuid(body.get("server_id"), "server_id"), params)

    def cache_key(self, caller: Caller) -> str:
        """User, action and resource (tool, server) as SARK keys its cache, plus a digest of the parameters:
        the rules read parameter names, so two calls differing only there must not share an answer."""
        params = hashlib.sha1(json.dumps(self.parameters, sort_keys=True, default=str).encode()).hexdigest()[:16]
        return f"policy:{self.user_id}:{caller.role}:{self.action}:{self.tool or '-'}:{self.server_id or '-'}:{params}"

    def opa_input(self, caller: Caller, tool_level: str, server: dict[str, Any] | None) -> dict[str, Any]:
        """The input document, shaped as SARK's OPA client shapes it (user, action, tool, server, context).
        SARK's evaluate route forwards neither parameters nor server_id; the demo adds both to context."""
        return {
            "user": {**caller.as_input(), "id": self.user_id},
            "action": self.action,
            "tool": {"name": self.tool, "sensitivity_level": tool_level} if self.tool else None,
            "server": server,
            "context": {"timestamp": 0, "server_id": self.server_id or None, "parameters": self.parameters},
        }


def registration_input(caller: Caller, server: dict[str, Any]) -> dict[str, Any]:
    """What SARK's registration check sends: action server:register, the role and server facts in context."""
    return {
        "user": caller.as_input(),
        "action": "server:register",
        "tool": None,
        "server": {"name": server["name"], "sensitivity_level": server["sensitivity_level"]},
        "context": {"user_role": caller.role, "user_teams": list(caller.teams), "server_name": server["name"],
                    "sensitivity_level": server["sensitivity_level"], "transport": server["transport"]},
    }  # fmt: skip


def read_decision(answer: Any) -> dict[str, Any]:
    """OPA's `{"result": ...}` -> {decision, reason, filtered_parameters, audit_id}. The result may be the
    object SARK's client reads (allow, audit_reason, ...) or a bare boolean (querying a rule directly)."""
    if not isinstance(answer, dict):
        raise ValueError("the policy answer is not an object")
    result = answer.get("result")
    if isinstance(result, bool):
        result = {"allow": result}
    if not isinstance(result, dict):
        raise ValueError("the policy answer has no result (is the policy loaded at OPA_POLICY_PATH?)")
    allow = result.get("allow") is True
    filtered = result.get("filtered_parameters")
    return {
        "decision": "allow" if allow else "deny",
        "reason": str(result.get("audit_reason") or "Policy evaluation completed"),
        "filtered_parameters": filtered if isinstance(filtered, dict) else None,
        "audit_id": str(result["audit_id"]) if result.get("audit_id") else None,
    }


def fail_closed(why: str) -> dict[str, Any]:
    return {"decision": "deny", "reason": FAIL_CLOSED_PREFIX + why, "filtered_parameters": None, "audit_id": None}


def _uuid(value: Any, name: str, required: bool = False) -> str:
    if value is None or value == "":
        if required:
            raise PolicyInputError(f"{name} is required (a UUID)")
        return ""
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        raise PolicyInputError(f"{name} must be a UUID") from None
