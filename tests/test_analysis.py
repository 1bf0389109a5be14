"""What went wrong with a run as such: nothing succeeded, endpoints that never succeeded (grouped by how
they failed), every policy decision a deny; each a failing finding whose advice says what to check."""

from __future__ import annotations

from dataclasses import replace

from ci_perf.analysis import run_health
from ci_perf.model import AGGREGATE, EndpointStats, ErrorCount, RunResult, Status
from synth import run


def stats(name: str, requests: int, failures: int, *errors: tuple[str, int], method: str = "GET") -> EndpointStats:
    errs = tuple(ErrorCount(e, n) for e, n in errors)
    return EndpointStats(method, name, requests, failures, 1.0, 1, 1, 1, 1, 1, 1, 1, errors=errs)


def result_of(*endpoints: EndpointStats, decisions: dict[str, int] | None = None) -> RunResult:
    requests, failures = sum(e.requests for e in endpoints), sum(e.failures for e in endpoints)
    errors = tuple(x for e in endpoints for x in e.errors)
    total = replace(stats(AGGREGATE, requests, failures), method="", errors=errors)
    return RunResult(run(1).meta, total, endpoints, decisions=decisions)


UNAUTHORIZED = 'HTTP 401: {"detail":"Could not validate credentials"}'


def test_a_healthy_run_has_no_such_finding() -> None:
    assert run_health(run(1)) == []
    assert run_health(result_of(stats("/a", 10, 0), decisions={"allow": 5, "deny": 5})) == []


def test_no_requests_at_all_fails() -> None:
    (f,) = run_health(result_of())
    assert f.name == "No requests" and f.status is Status.FAIL and "raw/" in f.advice


def test_nothing_succeeded_leads_with_the_most_common_answer_and_the_auth_setting() -> None:
    (f,) = run_health(result_of(stats("/a", 6, 6, (UNAUTHORIZED, 6)), stats("/b", 2, 2, ("HTTP 500", 2))))
    assert f.name == "No successful request" and f.status is Status.FAIL
    assert f.text == f"Every one of 8 requests failed; most common: {UNAUTHORIZED} (×6)"
    assert "SECRET_KEY" in f.advice and "CI_PERF_BEARER_TOKEN" in f.advice


def test_endpoints_that_never_succeeded_are_grouped_by_how_they_failed() -> None:
    found = run_health(
        result_of(
            stats("/ok", 10, 0),
            stats("/a", 3, 3, (UNAUTHORIZED, 3)),
            stats("/b", 4, 4, (UNAUTHORIZED, 4)),
            stats("/api/v1/servers/", 5, 5, ("HTTP 500: boom", 5), method="POST"),
        )
    )
    by = {f.name: f for f in found}
    assert set(by) == {"Endpoints failed [HTTP 401]", "Endpoint failed [POST /api/v1/servers/]"}
    assert by["Endpoints failed [HTTP 401]"].text.startswith("2 endpoints never succeeded (GET /a, GET /b): 7 of 7")
    down = by["Endpoint failed [POST /api/v1/servers/]"]
    assert down.text == "POST /api/v1/servers/: every one of 5 requests failed; most common: HTTP 500: boom (×5)"
    assert "logs/api.log" in down.advice and all(f.status is Status.FAIL for f in found)


def test_every_decision_a_deny_names_the_policy_engine() -> None:
    (f,) = run_health(result_of(stats("/p", 10, 2), decisions={"deny": 8}))
    assert f.name == "Policy decisions" and f.status is Status.FAIL and "fails closed" in f.text
    assert run_health(result_of(stats("/p", 10, 0), decisions={"deny": 8, "allow": 2})) == []
