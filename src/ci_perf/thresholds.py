"""Threshold checks: the seed's performance targets, overridable from ci-perf.yml.

Each check has a *target* (missing it is a warning) and a *critical* level (missing it fails the
gate), as in the seed's "Performance Targets" table. Layers merge field by field:
defaults < global `thresholds:` < the scenario's `thresholds:`; `off` (or YAML false) disables a check.

Values and units (one rule per kind of metric, so plain numbers are never ambiguous):

* latency (`*_p95`, `db_query`, endpoint `p50/p90/p95/p99/avg/max`): "100ms", "1.5s", "250us";
  a plain number is milliseconds.
* ratios (`error_rate`, `availability`): "1%", "0.5%", "99.9%"; a plain number is a fraction
  between 0 and 1 (0.01 == 1%), anything above 1 must be written with "%".
* throughput (`*_rps`, endpoint `rps`): "1000/s", "1000 req/s", "1000rps"; a plain number is req/s.

Boundaries follow the seed's wording: lower-is-better levels are strict ("< 100ms": 100 ms is a
warning), higher-is-better levels are inclusive (">= 1000 req/s" passes at exactly 1000).
Percentages are carried in percent (unit "%") in CheckResult so results.json reads naturally.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from fnmatch import fnmatchcase
from typing import Any, Literal

from ci_perf.errors import ConfigError
from ci_perf.model import CheckResult, Direction, EndpointStats, Evaluation, RunResult, Status, min_samples
from ci_perf.scenarios.catalog import TASKS, Scenario

Kind = Literal["latency", "ratio", "throughput"]
UNITS: dict[Kind, str] = {"latency": "ms", "ratio": "%", "throughput": "req/s"}
EXAMPLES: dict[Kind, str] = {"latency": '"100ms"', "ratio": '"1%"', "throughput": '"1000/s"'}


@dataclass(frozen=True)
class Spec:
    """What a built-in check measures: `where` is total, each:<group>, sum:<group>, availability, db."""

    name: str
    metric: str
    kind: Kind
    direction: Direction
    where: str
    target: float
    critical: float
    focus: str = ""  # only evaluated for scenarios with this focus


BUILTIN: dict[str, Spec] = {
    "api_p95": Spec("API p95", "p95_ms", "latency", "lower", "total", 100, 200),
    "registration_p95": Spec("Server registration p95", "p95_ms", "latency", "lower", "each:registration", 200, 500),
    "policy_p95": Spec("Policy evaluation p95", "p95_ms", "latency", "lower", "each:policy", 50, 100),
    "db_query": Spec("Database queries", "db_query_ms", "latency", "lower", "db", 20, 50),
    "error_rate": Spec("Error rate", "error_rate", "ratio", "lower", "total", 1, 5),
    "registration_rps": Spec(
        "Registration throughput", "rps", "throughput", "higher", "sum:registration", 1000, 500, focus="registration"
    ),
    "policy_rps": Spec(
        "Policy evaluation throughput", "rps", "throughput", "higher", "sum:policy", 2000, 1000, focus="policy"
    ),
    "availability": Spec("Availability", "availability", "ratio", "higher", "availability", 99.9, 99.5),
}

DEFAULT_GROUPS: dict[str, tuple[str, ...]] = {
    "registration": ("POST /api/v1/servers/*",),
    "policy": ("POST /api/v1/policy/evaluate*",),
    "health": ("GET /health*",),
}

# Endpoint-level metrics: config key -> (EndpointStats attribute, kind, direction).
ENDPOINT_METRICS: dict[str, tuple[str, Kind, Direction]] = {
    **{p: (f"{p}_ms", "latency", "lower") for p in ("p50", "p90", "p95", "p99", "avg", "max")},
    "error_rate": ("error_rate", "ratio", "lower"),
    "rps": ("rps", "throughput", "higher"),
}


@dataclass(frozen=True)
class Limit:
    target: float
    critical: float


@dataclass(frozen=True)
class EndpointRule:
    pattern: str  # an endpoint key ("GET /x") or an fnmatch pattern over keys
    metric: str  # a key of ENDPOINT_METRICS
    limit: Limit | None  # None: switched off


@dataclass(frozen=True)
class ThresholdSet:
    limits: dict[str, Limit | None] = field(default_factory=dict)  # BUILTIN key -> limit (None: off)
    endpoints: tuple[EndpointRule, ...] = ()
    groups: dict[str, tuple[str, ...]] = field(default_factory=lambda: dict(DEFAULT_GROUPS))


# --- parsing -------------------------------------------------------------------------------------

_NUMBER = r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
_SUFFIXES: dict[Kind, dict[str, Decimal]] = {
    "latency": {"": Decimal(1), "ms": Decimal(1), "s": Decimal(1000), "us": Decimal("0.001")},
    "ratio": {"%": Decimal(1), "": Decimal(100)},
    "throughput": {"": Decimal(1), "/s": Decimal(1), "req/s": Decimal(1), "rps": Decimal(1)},
}


def parse_value(value: Any, kind: Kind, path: str) -> float:
    """One threshold value in its kind's unit (ms, percent, req/s); ConfigError names `path`."""
    fail = ConfigError(f"{path}: {value!r} is not a valid {kind} value; write e.g. {EXAMPLES[kind]}")
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise fail
    match = re.fullmatch(_NUMBER + r"\s*([a-z/%]*(?:\s*req/s)?)", str(value).strip().lower())
    if not match:
        raise fail
    suffix = match.group(2).replace(" ", "")
    if suffix not in _SUFFIXES[kind]:
        raise fail
    try:
        number = Decimal(match.group(1))
    except InvalidOperation:
        raise fail from None
    if kind == "ratio" and suffix == "" and number > 1:
        raise ConfigError(f"{path}: {value!r} is above 1; write percentages with %, e.g. {value}%")
    result = float(number * _SUFFIXES[kind][suffix])
    if kind == "ratio" and result > 100:
        raise ConfigError(f"{path}: {value!r} is above 100%; write e.g. {EXAMPLES[kind]}")
    return result


def _is_off(value: Any) -> bool:
    return value is False or (isinstance(value, str) and value.strip().lower() == "off")


def _layer(base: Limit | None, value: Any, kind: Kind, direction: Direction, path: str) -> Limit | None:
    """Apply one config layer to one check: `off`, or {target, critical} merged field by field."""
    example = f"{{target: {EXAMPLES[kind]}, critical: ...}} or off"
    if _is_off(value):
        return None
    if not isinstance(value, Mapping):
        raise ConfigError(f"{path}: {value!r} is not a threshold; write e.g. {example}")
    for key in value:
        if key not in ("target", "critical"):
            raise ConfigError(f"{path}.{key}: unknown key; a threshold has target and critical, e.g. {example}")
    target, critical = (
        parse_value(value[k], kind, f"{path}.{k}") if value.get(k) is not None else None for k in ("target", "critical")
    )
    if target is None and critical is None:
        raise ConfigError(f"{path}: empty threshold; write e.g. {example}")
    if base is not None:  # a partial override keeps the other level from the layer below
        target = base.target if target is None else target
        critical = base.critical if critical is None else critical
    # A new endpoint rule with one level only: no warning band, that level is the gate.
    level = target if target is not None else critical
    assert level is not None  # the empty case raised above
    limit = Limit(level, critical if critical is not None else level)
    worse = limit.target > limit.critical if direction == "lower" else limit.target < limit.critical
    if worse:
        raise ConfigError(
            f"{path}: target {limit.target:g} {UNITS[kind]} is worse than critical {limit.critical:g} "
            f"{UNITS[kind]}; the target (warning) must be stricter, e.g. {example}"
        )
    return limit


def _parse_groups(raw: Any, groups: dict[str, tuple[str, ...]], path: str) -> None:
    if not isinstance(raw, Mapping):
        raise ConfigError(f'{path}: expected a mapping of group -> patterns, e.g. {{policy: ["POST /x*"]}}')
    for name, patterns in raw.items():
        if name not in DEFAULT_GROUPS:
            raise ConfigError(f"{path}.{name}: unknown group; groups are {', '.join(DEFAULT_GROUPS)}")
        items = (patterns,) if isinstance(patterns, str) else patterns
        if not isinstance(items, list | tuple) or not items or not all(isinstance(p, str) for p in items):
            raise ConfigError(
                f'{path}.{name}: {patterns!r} is not a list of patterns; write e.g. ["POST /api/v1/servers/*"]'
            )
        groups[name] = tuple(items)


def _parse_endpoints(raw: Any, rules: dict[tuple[str, str], Limit | None], path: str) -> None:
    example = '{"GET /api/v1/servers/{id}": {p95: {target: "50ms", critical: "80ms"}}}'
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{path}: expected a mapping of endpoint -> metrics, e.g. {example}")
    for pattern, metrics in raw.items():
        where = f'{path}["{pattern}"]'
        if not isinstance(metrics, Mapping):
            raise ConfigError(f"{where}: expected metrics, e.g. {example}")
        for metric, value in metrics.items():
            if metric not in ENDPOINT_METRICS:
                raise ConfigError(f"{where}.{metric}: unknown metric; use one of {', '.join(ENDPOINT_METRICS)}")
            _, kind, direction = ENDPOINT_METRICS[metric]
            key = (str(pattern), str(metric))
            rules[key] = _layer(rules.get(key), value, kind, direction, f"{where}.{metric}")


def _apply(
    layer: Mapping[str, Any] | None,
    path: str,
    limits: dict[str, Limit | None],
    endpoints: dict[tuple[str, str], Limit | None],
    groups: dict[str, tuple[str, ...]],
) -> None:
    if layer is None:
        return
    if not isinstance(layer, Mapping):
        raise ConfigError(f'{path}: expected a mapping of checks, e.g. {{api_p95: {{target: "100ms"}}}}')
    for key, value in layer.items():
        if key == "endpoints":
            _parse_endpoints(value, endpoints, f"{path}.endpoints")
        elif key == "groups":
            _parse_groups(value, groups, f"{path}.groups")
        elif key in BUILTIN:
            spec = BUILTIN[key]
            limits[key] = _layer(limits[key], value, spec.kind, spec.direction, f"{path}.{key}")
        else:
            known = ", ".join([*BUILTIN, "endpoints", "groups"])
            raise ConfigError(f"{path}.{key}: unknown threshold; use one of {known}")


def parse_thresholds(
    global_: Mapping[str, Any] | None,
    scenario: Mapping[str, Any] | None,
    *,
    global_path: str = "thresholds",
    scenario_path: str = "scenario.thresholds",
) -> ThresholdSet:
    """Merge defaults < global < scenario into a ThresholdSet; errors name the key path."""
    limits: dict[str, Limit | None] = {k: Limit(s.target, s.critical) for k, s in BUILTIN.items()}
    endpoints: dict[tuple[str, str], Limit | None] = {}
    groups = dict(DEFAULT_GROUPS)
    _apply(global_, global_path, limits, endpoints, groups)
    _apply(scenario, scenario_path, limits, endpoints, groups)
    rules = tuple(EndpointRule(p, m, lim) for (p, m), lim in endpoints.items())
    return ThresholdSet(limits, rules, groups)


# --- evaluation ----------------------------------------------------------------------------------


def format_value(value: float | None, unit: str) -> str:
    """Human form of a measured or limit value, shared by every renderer."""
    if value is None:
        return "not measured"
    if unit == "%":
        return f"{value:.2f}".rstrip("0").rstrip(".") + "%"
    if unit == "ms":
        return f"{value:.0f} ms" if value >= 10 else f"{value:.1f} ms"
    if unit == "req/s":
        return f"{value:.1f} req/s" if value < 100 else f"{value:.0f} req/s"
    return f"{value:g} {unit}".strip()


def limit_text(value: float, unit: str, direction: Direction) -> str:
    return ("< " if direction == "lower" else "≥ ") + format_value(value, unit)


def judge(actual: float, limit: Limit, direction: Direction) -> Status:
    if direction == "lower":
        return Status.PASS if actual < limit.target else Status.WARN if actual < limit.critical else Status.FAIL
    return Status.PASS if actual >= limit.target else Status.WARN if actual >= limit.critical else Status.FAIL


def _check(
    name: str,
    metric: str,
    scope: str,
    kind: Kind,
    direction: Direction,
    limit: Limit,
    actual: float | None,
    why: str = "not measured",
    samples: int | None = None,
) -> CheckResult:
    """One check. `samples`: the successful requests a latency figure stands on; below min_samples the
    check is NO_DATA ("not enough requests"), neither a pass nor a failure."""
    unit = UNITS[kind]
    levels = (
        f"target {limit_text(limit.target, unit, direction)}, critical {limit_text(limit.critical, unit, direction)}"
    )
    # endpoint scopes ("GET /x") start with the upper-case method; other scopes are lower case
    where = f" of {scope}" if scope not in name and " " in scope and scope[0].isupper() else ""
    need = min_samples(metric)
    if samples is not None and samples < need:
        status, actual = Status.NO_DATA, None
        message = (
            f"{name}{where}: not enough requests (n={samples} successful; {metric.removesuffix('_ms')} needs {need})"
            if samples
            else f"{name}{where}: no successful request to measure"
        )
    elif actual is None:
        status, message = Status.SKIP, f"{name}: {why} ({levels})"
    else:
        status = judge(actual, limit, direction)
        message = f"{name}{where} is {format_value(actual, unit)} ({levels})"
    return CheckResult(
        name, metric, scope, unit, direction, limit.target, limit.critical, actual, status, message, samples
    )


def _measure(stats: EndpointStats, attribute: str) -> float | None:
    if stats.requests == 0 and attribute != "rps":
        return None
    value = float(getattr(stats, attribute))
    return stats.failures * 100 / stats.requests if attribute == "error_rate" else value


def _samples(stats: EndpointStats, attribute: str) -> int | None:
    """Latency figures stand on the successful requests (failures are judged by the error rate)."""
    return stats.successes if attribute.endswith("_ms") and stats.requests else None


def _in_group(result: RunResult, patterns: tuple[str, ...]) -> list[EndpointStats]:
    return [e for e in result.endpoints if any(e.key == p or fnmatchcase(e.key, p) for p in patterns)]


def offered_rps(scenario: Scenario, patterns: tuple[str, ...]) -> float | None:
    """The most the scenario's users can send to endpoints matching `patterns`: users / mean think time,
    times those tasks' share of the mix (response time only lowers it). None without think time."""
    mean_think = sum(scenario.think_time_s) / 2
    total = sum(w for _, w in scenario.mix)
    if mean_think <= 0 or total <= 0:
        return None
    share = sum(w for task, w in scenario.mix if any(fnmatchcase(" ".join(TASKS[task]), p) for p in patterns)) / total
    return scenario.users / mean_think * share


def _builtin(
    spec: Spec,
    limit: Limit,
    result: RunResult,
    ts: ThresholdSet,
    db_query_ms: float | None,
    scenario: Scenario | None = None,
) -> list[CheckResult]:
    if spec.where == "total":
        return [
            _check(
                spec.name,
                spec.metric,
                "all requests",
                spec.kind,
                spec.direction,
                limit,
                _measure(result.total, spec.metric),
                "no requests were made",
                _samples(result.total, spec.metric),
            )
        ]
    if spec.where == "db":
        return [_check(spec.name, spec.metric, "database", spec.kind, spec.direction, limit, db_query_ms)]
    if spec.where == "availability":
        avail = result.availability
        actual = avail.ok * 100 / avail.probes if avail and avail.probes else None
        return [_check(spec.name, spec.metric, "health probes", spec.kind, spec.direction, limit, actual)]
    mode, group = spec.where.split(":")
    patterns = ts.groups.get(group, ())
    members = _in_group(result, patterns)

    def on_group(actual: float | None, why: str = "") -> list[CheckResult]:
        return [_check(spec.name, spec.metric, f"group {group}", spec.kind, spec.direction, limit, actual, why)]

    if mode == "sum":
        offered = offered_rps(scenario, patterns) if scenario is not None else None
        if scenario is not None and offered is not None and offered < limit.critical:
            return on_group(
                None,
                f"not applicable: {scenario.users} users with {scenario.think_time_s[0]:g}-"
                f"{scenario.think_time_s[1]:g} s think time offer at most ~{offered:.0f} req/s",
            )
        return on_group(sum(e.rps for e in members))
    if not members:
        return on_group(None, f"no requests matched {', '.join(patterns)}")
    return [
        _check(
            spec.name,
            spec.metric,
            e.key,
            spec.kind,
            spec.direction,
            limit,
            _measure(e, spec.metric),
            "no requests",
            _samples(e, spec.metric),
        )
        for e in members
    ]


def _endpoint_checks(rule: EndpointRule, result: RunResult) -> list[CheckResult]:
    assert rule.limit is not None
    attribute, kind, direction = ENDPOINT_METRICS[rule.metric]
    members = _in_group(result, (rule.pattern,))
    if not members:
        return [
            _check(
                f"{rule.pattern} {rule.metric}",
                attribute,
                rule.pattern,
                kind,
                direction,
                rule.limit,
                None,
                "no requests matched",
            )
        ]
    return [
        _check(
            f"{e.key} {rule.metric}",
            attribute,
            e.key,
            kind,
            direction,
            rule.limit,
            _measure(e, attribute),
            "no requests",
            _samples(e, attribute),
        )
        for e in members
    ]


def evaluate(
    result: RunResult, thresholds: ThresholdSet, scenario: Scenario, *, db_query_ms: float | None = None
) -> Evaluation:
    """Every enabled check against one run. `db_query_ms`: measured query time, when known."""
    checks: list[CheckResult] = []
    for key, spec in BUILTIN.items():
        limit = thresholds.limits.get(key)
        if limit is None or (spec.focus and spec.focus != scenario.focus):
            continue
        checks.extend(_builtin(spec, limit, result, thresholds, db_query_ms, scenario))
    for rule in thresholds.endpoints:
        if rule.limit is not None:
            checks.extend(_endpoint_checks(rule, result))
    return Evaluation(tuple(checks))
