"""Each scenario's finding from a real short run: `ci-perf run` on the local backend against the demo
API with a fault knob set, the system sampler beside the load (each run under a minute)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ci_perf.model import Finding, Status, Tool
from observed_run import observed_run
from stack_helpers import HAVE_SERVICES, SKIP_REASON

pytestmark = [pytest.mark.integration, pytest.mark.skipif(not HAVE_SERVICES, reason=SKIP_REASON)]


def by_name(findings: list[Finding]) -> dict[str, Finding]:
    return {f.name: f for f in findings}


def test_stress_run_with_injected_latency_reports_a_breaking_point(tmp_path: Path) -> None:
    # 10 ms of database time per use of a pooled connection, two connections: the database serves about
    # 190 uses a second. The ramp (50, 100, 150, 200 users) offers ~130 of them at 50 users and more than
    # it can serve from 100 users on, where requests queue for the pool and p95 passes 200 ms.
    slow_db = {"CI_PERF_DEMO_LATENCY_MS": "db=10", "CI_PERF_DEMO_DB_POOL": "2"}
    _, outcome = observed_run(tmp_path, "stress_test", 200, 40, slow_db)
    bp = by_name(list(outcome.findings))["Breaking point"]
    assert bp.status is Status.WARN, bp.text
    assert "Breaking point at 100 users" in bp.text or "Breaking point at 150 users" in bp.text, bp.text
    assert "supports up to 50 concurrent users" in bp.text or "supports up to 100 concurrent users" in bp.text
    report = (tmp_path / "report.md").read_text()
    assert "Breaking point at" in report and "## System Under Test" in report
    for row in ("| api |", "| postgres |", "| redis |"):
        assert row in report
    assert "PostgreSQL:" in report and "queries, mean" in report and "Redis:" in report and "ops/s" in report
    (db,) = [c for c in outcome.evaluation.checks if c.name == "Database queries"]
    assert db.status is Status.PASS and db.actual is not None and db.actual < 20  # judged, not skipped
    html = (tmp_path / "report.html").read_text()
    assert 'aria-label="CPU per service"' in html and 'aria-label="Memory per service (anonymous RSS)"' in html


def test_soak_run_with_the_leak_knob_reports_the_leak(tmp_path: Path) -> None:
    code, outcome = observed_run(tmp_path, "soak_test", 50, 40, {"CI_PERF_DEMO_LEAK_KB_PER_REQUEST": "32"})
    found = by_name(list(outcome.findings))
    leak = found["Memory leak [api]"]
    assert leak.status is Status.FAIL and "Memory leak in api" in leak.text, leak.text
    assert found["Memory leak [postgres]"].status is Status.PASS
    assert code == 1  # a leak is the soak test's question answered "no": the gate fails
    assert 'name="finding: Memory leak [api]"' in (tmp_path / "junit.xml").read_text()


def test_soak_run_without_the_leak_knob_reports_no_leak(tmp_path: Path) -> None:
    code, outcome = observed_run(tmp_path, "soak_test", 50, 40, {})
    found = list(outcome.findings)
    leaks = [f for f in found if f.name.startswith("Memory leak")]
    assert {f.name for f in leaks} == {f"Memory leak [{s}]" for s in ("api", "opa", "postgres", "redis")}
    assert all(f.status is Status.PASS for f in leaks), [f.text for f in leaks]
    assert code == 0


def test_spike_run_reports_the_recovery_time(tmp_path: Path) -> None:
    _, outcome = observed_run(tmp_path, "spike_test", 200, 40, {"CI_PERF_DEMO_LATENCY_MS": "50"})
    rec = by_name(list(outcome.findings))["Spike recovery"]
    assert rec.status is Status.PASS and rec.text.startswith("Recovered "), rec.text


def test_rate_limited_run_reports_when_429_starts(tmp_path: Path) -> None:
    # 150 requests a minute for the one identity every user shares: ~15 req/s exhaust it after ~10 s.
    limit = {"RATE_LIMIT_ENABLED": "true", "RATE_LIMIT_PER_MINUTE": "150"}
    _, outcome = observed_run(tmp_path, "load_test_moderate", 20, 24, limit, identities=1)
    onset = by_name(list(outcome.findings))["Rate limit onset"]
    assert onset.status is Status.WARN and "answered 429, from " in onset.text, onset.text
    first_s = float(onset.text.split(", from ")[1].split("s ")[0])
    assert 4 <= first_s <= 16


def test_concurrent_operations_run_stores_every_registration(tmp_path: Path) -> None:
    _, outcome = observed_run(tmp_path, "concurrent_operations", 40, 20, {})
    cons = by_name(list(outcome.findings))["Consistency"]
    assert cons.status is Status.PASS and "successful registrations are stored" in cons.text, cons.text
    db = outcome.system.database if outcome.system else None
    assert db is not None and db.servers_after is not None and db.servers_after > 20


@pytest.mark.parametrize("tool", ["locust", "k6"])
def test_rate_limit_test_counts_expected_429s_per_window(tmp_path: Path, tool: Tool) -> None:
    # rate_limit_test has no think time: 30 users exhaust 600 requests a minute within the first seconds.
    limit = {"RATE_LIMIT_ENABLED": "true", "RATE_LIMIT_PER_MINUTE": "600"}
    _, outcome = observed_run(tmp_path, "rate_limit_test", 30, 15, limit, tool=tool, identities=1)
    onset = by_name(list(outcome.findings))["Rate limit onset"]
    assert onset.status is Status.PASS and "answered 429, from " in onset.text, onset.text
    limited = sum(w.limited or 0 for w in outcome.result.total.windows)
    assert limited > 0 and outcome.result.total.failures == 0  # expected: counted, yet not failures
