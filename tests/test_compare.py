"""Verdicts on synthetic runs with known distributions: false-alarm rate, power, thresholds."""

from __future__ import annotations

import importlib.util
import json
import random
import sys
from dataclasses import replace
from pathlib import Path

import pytest

import synth
from ci_perf import stats
from ci_perf.compare import compare, headline, steady_windows, verdict_counts
from ci_perf.errors import ConfigError
from ci_perf.model import AGGREGATE, Change, Evaluation, Outcome

SEEDS = range(200)


def _changes(cmp_: object, metric: str | None = None, endpoint: str | None = None) -> list[Change]:
    return [
        d.change
        for d in cmp_.deltas  # type: ignore[attr-defined]
        if (metric is None or d.metric == metric) and (endpoint is None or d.endpoint == endpoint)
    ]


def test_mann_whitney_matches_textbook_values() -> None:
    # Fully separated 5 vs 5: normal approximation with continuity correction gives z = 12/4.787.
    assert stats.mann_whitney_greater([6, 7, 8, 9, 10], [1, 2, 3, 4, 5]) == pytest.approx(0.00609, abs=1e-4)
    assert stats.mann_whitney_greater([1, 2, 3, 4, 5], [6, 7, 8, 9, 10]) > 0.99
    assert stats.mann_whitney_greater([3, 3, 3], [3, 3, 3]) == 1.0
    # ties: average ranks, reduced variance
    assert stats.mann_whitney_greater([2, 2, 3, 3, 3], [1, 1, 2, 2, 2]) < 0.05


def test_two_proportion() -> None:
    assert stats.two_proportion_greater(60, 1000, 20, 1000) < 1e-5
    assert stats.two_proportion_greater(20, 1000, 20, 1000) == pytest.approx(0.5)
    assert stats.two_proportion_greater(0, 1000, 0, 1000) == 1.0


def test_same_distribution_false_alarm_rate_is_at_most_alpha() -> None:
    alarms = trials = 0
    for seed in SEEDS:
        cmp_ = compare(synth.run(seed, noise=0.15), synth.run(10_000 + seed, noise=0.15), "file:x")
        changes = _changes(cmp_)
        alarms += changes.count(Change.DEGRADED)
        trials += len(changes)
    assert alarms / trials <= 0.01


def test_thirty_percent_slower_is_degraded_nearly_always() -> None:
    hits = [
        _changes(compare(synth.run(seed, shift=0.30), synth.run(10_000 + seed), "file:x"), "p95", AGGREGATE)
        == [Change.DEGRADED]
        for seed in SEEDS
    ]
    assert sum(hits) / len(hits) >= 0.95


def test_thirty_percent_faster_is_improved_and_lower_throughput_is_degraded() -> None:
    faster = compare(synth.run(1, shift=-0.30), synth.run(2), "file:x")
    assert _changes(faster, "p95", AGGREGATE) == [Change.IMPROVED]
    slower_rps = compare(synth.run(1, rps_factor=0.6), synth.run(2), "file:x")
    assert _changes(slower_rps, "rps", AGGREGATE) == [Change.DEGRADED]


def test_three_percent_shift_is_unchanged() -> None:
    for seed in range(50):
        cmp_ = compare(synth.run(seed, shift=0.03, noise=0.02), synth.run(10_000 + seed, noise=0.02), "file:x")
        assert set(_changes(cmp_, "p95")) == {Change.UNCHANGED}


def test_large_effect_with_too_few_windows_is_inconclusive_with_reason() -> None:
    cmp_ = compare(synth.run(1, shift=0.5, n_windows=4), synth.run(2, n_windows=4), "file:x")
    (d,) = [d for d in cmp_.deltas if d.endpoint == AGGREGATE and d.metric == "p95"]
    assert d.change is Change.INCONCLUSIVE
    assert "need 5 each" in d.note
    assert d.delta_pct is not None and d.delta_pct > 20


def test_error_rate_needs_half_a_point_and_evidence() -> None:
    base = synth.run(2)
    tiny = compare(synth.run(1, error_rate=0.001), base, "file:x")
    assert set(_changes(tiny, "error_rate")) == {Change.UNCHANGED}
    bad = compare(synth.run(1, error_rate=0.05), base, "file:x")
    assert _changes(bad, "error_rate", AGGREGATE) == [Change.DEGRADED]
    (d,) = [d for d in bad.deltas if d.endpoint == AGGREGATE and d.metric == "error_rate"]
    assert d.p_value is not None and d.p_value < 0.01 and d.delta_pct is None  # baseline 0: no relative delta


def test_different_scenario_flags_everything_inconclusive_or_raises_when_strict() -> None:
    cur, base = synth.run(1, shift=0.5), synth.run(2, scenario="load_test_high")
    cmp_ = compare(cur, base, "file:x")
    assert set(_changes(cmp_)) == {Change.INCONCLUSIVE}
    assert "scenario 'load_test_high' vs 'smoke_test'" in cmp_.warning
    with pytest.raises(ConfigError, match="not comparable"):
        compare(cur, base, "file:x", strict=True)


def test_load_shape_and_coverage_differences_warn_only() -> None:
    cur = synth.run(1, shift=0.5, users=20)
    base = synth.run(2)
    base = replace(base, endpoints=base.endpoints[:1])
    cmp_ = compare(cur, base, "file:x")
    assert "load shape differs from the baseline (users 10 vs 20" in cmp_.warning
    assert "not in the baseline: POST /api/v1/policy/evaluate" in cmp_.warning
    assert {d.endpoint for d in cmp_.deltas} == {AGGREGATE, "GET /api/v1/servers/"}
    assert Change.DEGRADED in _changes(cmp_, "p95")


def test_method_headline_and_round_trip() -> None:
    cmp_ = compare(synth.run(1, shift=0.3), synth.run(2), "file:base.json", alpha=0.05)
    assert "Mann-Whitney" in cmp_.method and "alpha=0.05" in cmp_.method and "10%" in cmp_.method
    counts = verdict_counts(cmp_)
    assert sum(counts.values()) == 15 and counts[Change.DEGRADED] >= 6
    assert headline(cmp_).startswith(f"{counts[Change.DEGRADED]} degraded, ")
    outcome = Outcome(synth.run(1), Evaluation(), cmp_)
    assert Outcome.from_dict(json.loads(json.dumps(outcome.to_dict()))).comparison == cmp_


def test_steady_windows_drops_ramp_up_only_when_enough_remain() -> None:
    ws = synth.windows(random.Random(0), 8, 50, 10)
    assert steady_windows(ws) == ws[1:]
    short = ws[:5]
    assert steady_windows(short) == short


def test_bad_settings_are_config_errors() -> None:
    with pytest.raises(ConfigError):
        compare(synth.run(1), synth.run(2), "file:x", alpha=0)


# --- bench/verdict_trials.py core, on saved results -----------------------------------------------


def _load_bench() -> object:
    path = Path(__file__).parent.parent / "bench" / "verdict_trials.py"
    spec = importlib.util.spec_from_file_location("verdict_trials", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["verdict_trials"] = module
    spec.loader.exec_module(module)
    return module


def test_bench_rates_from_saved_results(tmp_path: Path) -> None:
    bench = _load_bench()
    (tmp_path / "baseline").mkdir()
    (tmp_path / "baseline" / "results.json").write_text(json.dumps(synth.run(0).to_dict()))
    for i in range(4):
        for kind, shift in (("aa", 0.0), ("ab", 0.4)):
            d = tmp_path / f"{kind}-{i}"
            d.mkdir()
            outcome = Outcome(synth.run(100 + i, shift=shift), Evaluation())
            (d / "results.json").write_text(json.dumps(outcome.to_dict()))
    rates = bench.rates_from_dir(tmp_path)  # type: ignore[attr-defined]
    assert (rates.aa_trials, rates.ab_trials) == (4, 4)
    assert rates.false_alarm_rate == 0.0
    assert rates.detection_rate == 1.0
    assert "false-alarm rate 0/4" in rates.summary()


def test_holm_correction_demotes_marginal_results_across_many_tests() -> None:
    from ci_perf.compare import holm
    from ci_perf.model import MetricDelta

    def d(p: float, change: Change) -> MetricDelta:
        return MetricDelta("e", "p95", "lower", 1.0, 2.0, change, 100.0, p)

    out = holm(
        [d(0.0001, Change.DEGRADED), d(0.005, Change.DEGRADED), d(0.5, Change.INCONCLUSIVE), d(0.9, Change.UNCHANGED)],
        alpha=0.01,
    )
    assert [x.change for x in out] == [Change.DEGRADED, Change.INCONCLUSIVE, Change.INCONCLUSIVE, Change.UNCHANGED]
    assert "Holm correction over 4 tests" in out[1].note


def test_a_percentile_of_too_few_successful_requests_gets_no_verdict() -> None:
    from dataclasses import replace as swap

    from synth import run as synth_run

    base, cur = synth_run(1), synth_run(2, shift=0.5)
    few = swap(cur.endpoints[0], requests=15, failures=0)  # p50/p90 need 10, p95 20, p99 100
    cur = swap(cur, endpoints=(few, *cur.endpoints[1:]))
    by = {(d.endpoint, d.metric): d for d in compare(cur, base, source="file:b").deltas}
    p95 = by[(few.key, "p95")]
    assert p95.change is Change.INCONCLUSIVE and p95.p_value is None
    assert p95.note == f"not enough requests (n=15/{base.endpoints[0].successes} successful; p95 needs 20)"
    assert by[(few.key, "p99")].change is Change.INCONCLUSIVE
    assert by[(few.key, "p50")].change is Change.DEGRADED  # 15 is enough for a median
