"""Current run against a baseline: per endpoint and metric, a delta and a verdict.

A verdict of DEGRADED (or IMPROVED) needs two things, because CI runners are noisy and a fixed
percentage alone raises false alarms (docs/architecture.md):

- an effect of at least `min_effect` (relative; error rate: `min_error_pp` absolute), and
- evidence from the samples: a one-sided Mann-Whitney U test on the steady-state per-window values
  (latency percentiles, throughput), or a two-proportion z-test on the failure counts, with Holm's
  correction over all the tests of one comparison (dozens of endpoint x metric pairs per run).

A large effect without enough evidence (too few windows, p >= alpha) is INCONCLUSIVE, with a note.

Incompatible baselines: a different scenario or tool gives a Comparison with a warning and every
verdict INCONCLUSIVE (the report still shows the numbers), or raises ConfigError with strict=True;
a different load shape (users, duration) only adds a warning, since throughput then differs by design.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from ci_perf import stats
from ci_perf.errors import ConfigError
from ci_perf.model import (
    Change,
    Comparison,
    Direction,
    EndpointStats,
    MetricDelta,
    RunMeta,
    RunResult,
    Window,
    min_samples,
)

MIN_WINDOWS = 5  # per side; below this the U test cannot reach alpha=0.01
MIN_ERROR_PP = 0.005  # 0.5 percentage points: 0% -> 0.1% errors is noise, not a regression


@dataclass(frozen=True)
class Settings:
    min_effect: float = 0.10
    alpha: float = 0.01
    min_windows: int = MIN_WINDOWS
    min_error_pp: float = MIN_ERROR_PP


@dataclass(frozen=True)
class _Metric:
    name: str
    direction: Direction
    total: Callable[[EndpointStats], float]
    window: Callable[[Window], float | None]


LATENCY_AND_RPS: tuple[_Metric, ...] = (
    _Metric("p50", "lower", lambda e: e.p50_ms, lambda w: w.p50_ms),
    _Metric("p95", "lower", lambda e: e.p95_ms, lambda w: w.p95_ms),
    _Metric("p99", "lower", lambda e: e.p99_ms, lambda w: w.p99_ms),
    _Metric("rps", "higher", lambda e: e.rps, lambda w: w.rps),
)
METRICS: tuple[str, ...] = (*(m.name for m in LATENCY_AND_RPS), "error_rate")


def compare(
    current: RunResult,
    baseline: RunResult,
    source: str,
    min_effect: float = 0.10,
    alpha: float = 0.01,
    *,
    strict: bool = False,
    min_windows: int = MIN_WINDOWS,
    min_error_pp: float = MIN_ERROR_PP,
) -> Comparison:
    """Compare every endpoint present in both runs (aggregate first) on METRICS."""
    if not 0 < alpha < 1 or min_effect < 0 or min_windows < 1:
        raise ConfigError(f"bad comparison settings: alpha={alpha} (0..1), min_effect={min_effect} (>= 0)")
    cfg = Settings(min_effect, alpha, min_windows, min_error_pp)
    mismatch = _mismatch(current.meta, baseline.meta)
    if mismatch and strict:
        raise ConfigError(f"baseline from {source} is not comparable: {mismatch}")
    warnings = [f"baseline is not comparable ({mismatch}); all verdicts are inconclusive"] if mismatch else []
    warnings += _shape_warnings(current.meta, baseline.meta) + _coverage_warnings(current, baseline)
    deltas: list[MetricDelta] = []
    for cur, base in _pairs(current, baseline):
        deltas += endpoint_deltas(cur, base, cfg)
    deltas = holm(deltas, alpha)
    if mismatch:
        deltas = [replace(d, change=Change.INCONCLUSIVE, p_value=None, note="not comparable") for d in deltas]
    return Comparison(source, baseline.meta, describe_method(cfg), tuple(deltas), "; ".join(warnings))


def holm(deltas: list[MetricDelta], alpha: float) -> list[MetricDelta]:
    """Holm's step-down correction over every test run in this comparison: one run checks dozens of
    endpoint x metric pairs, and a user reads 'any degraded' as 'this PR regressed'. Without it an
    A/A run of a real target flagged a regression (bench/verdict_trials.py)."""
    tested = sorted(
        (d.p_value, i)
        for i, d in enumerate(deltas)
        if d.p_value is not None and d.change in (Change.DEGRADED, Change.IMPROVED)
    )
    m = sum(1 for d in deltas if d.p_value is not None)
    out = list(deltas)
    failed = False
    for rank, (p, i) in enumerate(tested):
        failed = failed or p >= alpha / (m - rank)
        if failed:
            out[i] = replace(
                out[i],
                change=Change.INCONCLUSIVE,
                note=f"p={p:.2g} is not significant after Holm correction over {m} tests",
            )
    return out


def describe_method(cfg: Settings) -> str:
    """One sentence for the report: which tests, which samples, which thresholds."""
    return (
        f"Verdicts need an effect of at least {cfg.min_effect:.0%} and a one-sided Mann-Whitney U test "
        f"(normal approximation, tie-corrected) on steady-state per-window p50/p95/p99 and throughput "
        f"(ramp-up window(s) dropped, at least {cfg.min_windows} windows per run) at alpha={cfg.alpha:g}, "
        f"or for error rate at least {cfg.min_error_pp * 100:g} percentage points and a one-sided "
        f"two-proportion z-test on total failures/requests, Holm-corrected over all tests in the run."
    )


def verdict_counts(comparison: Comparison) -> dict[Change, int]:
    counts = Counter(d.change for d in comparison.deltas)
    return {c: counts.get(c, 0) for c in Change}


def headline(comparison: Comparison) -> str:
    """E.g. '2 degraded, 1 improved, 12 unchanged, 0 inconclusive' (degraded first: it gates)."""
    counts = verdict_counts(comparison)
    order = (Change.DEGRADED, Change.IMPROVED, Change.UNCHANGED, Change.INCONCLUSIVE)
    return ", ".join(f"{counts[c]} {c.value}" for c in order)


def steady_windows(windows: Sequence[Window], min_windows: int = MIN_WINDOWS) -> tuple[Window, ...]:
    """Drop the ramp-up: leading windows below peak users (at least the first window), and a short
    trailing partial window; but never drop so much that fewer than min_windows remain."""
    ws = list(windows)
    if len(ws) > 2 and ws[-1].length_s < 0.9 * stats.median([w.length_s for w in ws]):
        ws = ws[:-1]
    peak = max((w.users for w in ws), default=0)
    ramp = next((i for i, w in enumerate(ws) if w.users >= peak), 0) if peak else 0
    drop = max(ramp, 1)
    if len(ws) - drop >= min_windows:
        return tuple(ws[drop:])
    if len(ws) - 1 >= min_windows:
        return tuple(ws[1:])
    return tuple(ws)


def endpoint_deltas(cur: EndpointStats, base: EndpointStats, cfg: Settings) -> list[MetricDelta]:
    cur_w = steady_windows(cur.windows, cfg.min_windows)
    base_w = steady_windows(base.windows, cfg.min_windows)
    out = []
    for m in LATENCY_AND_RPS:
        need = min_samples(m.name)
        if min(cur.successes, base.successes) < need:  # a percentile of a handful of requests: no verdict
            note = f"not enough requests (n={cur.successes}/{base.successes} successful; {m.name} needs {need})"
            out.append(MetricDelta(cur.key, m.name, m.direction, m.total(base), m.total(cur), Change.INCONCLUSIVE,
                                   note=note))  # fmt: skip
            continue
        cur_s = [v for v in map(m.window, cur_w) if v is not None]
        base_s = [v for v in map(m.window, base_w) if v is not None]
        out.append(sample_delta(cur.key, m.name, m.direction, (m.total(base), base_s), (m.total(cur), cur_s), cfg))
    out.append(error_rate_delta(cur, base, cfg))
    return out


def sample_delta(
    endpoint: str,
    metric: str,
    direction: Direction,
    base: tuple[float, Sequence[float]],
    cur: tuple[float, Sequence[float]],
    cfg: Settings,
) -> MetricDelta:
    """Verdict for one metric from the run totals (effect size) and per-window samples (evidence)."""
    (b, base_s), (c, cur_s) = base, cur
    d = MetricDelta(endpoint, metric, direction, b, c, Change.UNCHANGED)
    if b <= 0:
        same = c == b
        return replace(
            d,
            change=Change.UNCHANGED if same else Change.INCONCLUSIVE,
            note="" if same else "baseline is 0: no relative effect",
        )
    rel = (c - b) / b
    d = replace(d, delta_pct=rel * 100)
    if abs(rel) < cfg.min_effect:
        return d
    if min(len(base_s), len(cur_s)) < cfg.min_windows:
        return replace(
            d,
            change=Change.INCONCLUSIVE,
            note=(
                f"only {len(cur_s)} current / {len(base_s)} baseline steady-state windows, "
                f"need {cfg.min_windows} each: run longer or use shorter windows"
            ),
        )
    p = stats.mann_whitney_greater(cur_s, base_s) if rel > 0 else stats.mann_whitney_greater(base_s, cur_s)
    d = replace(d, p_value=p)
    if p < cfg.alpha:
        worse = rel > 0 if direction == "lower" else rel < 0
        return replace(d, change=Change.DEGRADED if worse else Change.IMPROVED)
    base_mid = stats.median(base_s)
    shift = stats.median(cur_s) / base_mid - 1 if base_mid > 0 else rel
    if abs(shift) < cfg.min_effect:
        return replace(d, note=f"windows' median moved only {shift:+.1%}")
    return replace(d, change=Change.INCONCLUSIVE, note=f"p={p:.3f} is not below alpha={cfg.alpha:g}")


def error_rate_delta(cur: EndpointStats, base: EndpointStats, cfg: Settings) -> MetricDelta:
    b, c = base.error_rate, cur.error_rate
    d = MetricDelta(
        cur.key, "error_rate", "lower", b, c, Change.UNCHANGED, delta_pct=(c - b) / b * 100 if b > 0 else None
    )
    if not base.requests or not cur.requests:
        return replace(d, change=Change.INCONCLUSIVE, note="no requests on one side")
    diff = c - b
    d = replace(d, note=f"{diff * 100:+.2f} pp")
    if abs(diff) < cfg.min_error_pp:
        return d
    if diff > 0:
        p = stats.two_proportion_greater(cur.failures, cur.requests, base.failures, base.requests)
    else:
        p = stats.two_proportion_greater(base.failures, base.requests, cur.failures, cur.requests)
    d = replace(d, p_value=p)
    if p < cfg.alpha:
        return replace(d, change=Change.DEGRADED if diff > 0 else Change.IMPROVED)
    return replace(d, change=Change.INCONCLUSIVE, note=f"{d.note}, p={p:.3f} is not below alpha={cfg.alpha:g}")


def _pairs(current: RunResult, baseline: RunResult) -> list[tuple[EndpointStats, EndpointStats]]:
    pairs = [(current.total, baseline.total)]
    for e in current.endpoints:
        other = baseline.endpoint(e.key)
        if other is not None and other is not baseline.total:
            pairs.append((e, other))
    return pairs


def _mismatch(cur: RunMeta, base: RunMeta) -> str:
    diffs = [
        f"{name} {b!r} vs {c!r}"
        for name, c, b in (("scenario", cur.scenario, base.scenario), ("tool", cur.tool, base.tool))
        if c != b
    ]
    return ", ".join(diffs)


def _shape_warnings(cur: RunMeta, base: RunMeta) -> list[str]:
    diffs = [
        f"{name} {b:g} vs {c:g}"
        for name, c, b in (("users", cur.users, base.users), ("duration", cur.duration_s, base.duration_s))
        if c != b
    ]
    return [f"load shape differs from the baseline ({', '.join(diffs)})"] if diffs else []


def _coverage_warnings(current: RunResult, baseline: RunResult) -> list[str]:
    cur = {e.key for e in current.endpoints}
    base = {e.key for e in baseline.endpoints}
    out = []
    if cur - base:
        out.append(f"not in the baseline: {', '.join(sorted(cur - base))}")
    if base - cur:
        out.append(f"only in the baseline: {', '.join(sorted(base - cur))}")
    return out
