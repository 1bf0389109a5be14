"""Every finding of one run, computed once in the evaluate stage and stored in the Outcome: first what
went wrong with the run as such (nothing succeeded, an endpoint never succeeded, every policy decision
a deny), then what its scenario is for (ci_perf.scenario_findings). Reports only render them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ci_perf.model import CheckResult, EndpointStats, ErrorCount, Finding, RunResult, Status
from ci_perf.observe.model import SystemMetrics
from ci_perf.scenario_findings import for_run

_STATUS = re.compile(r"^HTTP (\d{3})")

# What to check first for the most common failure, by its HTTP status (or "connection").
_FIRST_LOOK = {
    "401": "the API refused the credentials: check that the token is signed with the API's secret "
    "(auth.jwt secret_env, SECRET_KEY and JWT_SECRET_KEY alike) or that CI_PERF_BEARER_TOKEN is valid",
    "403": "the API refused the caller: check the token's role (auth.jwt role) and, for writes, the CSRF "
    "setting (auth.csrf)",
    "404": "the paths do not exist on this API: check --host and that the scenario fits the API's version",
    "422": "the API rejected the payloads: check that the scenario fits the API's version",
    "429": "the API rate-limited the load: raise its limit for the load test or set RATE_LIMIT_ENABLED=false",
    "5xx": "the API failed on the server side: read its log (logs/api.log in the report folder)",
    "connection": "the API did not answer: check that it is up and --host points at it",
}


def findings_for(result: RunResult, system: SystemMetrics | None, checks: Sequence[CheckResult]) -> tuple[Finding, ...]:
    return (*run_health(result), *for_run(result, system, checks))


def run_health(result: RunResult) -> list[Finding]:
    total = result.total
    if total.requests == 0:
        return [
            Finding(
                "No requests",
                Status.FAIL,
                "The load tool made no requests: there is nothing to judge",
                "check the tool's log in the report folder (raw/) and that the scenario's users and duration "
                "are above zero",
            )
        ]
    if total.successes == 0:
        errors = total.errors or tuple(x for e in result.endpoints for x in e.errors)  # totals may carry none
        return [_failed("No successful request", f"Every one of {total.requests:,} requests failed", errors)]
    # Every decision a deny explains the rest (SARK fails closed, registrations then fail): it leads.
    denied = all_denied(result)
    failed = failed_endpoints([e for e in result.endpoints if e.requests and not e.successes])
    return ([denied] if denied else []) + failed


def failed_endpoints(failed: list[EndpointStats]) -> list[Finding]:
    """Endpoints that never succeeded: one finding per kind of failure (its status), so that six
    endpoints refused with 401 read as one problem, not six."""
    groups: dict[str, list[EndpointStats]] = {}
    for e in failed:
        top = most_common(e.errors)
        groups.setdefault(_kind(top.error if top else ""), []).append(e)
    out = []
    for kind, members in groups.items():
        if len(members) == 1:
            e = members[0]
            out.append(
                _failed(f"Endpoint failed [{e.key}]", f"{e.key}: every one of {e.requests:,} requests failed", e.errors)
            )
            continue
        names = ", ".join(e.key for e in members[:3]) + (f" and {len(members) - 3} more" if len(members) > 3 else "")
        requests = sum(e.requests for e in members)
        subject = f"{len(members)} endpoints never succeeded ({names}): {requests:,} of {requests:,} requests failed"
        errors = tuple(x for e in members for x in e.errors)
        out.append(_failed(f"Endpoints failed [{kind or 'no answer'}]", subject, errors))
    return out


def _kind(error: str) -> str:
    """The kind of a failure text: its HTTP status ("HTTP 401"), or its words before the first colon."""
    m = _STATUS.match(error)
    return m.group(0) if m else error.split(":", 1)[0]


def most_common(errors: Sequence[ErrorCount]) -> ErrorCount | None:
    return max(errors, key=lambda e: e.occurrences, default=None)


def _failed(name: str, text: str, errors: Sequence[ErrorCount]) -> Finding:
    """A failing finding: its figures, the most common failure, and what to check first for it."""
    top = most_common(errors)
    if top is not None:
        text += f"; most common: {top.error} (×{top.occurrences:,})"
    look = first_look(top.error if top else "")
    return Finding(name, Status.FAIL, text, f"{name}: {look}" if look else "")


def first_look(error: str) -> str:
    """What to check first for a failure text (C2 texts: "HTTP 401: body", "connection error: ...")."""
    m = _STATUS.match(error)
    if m:
        code = m.group(1)
        return _FIRST_LOOK.get(code) or (_FIRST_LOOK["5xx"] if code.startswith("5") else "")
    if error.startswith("connection error"):
        return _FIRST_LOOK["connection"]
    return "read the failure texts in the report's error table" if error else ""


def all_denied(result: RunResult) -> Finding | None:
    """Every policy decision a deny, also for requests built to be allowed: SARK fails closed when its
    policy engine is down, so an outage looks like fast, successful denies."""
    decisions = result.decisions or {}
    denies = decisions.get("deny", 0)
    if not denies or decisions.get("allow", 0):
        return None
    return Finding(
        "Policy decisions",
        Status.FAIL,
        f"Every policy decision was deny ({denies:,} of {sum(decisions.values()):,}), also for requests built "
        "to be allowed: the policy engine is likely down or unreachable (SARK fails closed)",
        "Policy decisions: check OPA_URL and the policy service's log (logs/opa.log in the report folder); "
        "SARK answers deny when it cannot reach OPA",
    )
