"""Paired statistics of same-runner A/B rounds (ci_perf.paired): the interval, the rule, the comparison."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

import synth
from ci_perf.ab import round_order
from ci_perf.model import AGGREGATE, Change, Evaluation, Gating, Outcome, RunResult, SideBySide
from ci_perf.paired import (
    MIN_PAIRS,
    Interval,
    compare_paired,
    judge,
    median_interval,
    ratio_delta,
    sign_coverage,
)
from ci_perf.verdict import decide


def test_sign_coverage_is_the_binomial_tail() -> None:
    assert sign_coverage(3, 1) == pytest.approx(0.75)  # all three on one side: 2 * 1/8
    assert sign_coverage(5, 1) == pytest.approx(1 - 2 / 32)
    assert sign_coverage(10, 2) == pytest.approx(1 - 2 * (1 + 10) / 1024)


def test_interval_reaches_95_percent_when_it_can_and_says_so_when_it_cannot() -> None:
    few = median_interval([1.3, 1.1, 1.2])
    assert (few.low, few.median, few.high, few.pairs) == (1.1, 1.2, 1.3, 3)
    assert few.confidence == pytest.approx(0.75)
    many = median_interval([float(i) for i in range(1, 11)])  # 10 pairs: x(2)..x(9) covers 97.9%
    assert (many.low, many.high) == (2.0, 9.0)
    assert many.confidence >= 0.95
    assert sign_coverage(10, 3) < 0.95  # the next narrower one would not


@pytest.mark.parametrize(
    ("ratios", "direction", "expected"),
    [
        ([1.30, 1.25, 1.40, 1.28, 1.33], "lower", Change.DEGRADED),  # every pair slower, by far
        ([0.70, 0.75, 0.72, 0.80, 0.71], "lower", Change.IMPROVED),
        ([0.70, 0.75, 0.72, 0.80, 0.71], "higher", Change.DEGRADED),  # fewer req/s is worse
        # must NOT flag: a large median change with one pair the other way (the interval includes 1)
        ([1.30, 1.25, 0.95, 1.28, 1.33], "lower", Change.INCONCLUSIVE),
        # must NOT flag: every pair slower, but by less than min_effect (real but too small to gate on)
        ([1.05, 1.04, 1.06, 1.05, 1.07], "lower", Change.UNCHANGED),
        # must NOT flag: noise around 1
        ([1.08, 0.93, 1.02, 0.97, 1.11], "lower", Change.UNCHANGED),
    ],
)
def test_verdict_rule(ratios: list[float], direction: str, expected: Change) -> None:
    assert judge(median_interval(ratios), 1.0, 0.10, direction) is expected  # type: ignore[arg-type]


def test_the_effect_must_lie_on_the_side_the_interval_excludes() -> None:
    assert judge(Interval(1.2, 1.05, 1.4, 0.95, 6), 1.0, 0.10, "lower") is Change.DEGRADED
    assert judge(Interval(1.2, 0.99, 1.4, 0.95, 6), 1.0, 0.10, "lower") is Change.INCONCLUSIVE


def _round(seed: int, shift: float = 0.0, error_rate: float = 0.0) -> RunResult:
    return synth.run(seed, shift=shift, error_rate=error_rate, noise=0.05)


def test_a_slower_head_is_degraded_on_every_endpoint_and_an_a_a_pair_flags_nothing() -> None:
    base = [_round(i) for i in range(5)]
    slow = [_round(100 + i, shift=0.3) for i in range(5)]
    same = [_round(200 + i) for i in range(5)]
    slowed = compare_paired(base, slow, "ref:HEAD~1", min_effect=0.10)
    flagged = {(d.endpoint, d.metric) for d in slowed.regressions}
    assert {(AGGREGATE, "p95"), ("GET /api/v1/servers/", "p95"), ("POST /api/v1/policy/evaluate", "p95")} <= flagged
    p95 = next(d for d in slowed.deltas if (d.endpoint, d.metric) == (AGGREGATE, "p95"))
    assert p95.ci_low_pct is not None and p95.ci_low_pct > 0 and p95.delta_pct == pytest.approx(30, abs=10)
    assert "Measured side by side on this runner, 10 rounds" in slowed.method
    assert compare_paired(base, same, "ref:HEAD").regressions == ()


def test_synthetic_a_a_rounds_rarely_flag() -> None:
    """Many A/A comparisons of 5 pairs at 5% noise: none may flag (min_effect 10% and the interval)."""
    rng = random.Random(7)
    flagged = 0
    for trial in range(40):
        base = [_round(rng.randrange(10**6)) for _ in range(5)]
        head = [_round(rng.randrange(10**6)) for _ in range(5)]
        flagged += bool(compare_paired(base, head, f"aa{trial}").regressions)
    assert flagged == 0


def test_too_few_pairs_or_samples_is_inconclusive() -> None:
    base, head = [_round(1), _round(2)], [_round(3, shift=0.5), _round(4, shift=0.5)]
    cmp_ = compare_paired(base, head, "ref:x")
    assert cmp_.deltas and all(d.change is Change.INCONCLUSIVE for d in cmp_.deltas)
    assert f"need {MIN_PAIRS}" in cmp_.deltas[0].note
    thin = replace(base[0].total, requests=50, failures=0)  # 50 successes: enough for p95 (20), not p99 (100)
    pairs = [(thin, replace(thin, p95_ms=thin.p95_ms * 2, p99_ms=thin.p99_ms * 2))] * MIN_PAIRS
    p95 = ratio_delta(AGGREGATE, "p95", "lower", lambda e: e.p95_ms, pairs, 0.10)
    p99 = ratio_delta(AGGREGATE, "p99", "lower", lambda e: e.p99_ms, pairs, 0.10)
    assert p95.change is Change.DEGRADED
    assert p99.change is Change.INCONCLUSIVE and "p99 needs 100 successful requests per round" in p99.note


def test_error_rate_is_judged_on_paired_differences() -> None:
    base = [_round(i) for i in range(MIN_PAIRS)]
    failing = [_round(50 + i, error_rate=0.2) for i in range(MIN_PAIRS)]
    cmp_ = compare_paired(base, failing, "ref:x")
    err = next(d for d in cmp_.deltas if (d.endpoint, d.metric) == (AGGREGATE, "error_rate"))
    assert err.change is Change.DEGRADED and "pp" in err.note
    same = compare_paired(base, [_round(60 + i) for i in range(MIN_PAIRS)], "ref:x")
    assert all(d.change is Change.UNCHANGED for d in same.deltas if d.metric == "error_rate")


def test_outcome_keeps_both_sides_and_the_verdict_gates_on_the_paired_regressions() -> None:
    base = [_round(i) for i in range(MIN_PAIRS)]
    head = [_round(10 + i, shift=0.4) for i in range(MIN_PAIRS)]
    comparison = compare_paired(base, head, "ref:HEAD~1")
    ab = SideBySide(round_order(2 * MIN_PAIRS), tuple(base), tuple(head))
    outcome = Outcome(head[0], Evaluation(), comparison, gating=Gating(fail_on_regression=True), side_by_side=ab)
    again = Outcome.from_dict(outcome.to_dict())
    assert again == outcome
    verdict = decide(again)
    assert verdict.status == "fail" and verdict.exit_code == 1
    assert "p95 of" in verdict.headline and "interval +" in verdict.headline
