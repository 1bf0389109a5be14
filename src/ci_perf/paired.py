"""Paired statistics for same-runner A/B rounds (`--baseline ref:REF`, ci_perf.ab): one decision, made here.

The rounds run base, head, head, base, ... so pair i (base[i], head[i]) are two neighbouring rounds on
one machine, and the order inside a pair alternates: drift of the runner hits both sides alike. Per
endpoint and metric each pair gives one number: head/base for p50, p95, p99 (successful requests only,
C1) and req/s; head - base for the error rate (a ratio of two zero rates means nothing).

The interval is the exact sign-test interval of the median of those numbers: two order statistics
whose coverage follows from the binomial distribution alone. Why not a bootstrap: with 3 to 6 pairs
a bootstrap has a handful of distinct resamples and its percentile interval covers less than it
claims; the order-statistic interval holds exactly for any continuous distribution, needs no random
seed, and states the level it reaches (5 pairs 93.8%, 6 and more 95%).

Verdict: DEGRADED (or IMPROVED) when the median change is at least `min_effect` (error rate:
MIN_ERROR_PP) in the worse (better) direction and the interval excludes no change; a large change
whose interval includes no change is INCONCLUSIVE; fewer than MIN_PAIRS pairs whose rounds both have
enough successful requests (model.MIN_SAMPLES per round) is INCONCLUSIVE; anything else UNCHANGED.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from math import comb

from ci_perf import stats
from ci_perf.compare import LATENCY_AND_RPS, MIN_ERROR_PP
from ci_perf.model import AGGREGATE, Change, Comparison, Direction, EndpointStats, MetricDelta, RunResult, min_samples

CONFIDENCE = 0.95  # the level aimed at; fewer pairs reach less, and the interval says which
# 10 rounds. At 3 pairs the interval is only 75% and A/A trials flagged 3 of 10 unchanged commits
# (bench/verdict_trials.py --same-runner --rounds 6 on a loaded machine); at 5 pairs it is 93.8%.
MIN_PAIRS = 5


@dataclass(frozen=True)
class Interval:
    """The median of paired values and its sign-test confidence interval at `confidence`."""

    median: float
    low: float
    high: float
    confidence: float
    pairs: int


def sign_coverage(n: int, k: int) -> float:
    """Coverage of [x_(k), x_(n-k+1)] (1-based order statistics) for the median of n values."""
    return 1 - 2 * sum(comb(n, i) for i in range(k)) / float(2**n)


def median_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> Interval:
    """The narrowest order-statistic interval that reaches `confidence`, or [min, max] (with the
    coverage it has) when there are too few values to reach it."""
    xs = sorted(values)
    n = len(xs)
    if n == 0:
        raise ValueError("median_interval of no values")
    k = 1
    while k + 1 <= (n + 1) // 2 and sign_coverage(n, k + 1) >= confidence:
        k += 1
    return Interval(stats.median(xs), xs[k - 1], xs[n - k], sign_coverage(n, k), n)


def judge(iv: Interval, null: float, min_effect: float, direction: Direction) -> Change:
    """The verdict rule: effect >= min_effect away from `null` and the interval on that side of it."""
    effect = iv.median - null
    if abs(effect) < min_effect:
        return Change.UNCHANGED
    clear = iv.low > null if effect > 0 else iv.high < null
    if not clear:
        return Change.INCONCLUSIVE
    worse = effect > 0 if direction == "lower" else effect < 0
    return Change.DEGRADED if worse else Change.IMPROVED


Pair = tuple[EndpointStats, EndpointStats]  # (base, head) of one endpoint in one round pair


def ratio_delta(endpoint: str, metric: str, direction: Direction, value: Callable[[EndpointStats], float],
                pairs: Sequence[Pair], min_effect: float, confidence: float = CONFIDENCE) -> MetricDelta:  # fmt: skip
    """head/base per pair, for a latency percentile (needs MIN_SAMPLES successes each round) or req/s."""
    need = min_samples(metric)
    usable = [(b, h) for b, h in pairs if min(b.successes, h.successes) >= need and value(b) > 0]
    d = MetricDelta(endpoint, metric, direction, _mid(value(b) for b, _ in pairs),
                    _mid(value(h) for _, h in pairs), Change.INCONCLUSIVE)  # fmt: skip
    if len(usable) < MIN_PAIRS:
        why = f"{metric} needs {need} successful requests per round" if need > 1 else "no requests on one side"
        return replace(d, note=f"only {len(usable)} of {len(pairs)} pairs usable ({why}); need {MIN_PAIRS}")
    iv = median_interval([value(h) / value(b) for b, h in usable], confidence)
    note = (f"median ratio {iv.median:.3f}, {iv.confidence:.1%} interval {iv.low:.3f}..{iv.high:.3f} "
            f"over {iv.pairs} pairs")  # fmt: skip
    change = judge(iv, 1.0, min_effect, direction)
    if change is Change.INCONCLUSIVE:
        note += ": the interval includes no change"
    return replace(d, change=change, delta_pct=_pct(iv.median), ci_low_pct=_pct(iv.low),
                   ci_high_pct=_pct(iv.high), note=note)  # fmt: skip


def error_rate_delta(endpoint: str, pairs: Sequence[Pair], min_error_pp: float = MIN_ERROR_PP,
                     confidence: float = CONFIDENCE) -> MetricDelta:  # fmt: skip
    """head - base error rate per pair, in percentage points."""
    usable = [(b, h) for b, h in pairs if b.requests and h.requests]
    d = MetricDelta(endpoint, "error_rate", "lower", _mid(b.error_rate for b, _ in pairs),
                    _mid(h.error_rate for _, h in pairs), Change.INCONCLUSIVE)  # fmt: skip
    if len(usable) < MIN_PAIRS:
        return replace(d, note=f"only {len(usable)} of {len(pairs)} pairs had requests on both sides; need {MIN_PAIRS}")
    iv = median_interval([h.error_rate - b.error_rate for b, h in usable], confidence)
    note = (f"median {iv.median * 100:+.2f} pp, {iv.confidence:.1%} interval {iv.low * 100:+.2f}.."
            f"{iv.high * 100:+.2f} pp over {iv.pairs} pairs")  # fmt: skip
    change = judge(iv, 0.0, min_error_pp, "lower")
    if change is Change.INCONCLUSIVE:
        note += ": the interval includes no change"
    return replace(d, change=change, note=note)


def compare_paired(base: Sequence[RunResult], head: Sequence[RunResult], source: str, min_effect: float = 0.10,
                   confidence: float = CONFIDENCE) -> Comparison:  # fmt: skip
    """Every endpoint of the head's rounds (aggregate first) on p50, p95, p99, req/s and error rate."""
    if not base or len(base) != len(head):
        raise ValueError(f"paired rounds need as many base as head rounds, got {len(base)} and {len(head)}")
    keys = [AGGREGATE, *dict.fromkeys(e.key for r in head for e in r.endpoints)]
    deltas: list[MetricDelta] = []
    for key in keys:
        pairs = [(eb, eh) for b, h in zip(base, head, strict=True)
                 if (eb := b.endpoint(key)) is not None and (eh := h.endpoint(key)) is not None]  # fmt: skip
        if not pairs:
            continue
        deltas += [ratio_delta(key, m.name, m.direction, m.total, pairs, min_effect, confidence)
                   for m in LATENCY_AND_RPS]  # fmt: skip
        deltas.append(error_rate_delta(key, pairs, confidence=confidence))
    return Comparison(source, base[0].meta, describe_method(len(base) * 2, min_effect, confidence), tuple(deltas))


def describe_method(rounds: int, min_effect: float, confidence: float = CONFIDENCE) -> str:
    pairs = rounds // 2
    reached = sign_coverage(pairs, 1) if pairs else 0.0
    level = f"{confidence:.0%}" if reached >= confidence else f"{reached:.1%} (the most {pairs} pairs reach)"
    return (
        f"Measured side by side on this runner, {rounds} rounds (base, head, head, base, ...; {pairs} pairs of "
        f"neighbouring rounds, same stack settings, scenario, users and tool). Per metric the head/base ratio "
        f"of each pair (error rate: the difference), and an exact sign-test confidence interval of the median "
        f"ratio (order statistics, distribution-free) at {level}. Degraded or improved needs a median change "
        f"of at least {min_effect:.0%} (error rate {MIN_ERROR_PP * 100:g} percentage points) and an interval "
        f"that excludes no change; fewer than {MIN_PAIRS} pairs with enough successful requests per round "
        f"(p95 {min_samples('p95')}, p99 {min_samples('p99')}) is inconclusive."
    )


def _mid(values: Iterable[float]) -> float | None:
    """The median over a side's rounds, for the report's baseline and current columns."""
    xs = list(values)
    return stats.median(xs) if xs else None


def _pct(ratio: float) -> float:
    return round((ratio - 1) * 100, 3)
