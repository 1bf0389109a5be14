"""The data types of one run, one per stage of the flow (docs/architecture.md):

RunResult (what the tool measured) -> Evaluation (thresholds) + findings -> Comparison (baseline
deltas), bundled as Outcome with the Gating settings, which is what results.json holds; the Verdict
is decided from an Outcome by ci_perf.verdict. All are frozen; RunResult and Outcome round-trip
through JSON with to_dict / from_dict, so a baseline is simply a saved RunResult.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property
from typing import Any, ClassVar, Literal

from ci_perf.errors import ResultError
from ci_perf.jsonread import decode
from ci_perf.observe.model import SystemMetrics

SCHEMA_VERSION = 1

Tool = Literal["locust", "k6"]
TOOLS: tuple[Tool, ...] = ("locust", "k6")
AGGREGATE = "Aggregated"
# The fewest successful requests a percentile is judged on (a check, a delta): below it the figure is
# mostly the few slowest requests, and the check says "not enough requests" instead of pass or fail.
MIN_SAMPLES: dict[str, int] = {"p50": 10, "p90": 10, "p95": 20, "p99": 100}


def min_samples(metric: str) -> int:
    """For a metric name as checks and deltas spell it ("p95_ms", "p95", "avg_ms"): 1 when it is no
    percentile (a mean or a rate needs one request)."""
    return MIN_SAMPLES.get(metric.removesuffix("_ms"), 1)


def quantize_ms(value: float) -> float:
    """Our own histogram bucket for a latency: three significant digits (at most 0.5% off).

    Locust's histograms come already rounded by Locust (int ms below 100 ms, then 10 ms, then 100 ms)
    and are kept as Locust made them, so that our percentiles equal Locust's.
    """
    if value <= 0:
        return 0.0
    return float(f"{value:.3g}")


@dataclass(frozen=True)
class LatencyHistogram:
    """Latency counts at quantized values (ms), sorted by value. Histograms merge exactly by adding
    counts, so shards, windows and runs combine without averaging percentiles."""

    counts: tuple[tuple[float, int], ...] = ()
    JSON_AS: ClassVar[str] = "counts"  # stored as its list of [value, count] pairs (jsonread.decode)

    @classmethod
    def from_mapping(cls, counts: Mapping[float, int]) -> LatencyHistogram:
        return cls(tuple(sorted((float(k), int(v)) for k, v in counts.items() if v)))

    @classmethod
    def from_values(cls, values: Iterable[float]) -> LatencyHistogram:
        acc: dict[float, int] = {}
        for v in values:
            q = quantize_ms(v)
            acc[q] = acc.get(q, 0) + 1
        return cls.from_mapping(acc)

    @property
    def total(self) -> int:
        return sum(c for _, c in self.counts)

    def merge(self, other: LatencyHistogram) -> LatencyHistogram:
        acc = dict(self.counts)
        for value, count in other.counts:
            acc[value] = acc.get(value, 0) + count
        return LatencyHistogram.from_mapping(acc)

    def percentile(self, q: float) -> float:
        """Locust's rule: the largest value v with fewer than int(total*q)+1 samples below it.

        Walking down from the top keeps this identical to locust.stats.calculate_response_time_percentile.
        """
        total = self.total
        if total == 0:
            return 0.0
        allowed_below = int(total * q)
        seen = 0
        for value, count in reversed(self.counts):
            seen += count
            if total - seen <= allowed_below:
                return value
        return self.counts[0][0]

    def to_dict(self) -> list[list[float]]:
        return [[v, c] for v, c in self.counts]

    @classmethod
    def from_dict(cls, data: Any) -> LatencyHistogram:
        return decode(cls, data, "histogram")


@dataclass(frozen=True)
class Window:
    """One time window of one endpoint (or of all): what the verdict statistics sample."""

    start_s: float  # offset from the start of the run
    length_s: float
    requests: int
    failures: int
    users: int = 0
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    # Only when recorded (k6 --histogram / --shard): lets merged shards keep exact window percentiles.
    # Left out of JSON when None, so results without it read and write as before.
    histogram: LatencyHistogram | None = field(default=None, metadata={"omit_none": True})
    # 429 answers in the window, whether the scenario expects them or not (rate_limit_test counts them
    # as successes); None where the tool did not record them (k6 per endpoint, older results): left out of JSON.
    limited: int | None = field(default=None, metadata={"omit_none": True})

    @property
    def rps(self) -> float:
        return self.requests / self.length_s if self.length_s > 0 else 0.0

    @property
    def error_rate(self) -> float:
        return self.failures / self.requests if self.requests else 0.0


@dataclass(frozen=True)
class ErrorCount:
    """One kind of failure (status or message) and how often it happened."""

    error: str
    occurrences: int


@dataclass(frozen=True)
class EndpointStats:
    """Totals for one endpoint (method + name), or for all requests when name == AGGREGATE.

    `failures` counts every request that failed: an unexpected status, a connection error, or a 2xx
    answer that is wrong for what was sent (missing keys, a contradicting policy decision). The
    latency figures (min..max, histogram, window percentiles) are over the successful requests only,
    as k6's expected_response:true; `all_p95_ms` is the p95 over every request, for a labelled
    figure beside it (None where the tool did not record it).
    """

    method: str
    name: str
    requests: int
    failures: int
    rps: float
    min_ms: float
    avg_ms: float
    p50_ms: float
    p90_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    histogram: LatencyHistogram | None = None
    windows: tuple[Window, ...] = ()
    errors: tuple[ErrorCount, ...] = ()
    all_p95_ms: float | None = field(default=None, metadata={"omit_none": True})

    @property
    def successes(self) -> int:
        return self.requests - self.failures

    @property
    def key(self) -> str:
        return f"{self.method} {self.name}".strip()

    @property
    def error_rate(self) -> float:
        return self.failures / self.requests if self.requests else 0.0


@dataclass(frozen=True)
class Availability:
    """Health endpoint probed on its own schedule during the run."""

    probes: int
    ok: int

    @property
    def ratio(self) -> float:
        return self.ok / self.probes if self.probes else 0.0


@dataclass(frozen=True)
class RunMeta:
    scenario: str
    tool: Tool
    tool_version: str
    users: int
    spawn_rate: float
    duration_s: float
    host: str
    started_at: str = ""  # ISO 8601, UTC
    window_s: float = 0.0
    commit: str = ""
    ref: str = ""
    labels: dict[str, str] = field(default_factory=dict)

    def load_shape(self) -> tuple[str, str, int, float]:
        """What must match for two runs to be compared."""
        return (self.scenario, self.tool, self.users, self.duration_s)


@dataclass(frozen=True)
class Waiting:
    """k6's http_req_waiting trend (time to first byte: from the request sent to the first byte of the
    answer) over every request, exactly as k6 computed it. It is no success-only figure (C1): it is
    kept for GitLab's TTFB, never judged."""

    min_ms: float
    avg_ms: float
    p50_ms: float
    p90_ms: float
    p95_ms: float
    max_ms: float


@dataclass(frozen=True)
class RunResult:
    meta: RunMeta
    total: EndpointStats
    endpoints: tuple[EndpointStats, ...]
    availability: Availability | None = None
    # Policy decisions answered 2xx, by value ("allow", "deny", anything else as sent), over the run;
    # None where the tool did not count them (older results): left out of JSON.
    decisions: dict[str, int] | None = field(default=None, metadata={"omit_none": True})
    # Time to first byte, where the tool measures it (k6); None for Locust (it times whole answers
    # only), for merged shards (percentiles do not add up) and older results: left out of JSON.
    waiting: Waiting | None = field(default=None, metadata={"omit_none": True})

    def endpoint(self, key: str) -> EndpointStats | None:
        if key in (AGGREGATE, self.total.key):
            return self.total
        return next((e for e in self.endpoints if e.key == key), None)

    def to_dict(self) -> dict[str, Any]:
        return {"schema_version": SCHEMA_VERSION, **_encode(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunResult:
        return _decode_result(data)


class Status(StrEnum):
    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"
    SKIP = "skip"  # not measured in this run, or not applicable to it
    NO_DATA = "no_data"  # measured, but on too few successful requests to judge (MIN_SAMPLES)


Direction = Literal["lower", "higher"]  # which way is better


@dataclass(frozen=True)
class CheckResult:
    """One threshold check: measured value against target (warning) and critical (failure)."""

    name: str
    metric: str
    scope: str
    unit: str
    direction: Direction
    target: float
    critical: float
    actual: float | None
    status: Status
    message: str = ""
    samples: int | None = field(default=None, metadata={"omit_none": True})  # successful requests judged

    @property
    def label(self) -> str:
        """The check's name with its endpoint when the name does not say it ("... [POST /x]")."""
        scoped = self.scope[:1].isupper() and self.scope not in self.name  # endpoints start with a method
        return f"{self.name} [{self.scope}]" if scoped else self.name


@dataclass(frozen=True)
class Finding:
    """A judged observation about the run: what its scenario is for (a breaking point, a leak) or what
    went wrong with it (an endpoint that never succeeded, every policy decision a deny)."""

    name: str  # short, stable: the JUnit test name
    status: Status  # PASS: as intended · WARN: worth a look · FAIL: the run does not pass · SKIP
    text: str  # one line with the figures
    advice: str = ""  # a recommendation when the status is not PASS, citing its evidence


@dataclass(frozen=True)
class Gating:
    """What fails the gate besides critical thresholds and failed findings (settings, kept with the
    results so that a re-render judges the same way)."""

    fail_on_regression: bool = False
    min_effect: float = 0.10


@dataclass(frozen=True)
class Infra:
    """The run broke before it could be judged (the stack, the tool, the parse): what and its exit code."""

    exit_code: int
    stage: str  # which stage broke, by the error's type: "stack", "load", "results", "config" or "run"
    message: str


@dataclass(frozen=True)
class VerdictItem:
    level: Literal["fail", "warn"]
    kind: Literal["threshold", "finding", "regression", "infra"]
    text: str  # one line naming what (with its endpoint) and the figures


@dataclass(frozen=True)
class Verdict:
    """The one answer to "did this run pass?": every output (exit code, `status` step output,
    annotations, JUnit, headlines) reads it. Built by ci_perf.verdict.decide."""

    status: Literal["pass", "warn", "fail", "no_data", "error"]
    exit_code: int
    headline: str  # a few words: what decided it
    items: tuple[VerdictItem, ...] = ()

    @property
    def warnings(self) -> tuple[VerdictItem, ...]:
        return tuple(i for i in self.items if i.level == "warn")


@dataclass(frozen=True)
class Evaluation:
    """The threshold checks; whether the run passes is the Verdict's to say, not this type's."""

    checks: tuple[CheckResult, ...] = ()


class Change(StrEnum):
    IMPROVED = "improved"
    DEGRADED = "degraded"
    UNCHANGED = "unchanged"
    INCONCLUSIVE = "inconclusive"


@dataclass(frozen=True)
class MetricDelta:
    endpoint: str
    metric: str
    direction: Direction
    baseline: float | None
    current: float | None
    change: Change
    delta_pct: float | None = None
    p_value: float | None = None
    note: str = ""
    # Same-runner A/B (ci_perf.paired): the confidence interval of delta_pct; left out of JSON otherwise.
    ci_low_pct: float | None = field(default=None, metadata={"omit_none": True})
    ci_high_pct: float | None = field(default=None, metadata={"omit_none": True})


@dataclass(frozen=True)
class Comparison:
    """Current run against a baseline; `method` says how verdicts were reached, for the report."""

    source: str
    baseline: RunMeta
    method: str
    deltas: tuple[MetricDelta, ...] = ()
    warning: str = ""

    @property
    def regressions(self) -> tuple[MetricDelta, ...]:
        return tuple(d for d in self.deltas if d.change is Change.DEGRADED)


Side = Literal["base", "head"]


@dataclass(frozen=True)
class SideBySide:
    """Same-runner A/B (`--baseline ref:REF`, ci_perf.ab): every round of both sides as measured, in run
    order `order` (base, head, head, base, ...). Rounds 2i and 2i+1 hold one side each, so pair i is
    (base[i], head[i]); ci_perf.paired judges the pairs into the Outcome's Comparison."""

    order: tuple[Side, ...]
    base: tuple[RunResult, ...]
    head: tuple[RunResult, ...]


@dataclass(frozen=True)
class Outcome:
    """Everything results.json holds: enough to re-render every report without rerunning."""

    result: RunResult
    evaluation: Evaluation
    comparison: Comparison | None = None
    system: SystemMetrics | None = None  # the system under test, when it was observed
    findings: tuple[Finding, ...] = ()  # ci_perf.analysis, computed once in the evaluate stage
    gating: Gating = field(default_factory=Gating)
    infra: Infra | None = None  # set when the run broke: the verdict is an error
    # Same-runner A/B: both sides' rounds; `result` is then the head's rounds pooled (ci_perf.ab).
    side_by_side: SideBySide | None = None

    @cached_property
    def verdict(self) -> Verdict:
        from ci_perf.verdict import decide  # decide reads this module's types

        return decide(self)

    def to_dict(self) -> dict[str, Any]:
        out = {
            "schema_version": SCHEMA_VERSION,
            "result": _encode(self.result),
            "evaluation": _encode(self.evaluation),
            "comparison": _encode(self.comparison) if self.comparison else None,
            "findings": _encode(self.findings),
            "gating": _encode(self.gating),
            "verdict": _encode(self.verdict),  # for readers of the file; decided again on load
        }
        if self.system is not None:  # left out when absent: older results read and write as before
            out["system"] = self.system.to_dict()
        if self.infra is not None:
            out["infra"] = _encode(self.infra)
        if self.side_by_side is not None:
            out["side_by_side"] = _encode(self.side_by_side)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Outcome:
        """A results.json document, every field checked (ResultError naming the field)."""
        if not isinstance(data, Mapping):
            raise ResultError(f"not a ci-perf results document (a JSON {type(data).__name__}, expected an object)")
        _check_version(data)
        return decode(cls, data, "")


# --- JSON encoding -------------------------------------------------------------------------------


def _encode(obj: Any) -> Any:
    if isinstance(obj, LatencyHistogram):
        return obj.to_dict()
    if isinstance(obj, StrEnum):
        return obj.value
    if hasattr(obj, "__dataclass_fields__"):
        return {
            name: _encode(getattr(obj, name))
            for name, f in obj.__dataclass_fields__.items()
            if not (f.metadata.get("omit_none") and getattr(obj, name) is None)
        }
    if isinstance(obj, tuple | list):
        return [_encode(v) for v in obj]
    if isinstance(obj, dict):
        return {k: _encode(v) for k, v in obj.items()}
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _check_version(data: Mapping[str, Any]) -> None:
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        raise ResultError(
            f"schema_version is {version!r}, this ci-perf reads {SCHEMA_VERSION}; "
            "re-create the file with this version of ci-perf"
        )


def _decode_result(d: Any) -> RunResult:
    if not isinstance(d, Mapping):
        raise ResultError(f"not a ci-perf run result (a JSON {type(d).__name__}, expected an object)")
    if "schema_version" in d:
        _check_version(d)
    return decode(RunResult, d, "")


def _decode_comparison(d: Any) -> Comparison:
    return decode(Comparison, d, "comparison")
