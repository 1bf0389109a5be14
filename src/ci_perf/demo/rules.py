"""The policy stand-in's deterministic rules, over OPA's input document as SARK's OPA client sends it.

Input: {"user": {"id", "email", "role", "teams"}, "action", "tool": {"name", "sensitivity_level"} | null,
"server": {...} | null, "context": {...}}. SARK's registration check sends the role as context.user_role
and the server's level as context.sensitivity_level; both places are read. The same input always gets the
same decision, which is what makes decisions cacheable and runs comparable.
"""

from __future__ import annotations

import re
from typing import Any

WRITERS = ("admin", "developer")
_DESTRUCTIVE = re.compile(r"delete|drop|destroy|truncate|shutdown|wipe|exec|kill", re.IGNORECASE)
_SECRET_KEYS = re.compile(r"password|secret|token|credential|private_key", re.IGNORECASE)


def decide(doc: Any) -> tuple[bool, str]:
    """(allow, reason) for one input document; anything malformed is denied."""
    if not isinstance(doc, dict):
        return False, "input must be an object"
    user, context = _obj(doc.get("user")), _obj(doc.get("context"))
    role = str(user.get("role") or context.get("user_role") or "")
    action = doc.get("action")
    if action in ("server:read", "server:list"):
        return True, f"{action} is allowed for every role"
    if action in ("server:update", "server:delete"):
        return (True, f"{action} allowed for admin") if role == "admin" else (False, f"{action} requires admin")
    if action == "server:register":
        if role not in WRITERS:
            return False, f"role {role or 'none'} may not register servers"
        level = _obj(doc.get("server")).get("sensitivity_level") or context.get("sensitivity_level")
        if level == "critical":
            return False, "critical servers must be registered by an administrator"
        return True, "registration allowed"
    if action == "tool:invoke":
        return _tool(_obj(doc.get("tool")), _obj(context.get("parameters")), role)
    return False, f"unknown action {action}"


def _tool(tool: dict[str, Any], parameters: dict[str, Any], role: str) -> tuple[bool, str]:
    name = str(tool.get("name") or "")
    if _DESTRUCTIVE.search(name):
        return False, f"destructive tool {name} is not allowed"
    if any(_SECRET_KEYS.search(str(key)) for key in parameters):
        return False, "parameters carry a secret"
    if tool.get("sensitivity_level") == "critical":
        return False, "critical tools need an approval"
    if role not in WRITERS:
        return False, f"role {role or 'none'} may not invoke tools"
    return True, f"tool {name or '(none)'} allowed for {role}"


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
