"""What each scenario is for, answered from the data: pure functions, data in -> findings out.

stress_test: the breaking point · spike_test: recovery time · soak_test: memory leaks and latency
drift · rate_limit_test: when the API starts answering 429 · concurrent_operations and
database_stress: every registration stored, and the database's figures. Rendering is elsewhere.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from ci_perf.model import Window
from ci_perf.stats import median, student_t_quantile, student_t_sf


@dataclass(frozen=True)
class BreakingPoint:
    found: bool
    max_users: int  # the most users the run reached
    at_s: float | None = None  # start of the first window over a limit
    users: int | None = None  # users and offered req/s in that window
    rps: float | None = None
    reason: str = ""  # which limit, e.g. "p95 312 ms > 200 ms"
    capacity_users: int | None = None  # the most users of a window that held every limit before it
    capacity_rps: float | None = None  # the most req/s of those windows


def _busy(windows: Sequence[Window], min_requests: int) -> list[Window]:
    return [w for w in windows if w.requests >= min_requests]


def breaking_point(windows: Sequence[Window], p95_limit_ms: float = 200.0, error_limit: float = 0.05,
                   min_requests: int = 10) -> BreakingPoint:  # fmt: skip
    """The first window whose p95 crosses the critical latency or whose error rate passes the limit,
    and stays over it in the next window: a single slow window (cold start, users spawning) is noise."""
    ws = _busy(windows, min_requests)
    max_users = max((w.users for w in windows), default=0)
    over = [_over(w, p95_limit_ms, error_limit) for w in ws]
    held: list[Window] = []
    for i, w in enumerate(ws):
        reasons = over[i]
        if reasons and (i + 1 == len(ws) or over[i + 1]):
            below = [h for h in held if h.users < w.users]  # load levels that held
            return BreakingPoint(True, max_users, w.start_s, w.users, round(w.rps, 1), reasons,
                                 max((h.users for h in below), default=None),
                                 round(max(h.rps for h in below), 1) if below else None)  # fmt: skip
        held.append(w)
    return BreakingPoint(False, max_users, capacity_users=max((h.users for h in held), default=None),
                         capacity_rps=round(max(h.rps for h in held), 1) if held else None)  # fmt: skip


def _over(w: Window, p95_limit_ms: float, error_limit: float) -> str:
    reasons = []
    if w.p95_ms is not None and w.p95_ms > p95_limit_ms:
        reasons.append(f"p95 {w.p95_ms:.0f} ms > {p95_limit_ms:.0f} ms")
    if w.error_rate > error_limit:
        reasons.append(f"error rate {w.error_rate:.1%} > {error_limit:.0%}")
    return " and ".join(reasons)


@dataclass(frozen=True)
class SpikeRecovery:
    baseline_p95_ms: float | None  # median p95 before the spike
    peak_p95_ms: float | None  # worst p95 during the spike
    spike_end_s: float | None  # end of the last window at spike load
    recovered_at_s: float | None  # end of the first window back within tolerance
    recovery_s: float | None
    note: str = ""

    @property
    def recovered(self) -> bool:
        return self.recovery_s is not None


def spike_recovery(windows: Sequence[Window], tolerance: float = 0.2, slack_ms: float = 5.0,
                   min_requests: int = 5) -> SpikeRecovery:  # fmt: skip
    """Time from the end of the spike until p95 is back within `tolerance` of the pre-spike p95
    (or within `slack_ms` of it: on a 4 ms p95, 1 ms of jitter is not "still recovering")."""
    ws = [w for w in _busy(windows, min_requests) if w.p95_ms is not None]
    peak = max((w.users for w in ws), default=0)
    spike = [i for i, w in enumerate(ws) if w.users >= 0.9 * peak]
    if not ws or not spike or spike[0] == 0:
        return SpikeRecovery(None, None, None, None, None, "no phase before the spike to compare with")
    # The low phase before the spike: neither the first window (ramp-up) nor the climb to the peak.
    before = [w for w in ws[1 : spike[0]] if w.users < 0.5 * peak] or ws[: spike[0]]
    baseline = median([w.p95_ms or 0.0 for w in before])
    worst = max(w.p95_ms or 0.0 for w in ws[spike[0] : spike[-1] + 1])
    end = ws[spike[-1]].start_s + ws[spike[-1]].length_s
    for w in ws[spike[-1] + 1 :]:
        if w.users < 0.9 * peak and (w.p95_ms or 0.0) <= max(baseline * (1 + tolerance), baseline + slack_ms):
            back = w.start_s + w.length_s
            return SpikeRecovery(baseline, worst, end, back, round(back - end, 1))
    note = "the run ended during the spike" if spike[-1] == len(ws) - 1 else "p95 did not come back"
    return SpikeRecovery(baseline, worst, end, None, None, note)


@dataclass(frozen=True)
class Trend:
    """Least-squares line through (t, y), slope per minute with a 95% confidence interval."""

    n: int
    slope_per_min: float
    ci_low: float
    ci_high: float
    p_value: float  # one-sided, for "the slope is positive"


def linear_trend(points: Sequence[tuple[float, float]]) -> Trend | None:
    n = len(points)
    if n < 4:
        return None
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    if sxx <= 0:
        return None
    slope = sum((x - mx) * (y - my) for x, y in points) / sxx
    resid = sum((y - my - slope * (x - mx)) ** 2 for x, y in points)
    se = math.sqrt(resid / (n - 2) / sxx)
    p = student_t_sf(slope / se, n - 2) if se > 0 else (0.0 if slope > 0 else 1.0)
    half = student_t_quantile(0.975, n - 2) * se
    return Trend(n, slope * 60, (slope - half) * 60, (slope + half) * 60, p)


@dataclass(frozen=True)
class MemoryTrend:
    service: str
    start_mb: float
    end_mb: float
    growth_mb: float  # slope × the analysed span
    trend: Trend | None
    leak: bool
    why: str  # the evidence, or what was missing


def memory_trend(service: str, points: Sequence[tuple[float, float]], alpha: float = 0.01,
                 min_growth_mb: float = 5.0, min_growth_ratio: float = 0.10,
                 warmup_fraction: float = 0.2) -> MemoryTrend:  # fmt: skip
    """A leak is sustained growth beyond noise: after the warm-up (pools and caches filling), the
    slope is positive with one-sided p < alpha, it grows steadily in both halves of the span, and the growth
    exceeds max(min_growth_mb, min_growth_ratio × the starting size). Samples of memory are
    autocorrelated, which makes the t-test overconfident: the growth and both-halves rules guard it."""
    pts = sorted(points)[int(len(points) * warmup_fraction) :]
    if len(pts) < 6:
        return MemoryTrend(service, 0.0, 0.0, 0.0, None, False, "too few samples for a trend")
    start, end = pts[0][1], pts[-1][1]
    trend = linear_trend(pts)
    if trend is None:
        return MemoryTrend(service, start, end, 0.0, None, False, "no spread in time")
    growth = trend.slope_per_min / 60 * (pts[-1][0] - pts[0][0])
    floor = max(min_growth_mb, min_growth_ratio * start)
    # A leak grows steadily: each half of the span grows at a third of the whole's rate or more. A
    # new connection or a cache filling once is a step: one half is flat.
    halves = [linear_trend(pts[: len(pts) // 2]), linear_trend(pts[len(pts) // 2 :])]
    sustained = all(h is not None and h.slope_per_min >= trend.slope_per_min / 3 > 0 for h in halves)
    leak = trend.p_value < alpha and growth >= floor and sustained
    if trend.p_value >= alpha:
        why = f"slope not significant (p={trend.p_value:.2g})"
    elif growth < floor:
        why = f"growth {growth:.1f} MB is below the {floor:.1f} MB a leak must reach"
    elif not sustained:
        why = "growth is not sustained (a step, not a slope)"
    else:
        why = (
            f"+{trend.slope_per_min:.1f} MB/min (95% CI {trend.ci_low:.1f} to {trend.ci_high:.1f}), "
            f"p={trend.p_value:.1g}"
        )
    return MemoryTrend(service, round(start, 2), round(end, 2), round(growth, 2), trend, leak, why)


def latency_drift(windows: Sequence[Window], min_requests: int = 5) -> tuple[float, float] | None:
    """Median p95 of the first and of the last third of the run (the ramp-up window left out)."""
    ws = [w.p95_ms for w in _busy(windows, min_requests)[1:] if w.p95_ms is not None]
    third = len(ws) // 3
    if third < 1:
        return None
    return median(ws[:third]), median(ws[-third:])


@dataclass(frozen=True)
class RateLimitOnset:
    limited: int  # 429 answers
    requests: int
    first_at_s: float | None  # start of the first window with a 429
    offered_rps: float | None  # req/s sent in that window
    accepted_rps: float | None  # median req/s answered without 429 while limiting


def rate_limit_onset(windows: Sequence[Window], limited: Sequence[int]) -> RateLimitOnset:
    """`limited[i]`: the 429 answers in windows[i]."""
    pairs = list(zip(windows, limited, strict=True))
    hit = [(w, n) for w, n in pairs if n > 0]
    total = sum(w.requests for w in windows)
    if not hit:
        return RateLimitOnset(0, total, None, None, None)
    first = hit[0][0]
    accepted = median([(w.requests - n) / w.length_s for w, n in hit if w.length_s > 0])
    return RateLimitOnset(sum(limited), total, first.start_s, round(first.rps, 1), round(accepted, 1))


@dataclass(frozen=True)
class Consistency:
    registered: int  # registrations the load tool saw succeed
    stored: int | None  # rows the servers table gained during the run
    missing: int  # registered but not stored: lost writes
    extra: int  # stored but not seen as successful (a timeout after the commit, a failed read-back)

    @property
    def consistent(self) -> bool | None:
        return None if self.stored is None else self.missing == 0


def consistency(registered: int, rows_before: int | None, rows_after: int | None) -> Consistency:
    if rows_before is None or rows_after is None:
        return Consistency(registered, None, 0, 0)
    stored = rows_after - rows_before
    return Consistency(registered, stored, max(registered - stored, 0), max(stored - registered, 0))
