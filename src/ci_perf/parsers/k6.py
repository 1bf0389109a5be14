"""k6 summary -> RunResult, with every statistic exactly as k6 computed it.

Our script's handleSummary file holds the sub-metrics it declared (per endpoint `{name:X,method:M}`,
per error status `ci_perf_status{...,status:S}`), one Trend and one Counter per window i
(`ci_perf_ok_w<i>`: right answers, `ci_perf_failed_w<i>`: failures; each per endpoint too) and a
`ci_perf` block (window length, endpoints, the planned load shape, the wrong-answer reason codes).
Latency is over right answers only (the script's `ci_perf_ok` Trend), failures are error statuses plus
wrong 2xx answers (`ci_perf_wrong`), `all_p95_ms` is http_req_duration's p95 over every request, and
policy decisions come from `ci_perf_decisions`. The body behind each error status comes from the `ci-perf failure`
lines the script writes to k6's stderr. A user's own script only leaves k6's `--summary-export`:
aggregate numbers, plus per endpoint for every `{name:X}` sub-metric it declared thresholds on.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any, NoReturn

from ci_perf.config import parse_shard
from ci_perf.errors import ResultError
from ci_perf.jsonread import check_fields, check_value, load_json, shown
from ci_perf.model import AGGREGATE, EndpointStats, ErrorCount, LatencyHistogram, RunMeta, RunResult, Waiting, Window
from ci_perf.parsers import MAX_WINDOW_S, MAX_WINDOWS, register
from ci_perf.parsers.k6_stream import SUCCESS_METRIC, StreamHistograms, read_histograms
from ci_perf.runners.base import RunArtifacts
from ci_perf.scenarios.catalog import TASKS

Values = dict[str, float]
METHODS: dict[str, str] = {name: method for method, name in TASKS.values()}
STATS = {
    "min_ms": "min",
    "avg_ms": "avg",
    "p50_ms": "med",
    "p90_ms": "p(90)",
    "p95_ms": "p(95)",
    "p99_ms": "p(99)",
    "max_ms": "max",
}


class Summary:
    """One k6 summary file, either shape, reduced to metric key -> values."""

    def __init__(self, path: Path) -> None:
        self.path = path
        doc = _load(path)
        check_summary(path, doc)
        raw = doc.get("metrics")
        if not isinstance(raw, dict) or "http_reqs" not in raw:
            self.fail("has no metrics.http_reqs (did the run make any HTTP request?)")
        # handleSummary data nests values under "values"; --summary-export keeps them flat.
        self.metrics: dict[str, Values] = {
            k: (v.get("values") if isinstance(v.get("values"), dict) else v) for k, v in raw.items()
        }
        block = doc.get("ci_perf")
        self.block: dict[str, Any] | None = block if isinstance(block, dict) else None
        if self.block is not None and int(self.block.get("format") or 1) < FORMAT:
            self.fail(f"written by an older ci-perf k6 script (format {self.block.get('format')}); this ci-perf "
                      f"reads format {FORMAT}: rerun the test with it")  # fmt: skip
        # Success-only latency and wrong answers in our own metrics.
        self.judged = self.block is not None
        self.latency = SUCCESS_METRIC if self.judged else "http_req_duration"
        state = doc.get("state") or {}
        total = self.get("http_reqs")
        duration_ms = state.get("testRunDurationMs")
        # The export has no run duration; k6's own rate gives it back (rate = count / duration).
        rate = total.get("rate")
        self.run_s = float(duration_ms) / 1000 if duration_ms else total.get("count", 0) / rate if rate else 0.0

    def fail(self, what: str) -> NoReturn:
        raise ResultError(f"k6 summary {self.path}: {what}")

    def get(self, key: str) -> Values:
        found = self.metrics.get(key)
        if not isinstance(found, dict):
            self.fail(f"has no metric {key!r}")
        return found

    def number(self, key: str, stat: str, default: float | None = None) -> float:
        values = self.metrics.get(key)
        if isinstance(values, dict) and isinstance(values.get(stat), int | float):
            return float(values[stat])
        if values is None:
            if default is not None:
                return default
            self.fail(f"has no metric {key!r}")
        self.fail(f"metric {key!r} has no {stat!r} (run k6 with --summary-trend-stats {_TREND_FLAG})")


_TREND_FLAG = "'min,avg,med,p(90),p(95),p(99),max,count'"
FORMAT = 3  # k6_script.js's FORMAT: windows in metrics of their own, statuses in ci_perf_status


def _load(path: Path) -> dict[str, Any]:
    doc = load_json(path, f"k6 summary {path}", missing="missing (k6 wrote no summary; see k6.stderr.log)")
    if not isinstance(doc, dict):
        raise ResultError(f"k6 summary {path}: not a JSON object")
    return doc


# --- validation: every field the parser reads, checked before it reads any ---------------------

BLOCK_FIELDS = {"format": "count?", "window_s": "number?", "windows": "count?", "duration_s": "number?",
                "plan": "object?", "endpoints": "list?", "expected_statuses": "list?", "error_statuses": "list?",
                "reasons": "object?", "decisions": "list?"}  # fmt: skip
STAT_NAMES = ("min", "avg", "med", "max", "p(90)", "p(95)", "p(99)", "value")
COUNT_NAMES = ("count", "rate", "passes", "fails")


def check_summary(path: Path, doc: dict[str, Any]) -> None:
    """The metrics (objects of finite figures, counts not negative), the run state and our script's
    ci_perf block: ResultError naming the field."""
    where, metrics = f"k6 summary {path}", doc.get("metrics")
    for key, metric in metrics.items() if isinstance(metrics, dict) else ():
        values = check_value(f"{where}: metrics.{key}", metric, "object")
        values = values["values"] if isinstance(values.get("values"), dict) else values
        for stat in (*STAT_NAMES, *COUNT_NAMES):
            if stat in values:
                check_value(f"{where}: metrics.{key}.{stat}", values[stat], "number")
                if stat in COUNT_NAMES and values[stat] < 0:
                    raise ResultError(f"{where}: metrics.{key}.{stat} is {values[stat]}, expected a number >= 0")
    state = check_fields(f"{where}: state", doc.get("state") or {}, {"testRunDurationMs": "number?"})
    if (state.get("testRunDurationMs") or 0) < 0:
        raise ResultError(f"{where}: state.testRunDurationMs is negative")
    if doc.get("ci_perf") is not None:
        _check_block(f"{where}: ci_perf", check_fields(f"{where}: ci_perf", doc["ci_perf"], BLOCK_FIELDS))


def _check_block(where: str, block: dict[str, Any]) -> None:
    if (block.get("windows") or 0) > MAX_WINDOWS or not 0 <= (block.get("window_s") or 0) <= MAX_WINDOW_S:
        raise ResultError(
            f"{where}: {block.get('windows')} windows of {block.get('window_s')}s are no run's (at most "
            f"{MAX_WINDOWS} windows of at most a day)"
        )
    plan = check_fields(f"{where}.plan", block.get("plan") or {}, {"start_users": "count?", "stages": "list?"})
    _pairs(f"{where}.plan.stages", plan.get("stages") or [], "number", "count")
    if any(seconds < 0 for seconds, _ in plan.get("stages") or []):
        raise ResultError(f"{where}.plan.stages: a stage of negative length")
    _pairs(f"{where}.endpoints", block.get("endpoints") or [], "str", "str")
    for name in ("expected_statuses", "error_statuses", "decisions"):
        kind = "str" if name == "decisions" else "count"
        for i, item in enumerate(block.get(name) or []):
            check_value(f"{where}.{name}[{i}]", item, kind)
    for key, pairs in (block.get("reasons") or {}).items():
        _pairs(f"{where}.reasons.{key}", check_value(f"{where}.reasons.{key}", pairs, "list"), "str", "str")


def _pairs(where: str, items: list[Any], first: str, second: str) -> None:
    for i, item in enumerate(items):
        if not isinstance(item, list) or len(item) != 2:
            raise ResultError(f"{where}[{i}] is {shown(item)}, expected a pair")
        check_value(f"{where}[{i}][0]", item[0], first)
        check_value(f"{where}[{i}][1]", item[1], second)


Tags = dict[str, str]  # an endpoint's sub-metric tags: {} for all requests


def _sel(tags: Tags, **more: object) -> str:
    """k6's sub-metric selector, in the tag order the script declares: {name:X,method:M,win:3}."""
    inner = ",".join(f"{k}:{v}" for k, v in {**tags, **more}.items())
    return f"{{{inner}}}" if inner else ""


def users_at(plan: dict[str, Any], t: float) -> int:
    """Planned VUs at t seconds (linear within a stage, as k6's ramping-vus)."""
    users, elapsed = float(plan.get("start_users", 0)), 0.0
    for seconds, target in plan.get("stages", []):
        if t <= elapsed + seconds:
            return round(users + (float(target) - users) * ((t - elapsed) / seconds if seconds else 1.0))
        users, elapsed = float(target), elapsed + seconds
    return round(users)


def shard_users(users: int, shard: tuple[int, int] | None) -> int:
    """A shard's share of `users` VUs as k6 stripes them over N equal segments: round-robin, in order."""
    if shard is None:
        return users
    index, total = shard
    return max(0, (users - index + total) // total)


def windows(
    s: Summary, tags: Tags, hists: StreamHistograms | None = None, shard: tuple[int, int] | None = None
) -> tuple[Window, ...]:
    block = s.block or {}
    width = float(block.get("window_s") or 0)
    count = int(block.get("windows") or 0) if width else 0
    plan = block.get("plan") or {}
    out = []
    sel = _sel(tags)
    for i in range(count):
        lat, failures = f"ci_perf_ok_w{i}{sel}", int(s.number(f"ci_perf_failed_w{i}{sel}", "count", 0.0))
        right = int(s.number(lat, "count", 0.0))
        requests = right + failures
        start = i * width
        if not requests and start >= min(s.run_s, float(block.get("duration_s") or s.run_s)):
            break  # the grace period after the planned duration, when nothing was left in flight
        # The script puts anything past its last window into that window: it lasts to the end.
        end = s.run_s if i == count - 1 else min(start + width, s.run_s)
        has = right > 0
        out.append(
            Window(
                start_s=start,
                length_s=round(max(end - start, 1e-3), 6),
                requests=requests,
                failures=failures,
                users=shard_users(users_at(plan, start + width / 2), shard),
                p50_ms=s.number(lat, "med") if has else None,
                p95_ms=s.number(lat, "p(95)") if has else None,
                p99_ms=s.number(lat, "p(99)") if has else None,
                histogram=hists.window(i, tags.get("method"), tags.get("name")) if hists and has else None,
                limited=_limited(s, i) if not tags else None,
            )
        )
    return tuple(out)


def failed(s: Summary, sel: str) -> int:
    """Error statuses (k6's http_req_failed) plus 2xx answers our script judged wrong."""
    wrong = s.number(f"ci_perf_wrong{sel}", "count", 0.0) if s.judged else 0.0
    return int(s.number(f"http_req_failed{sel}", "passes", 0.0) + wrong)


FAILURE_LINE = re.compile(r'msg="ci-perf failure ((?:[^"\\]|\\.)*)"')


def failure_texts(path: Path | None) -> dict[tuple[str, str], Counter[str]]:
    """(method, name) -> the failure texts VUs logged (each VU logs a text once): the bodies behind statuses."""
    out: dict[tuple[str, str], Counter[str]] = {}
    if path is None or not path.is_file():
        return out
    with path.open(encoding="utf-8", errors="replace") as fh:
        for line in fh:
            m = FAILURE_LINE.search(line) if "ci-perf failure" in line else None
            if not m:
                continue
            try:
                doc = json.loads(json.loads(f'"{m[1]}"'))
                key, text = (str(doc["method"]), str(doc["name"])), str(doc["text"])
            except (ValueError, KeyError, TypeError):
                continue  # a line k6 escaped in a way JSON does not read: the status alone still counts
            out.setdefault(key, Counter())[text] += 1
    return out


def _status_label(status: int, texts: Counter[str]) -> str:
    """The text most VUs logged for this status, else the bare status (C2's text without a body)."""
    prefix = "connection error" if status == 0 else f"HTTP {status}"
    seen = [(n, t) for t, n in texts.items() if t == prefix or t.startswith(prefix + ":")]
    if seen:
        return max(seen, key=lambda x: (x[0], x[1]))[1]
    return prefix if status else "connection error: unknown"


def _limited(s: Summary, window: int) -> int | None:
    """429 answers in a window of all requests; None from scripts that do not count them."""
    key = f"ci_perf_status{_sel({}, win=window, status=429)}"
    return int(s.number(key, "count", 0.0)) if key in s.metrics else None


def errors(
    s: Summary, endpoints: list[Tags], failures: int, texts: dict[tuple[str, str], Counter[str]]
) -> tuple[ErrorCount, ...]:
    """Failed requests by C2 text: error statuses from the `ci_perf_status{name:X,method:M,status:S}`
    counters our script declares (with the body VUs logged for them), wrong answers from its `{reason:R}` counters."""
    block = s.block or {}
    expected = set(block.get("expected_statuses") or ())
    reasons: dict[str, list[list[str]]] = block.get("reasons") or {}
    counts: dict[str, int] = {}
    for tags in endpoints:
        key = (tags.get("method", ""), tags.get("name", ""))
        for status in block.get("error_statuses") or ():
            if status in expected or 200 <= status < 300:
                continue
            n = int(s.number(f"ci_perf_status{_sel(tags, status=status)}", "count", 0.0))
            if n:
                label = _status_label(status, texts.get(key, Counter()))
                counts[label] = counts.get(label, 0) + n
        for code, text in reasons.get(f"{key[0]} {key[1]}", ()) if s.judged else ():
            n = int(s.number(f"ci_perf_wrong{_sel(tags, reason=code)}", "count", 0.0))
            if n:
                counts[text] = counts.get(text, 0) + n
    other = failures - sum(counts.values())
    if other > 0:  # a status the script does not count one by one
        counts["other HTTP status"] = other
    return tuple(ErrorCount(e, n) for e, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def endpoint(
    s: Summary,
    tags: Tags,
    all_endpoints: list[Tags],
    hists: StreamHistograms | None = None,
    shard: tuple[int, int] | None = None,
    texts: dict[tuple[str, str], Counter[str]] | None = None,
) -> EndpointStats:
    texts = texts or {}
    sel = _sel(tags)
    duration = f"{s.latency}{sel}"
    name = tags.get("name")
    failures = failed(s, sel)
    right = s.number(duration, "count", 0.0) if s.judged else 1.0
    method = tags.get("method") or (METHODS.get(name, "") if name else "")
    hist = None
    if hists is not None:
        hist = hists.endpoint(method, name) if name else LatencyHistogram.from_mapping(hists.total)
    return EndpointStats(
        method=method,
        name=name or AGGREGATE,
        requests=int(s.number(f"http_reqs{sel}", "count")),
        failures=failures,
        rps=s.number(f"http_reqs{sel}", "rate"),
        # No right answer at all: no latency (zeros), never a figure made of failures.
        **{field: s.number(duration, stat) if right else 0.0 for field, stat in STATS.items()},
        histogram=hist,  # from the streamed per-request output (--histogram / --shard), for exact merges
        windows=windows(s, tags, hists, shard),
        errors=errors(s, [tags] if tags else all_endpoints, failures, texts) if s.block is not None else (),
        all_p95_ms=s.number(f"http_req_duration{sel}", "p(95)") if s.judged else None,
    )


def endpoint_tags(s: Summary) -> list[Tags]:
    """Our script lists its (method, name) pairs; a user's script: its {name:X} sub-metrics."""
    if s.block is not None:
        found = [{"name": str(n), "method": str(m)} for m, n in s.block.get("endpoints") or ()]
    else:
        prefix = "http_reqs{name:"
        found = [
            {"name": k[len(prefix) : -1]}
            for k in s.metrics
            if k.startswith(prefix) and k.endswith("}") and "," not in k
        ]
    return [t for t in found if s.number(f"http_reqs{_sel(t)}", "count", 0.0) > 0]


@register("k6")
def parse_k6(artifacts: RunArtifacts, meta: RunMeta) -> RunResult:
    path = artifacts.files.get("k6_summary") or artifacts.files.get("k6_summary_export")
    if path is None:
        raise ResultError("k6 run left no summary file (neither k6_summary nor k6_summary_export)")
    s = Summary(path)
    tags = endpoint_tags(s)
    ndjson = artifacts.files.get("k6_ndjson")
    hists = read_histograms(ndjson, s.latency) if ndjson else None
    shard = parse_shard(meta.labels["shard"]) if meta.labels.get("shard") else None
    texts = failure_texts(artifacts.files.get("stderr")) if s.block is not None else {}
    eps = sorted((endpoint(s, t, tags, hists, shard, texts) for t in tags), key=lambda e: (e.name, e.method))
    if s.block is not None and s.block.get("window_s"):
        meta = replace(meta, window_s=float(s.block["window_s"]))
    return RunResult(
        meta=meta,
        total=endpoint(s, {}, tags, hists, shard, texts),
        endpoints=tuple(eps),
        decisions=_decisions(s),
        waiting=_waiting(s),
    )


def _waiting(s: Summary) -> Waiting | None:
    """k6's own http_req_waiting (TTFB) over every request; None when the summary has none."""
    if "http_req_waiting" not in s.metrics:
        return None
    return Waiting(**{field: s.number("http_req_waiting", STATS[field]) for field in Waiting.__dataclass_fields__})


def _decisions(s: Summary) -> dict[str, int] | None:
    if not s.judged:
        return None
    found = {
        str(d): int(s.number(f"ci_perf_decisions{{decision:{d}}}", "count", 0.0))
        for d in (s.block or {}).get("decisions") or ()
    }
    return {d: n for d, n in sorted(found.items()) if n} or None
