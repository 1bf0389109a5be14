"""Which answer is right (contract C2), for the Locust side; k6_script.js restates it (`judge`).

Every request is judged the same way in both tools: a status the scenario expects besides 2xx (429 in
rate_limit_test) is right as it is; any other non-2xx is `HTTP <status>: <body start>`; a 2xx must be
the payload table's status, a JSON object with the table's keys and, for a policy request, carry the
decision the request was built to get. Failure texts are the same strings in both tools.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

BODY_CHARS = 80


def decision_value(value: object) -> str:
    """Policy decisions as both tools count them: allow, deny, or other (anything else)."""
    return str(value) if value in ("allow", "deny") else "other"


def http_failure(status: int, text: str) -> str:
    body = " ".join(text.split())[:BODY_CHARS]
    return f"HTTP {status}: {body}" if body else f"HTTP {status}"


@dataclass(frozen=True)
class Verdict:
    failure: str = ""  # "" when the answer is right
    body: dict[str, Any] | None = None  # the JSON object of a 2xx answer
    decision: str | None = None  # a 2xx policy answer's decision (allow / deny / other), right or not


def judge(
    status: int,
    text: str,
    payload: dict[str, Any],
    expected_statuses: frozenset[int],
    expect_decision: str | None = None,
    connection_error: str = "",
) -> Verdict:
    if status in expected_statuses:
        return Verdict()
    if not status:
        return Verdict(f"connection error: {connection_error or 'unknown'}")
    if not 200 <= status < 300:
        return Verdict(http_failure(status, text))
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return Verdict("wrong answer: not JSON")
    decision = decision_value(body["decision"]) if expect_decision and "decision" in body else None
    if status != payload["status"]:
        return Verdict(f"wrong answer: status {status}, expected {payload['status']}", body, decision)
    missing = next((k for k in payload["keys"] if k not in body), None)
    if missing is not None:
        return Verdict(f"wrong answer: missing {missing}", body, decision)
    if expect_decision and decision != expect_decision:
        return Verdict(f"wrong answer: decision {decision}, expected {expect_decision}", body, decision)
    return Verdict("", body, decision)
