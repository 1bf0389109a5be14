"""Validation of a server registration: SARK's ServerRegistrationRequest, normalised or rejected (422)."""

from __future__ import annotations

from typing import Any

from ci_perf.demo.policy import LEVELS

TRANSPORTS = ("http", "stdio", "sse")
MCP_VERSION = "2025-06-18"  # SARK's default `version`: the MCP protocol version, not the server's
MAX_TOOLS = 1000


class ValidationError(ValueError):
    """Answered 422 with the message as detail."""


def server_payload(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ValidationError("body must be a JSON object")
    name = _text(body, "name", required=True, limit=255)
    transport = _text(body, "transport", required=True)
    if transport not in TRANSPORTS:
        raise ValidationError(f"transport must be one of {', '.join(TRANSPORTS)}")
    if "tools" not in body:
        raise ValidationError("tools is required (a list, may be empty)")
    capabilities = body.get("capabilities") or []
    if not isinstance(capabilities, list) or not all(isinstance(c, str) for c in capabilities):
        raise ValidationError("capabilities must be a list of strings")
    metadata = body.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise ValidationError("metadata must be an object")
    return {
        "name": name,
        "transport": transport,
        "endpoint": _text(body, "endpoint", limit=500) or None,
        "command": _text(body, "command", limit=500) or None,
        "version": _text(body, "version", limit=64) or MCP_VERSION,
        "description": _text(body, "description", limit=1000),
        "capabilities": capabilities,
        "sensitivity_level": _level(body, "sensitivity_level"),
        "signature": _text(body, "signature", limit=10_000) or None,
        "metadata": metadata,
        "tools": _tools(body.get("tools")),
    }


def _tools(raw: Any) -> list[dict[str, Any]]:
    if not isinstance(raw, list) or len(raw) > MAX_TOOLS:
        raise ValidationError(f"tools must be a list of at most {MAX_TOOLS} objects")
    tools: dict[str, dict[str, Any]] = {}
    for i, t in enumerate(raw):
        if not isinstance(t, dict):
            raise ValidationError(f"tools[{i}] must be an object")
        params = t.get("parameters") or {}
        if not isinstance(params, dict):
            raise ValidationError(f"tools[{i}].parameters must be an object")
        approval = t.get("requires_approval", False)
        if not isinstance(approval, bool):
            raise ValidationError(f"tools[{i}].requires_approval must be true or false")
        name = _text(t, "name", required=True, limit=255, where=f"tools[{i}].")
        if name in tools:
            raise ValidationError(f"tools[{i}].name {name!r} is listed twice")
        _text(t, "signature", limit=10_000, where=f"tools[{i}].")
        tools[name] = {
            "name": name,
            "description": _text(t, "description", limit=10_000, where=f"tools[{i}]."),
            "parameters": params,
            "sensitivity_level": _level(t, "sensitivity_level", where=f"tools[{i}]."),
            "requires_approval": approval,
        }
    return list(tools.values())


def _text(body: dict[str, Any], key: str, required: bool = False, limit: int = 255, where: str = "") -> str:
    value = body.get(key)
    if value is None or value == "":
        if required:
            raise ValidationError(f"{where}{key} is required")
        return ""
    if not isinstance(value, str):
        raise ValidationError(f"{where}{key} must be a string")
    if len(value) > limit:
        raise ValidationError(f"{where}{key} is longer than {limit} characters")
    return value


def _level(body: dict[str, Any], key: str, where: str = "") -> str:
    value = body.get(key) or "medium"
    if value not in LEVELS:
        raise ValidationError(f"{where}{key} must be one of {', '.join(LEVELS)}")
    return str(value)
