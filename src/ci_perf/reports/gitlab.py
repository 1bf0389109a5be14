"""GitLab's own report formats: load_performance (k6 summary-export shape) and metrics (OpenMetrics).

GitLab's merge-request load-performance widget reads, from a k6 `--summary-export` file,
metrics.http_reqs.rate (RPS), metrics.http_req_waiting["p(90)"] and ["p(95)"] (TTFB) and
metrics.checks.passes/fails (checks pass rate). We write that shape for Locust runs too:
- http_req_waiting is k6's own waiting trend (RunResult.waiting: time to first byte, over every
  request, as k6 reports it). Locust does not measure TTFB, so a Locust run has no http_req_waiting:
  the widget, which reads whichever metrics are present, then shows no TTFB rather than a response
  time under TTFB's name;
- checks count requests answered as expected (passes) against failed requests (fails), as the
  k6 scripts check every response's status.

GitLab's metrics parser strips everything after '#' on a line and shell-splits the rest, so label
values must not contain '#' (replaced by %23) and quotes/backslashes are escaped.
"""

from __future__ import annotations

import json
from typing import Any

from ci_perf.model import EndpointStats, Outcome, Status, Waiting

K6_ROOT_GROUP_ID = "d41d8cd98f00b204e9800998ecf8427e"  # k6's id of the root group (md5 of "")


def _num(value: float) -> float:
    return round(float(value), 4)


def _trend(stats: EndpointStats | Waiting) -> dict[str, float]:
    return {
        "avg": _num(stats.avg_ms),
        "min": _num(stats.min_ms),
        "med": _num(stats.p50_ms),
        "max": _num(stats.max_ms),
        "p(90)": _num(stats.p90_ms),
        "p(95)": _num(stats.p95_ms),
    }


def load_performance(outcome: Outcome) -> dict[str, Any]:
    total, waiting = outcome.result.total, outcome.result.waiting
    ok = total.requests - total.failures
    users = outcome.result.meta.users
    return {
        "root_group": {"name": "", "path": "", "id": K6_ROOT_GROUP_ID, "groups": {}, "checks": {}},
        "metrics": {
            "checks": {
                "passes": ok,
                "fails": total.failures,
                "value": _num(ok / total.requests) if total.requests else 0.0,
            },
            "http_reqs": {"count": total.requests, "rate": _num(total.rps)},
            "http_req_duration": _trend(total),
            **({"http_req_waiting": _trend(waiting)} if waiting is not None else {}),  # no TTFB: none
            # k6's Rate metric counts non-zero samples as passes: a failed request is a "pass" here.
            "http_req_failed": {"passes": total.failures, "fails": ok, "value": _num(total.error_rate)},
            "vus_max": {"value": users, "min": users, "max": users},
        },
    }


def render_load_performance(outcome: Outcome) -> str:
    return json.dumps(load_performance(outcome), indent=2) + "\n"


# --- OpenMetrics ---------------------------------------------------------------------------------

_STATUS_VALUE = {Status.PASS: 0, Status.WARN: 1, Status.FAIL: 2, Status.SKIP: -1, Status.NO_DATA: -1}
_ENDPOINT_FAMILIES: tuple[tuple[str, str, str], ...] = (
    ("requests", "requests", "requests made"),
    ("failures", "failures", "requests that failed"),
    ("error_ratio", "error_rate", "failed requests / requests"),
    ("rps", "rps", "requests per second"),
    ("avg_ms", "avg_ms", "mean response time"),
    ("p50_ms", "p50_ms", "median response time"),
    ("p90_ms", "p90_ms", "90th percentile response time"),
    ("p95_ms", "p95_ms", "95th percentile response time"),
    ("p99_ms", "p99_ms", "99th percentile response time"),
    ("max_ms", "max_ms", "slowest response"),
)


def escape_label(value: str) -> str:
    """OpenMetrics label escaping, plus '#' which GitLab's parser would take for a comment."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("#", "%23")


def _labels(**labels: str) -> str:
    return "{" + ",".join(f'{k}="{escape_label(v)}"' for k, v in labels.items()) + "}"


def _value(value: float) -> str:
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.4f}".rstrip("0").rstrip(".")


def _family(name: str, help_text: str, samples: list[tuple[str, float]]) -> list[str]:
    if not samples:
        return []
    return [
        f"# HELP ci_perf_{name} {help_text}",
        f"# TYPE ci_perf_{name} gauge",
        *(f"ci_perf_{name}{labels} {_value(v)}" for labels, v in samples),
    ]


def render_metrics(outcome: Outcome) -> str:
    """One `name{labels} value` line per metric (OpenMetrics text, ends with # EOF)."""
    meta = outcome.result.meta
    base = {"scenario": meta.scenario, "tool": meta.tool}
    endpoints = [outcome.result.total, *outcome.result.endpoints]
    lines: list[str] = []
    for family, attribute, help_text in _ENDPOINT_FAMILIES:
        samples = [(_labels(**base, endpoint=e.key), float(getattr(e, attribute))) for e in endpoints]
        lines += _family(family, help_text, samples)
    checks = [
        (_labels(**base, check=c.name, scope=c.scope), float(_STATUS_VALUE[c.status]))
        for c in outcome.evaluation.checks
    ]
    lines += _family("threshold_status", "0 pass, 1 warn, 2 fail, -1 not measured", checks)
    avail = outcome.result.availability
    if avail and avail.probes:
        lines += _family("availability_ratio", "health probes answered", [(_labels(**base), avail.ratio)])
    if outcome.comparison:
        lines += _family(
            "regressions",
            "metrics degraded against the baseline",
            [(_labels(**base), float(len(outcome.comparison.regressions)))],
        )
    return "\n".join([*lines, "# EOF"]) + "\n"
