"""Locust's files -> RunResult.

Request and failure counts come from `--json-file` (Locust's final stats; its `_stats.csv` can lag them),
and so does the all-requests p95 (`all_p95_ms`). The latency figures are over successful requests only
(contract C1): histograms, sums, min and max that our plugin (locust_plugin.py) records per window for
the requests Locust did not count as failed, in Locust's own buckets. Percentiles follow Locust's rule
on those buckets, so they are bucketed like Locust's (whole ms below 100 ms, then 10 ms, then 100 ms)
and are clamped to the measured maximum, which rounding up to a bucket could otherwise exceed. Windows,
users per window, the measured run time, error messages and policy decisions come from the same file.
"""

from __future__ import annotations

import ast
import contextlib
import math
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from ci_perf.errors import ResultError
from ci_perf.jsonread import check_fields, check_value, is_count, load_json, shown
from ci_perf.model import AGGREGATE, EndpointStats, ErrorCount, LatencyHistogram, RunMeta, RunResult, Window
from ci_perf.parsers import MAX_WINDOW_S, MAX_WINDOWS, register
from ci_perf.runners.base import RunArtifacts

# What each object must hold (jsonread.check_fields; "?": may be missing or null).
ENTRY_FIELDS = {
    "name": "str",
    "method": "str",
    "num_requests": "count",
    "num_none_requests": "count",
    "num_failures": "count",
    "total_response_time": "number",
    "max_response_time": "number",
    "min_response_time": "number?",
    "start_time": "number?",
    "last_request_timestamp": "number?",
    "response_times": "object",
}
WINDOWS_DOC_FIELDS = {
    "window_s": "number",
    "windows": "list",
    "errors": "list",
    "users": "list",
    "format": "count?",
    "started_at": "number?",
    "stopped_at": "number?",
    "workers": "object?",
}
WINDOW_FIELDS = {
    "index": "count",
    "method": "str",
    "name": "str",
    "requests": "count",
    "failures": "count",
    "response_times": "list",
    "limited": "count?",
    "ok_sum_ms": "number?",
    "ok_min_ms": "number?",
    "ok_max_ms": "number?",
    "decisions": "object?",
}
ERROR_FIELDS = {"method": "str", "name": "str", "error": "str", "occurrences": "count"}
WORKERS_FIELDS = {"seen": "count?", "expected": "count?", "lost": "list?"}
Key = tuple[str, str]  # (method, name)


def read_stats(path: Path) -> list[dict[str, Any]]:
    """Locust's --json-file: a list of per-endpoint stats entries (no aggregate row)."""
    data = load_json(path)
    if not isinstance(data, list):
        raise ResultError(f"{path}: expected a list of Locust stats entries, found {shown(data)}")
    for i, entry in enumerate(data):
        check_fields(f"{path}: entry {i}", entry, ENTRY_FIELDS)
        _histogram(path, entry["response_times"], f"entry {i} response_times")
    return data


def read_windows(path: Path) -> dict[str, Any]:
    """Our plugin's windows file, every field checked before anything reads it."""
    data: dict[str, Any] = check_fields(f"{path}: the document", load_json(path), WINDOWS_DOC_FIELDS)
    if not 0 < data["window_s"] <= MAX_WINDOW_S:
        raise ResultError(f"{path}: window_s is {data['window_s']}, expected a length from 0 to a day")
    for i, row in enumerate(data["windows"]):
        check_fields(f"{path}: window {i}", row, WINDOW_FIELDS)
        _histogram(path, row["response_times"], f"window {i} response_times")
        for decision, n in (row.get("decisions") or {}).items():
            check_value(f"{path}: window {i} decisions.{decision}", n, "count")
    for i, row in enumerate(data["errors"]):
        check_fields(f"{path}: error {i}", row, ERROR_FIELDS)
    for i, row in enumerate(data["users"]):
        if not (isinstance(row, list) and len(row) == 2 and all(is_count(v) for v in row)):
            raise ResultError(f"{path}: users[{i}] is {shown(row)}, expected [window index, users]")
    if data.get("workers") is not None:
        check_fields(f"{path}: workers", data["workers"], WORKERS_FIELDS)
    return data


def _histogram(path: Path, counts: Mapping[Any, Any] | Iterable[Any], what: str = "") -> LatencyHistogram:
    """Locust's {ms: count} or our [[ms, count], ...]: finite values, whole counts."""
    pairs = counts.items() if isinstance(counts, Mapping) else counts
    out: dict[float, int] = {}
    try:
        for k, v in pairs:
            value = float(k)
            if not math.isfinite(value) or not is_count(v):
                raise ValueError(f"{k!r}: {v!r}")
            out[value] = out.get(value, 0) + v
    except (TypeError, ValueError) as exc:
        raise ResultError(f"{path}: {what or 'a response-time histogram'} is malformed ({exc})") from None
    return LatencyHistogram.from_mapping(out)


def measured_duration(entries: list[dict[str, Any]], doc: dict[str, Any] | None) -> float:
    """From test start to test stop as the plugin saw them; else the span of Locust's own timestamps."""
    if doc and doc.get("started_at") and doc.get("stopped_at"):
        return max(float(doc["stopped_at"]) - float(doc["started_at"]), 0.0)
    starts = [e["start_time"] for e in entries if e.get("start_time")]
    ends = [e["last_request_timestamp"] for e in entries if e.get("last_request_timestamp")]
    return max(max(ends) - min(starts), 0.0) if starts and ends else 0.0


def clamped(hist: LatencyHistogram, q: float, max_ms: float) -> float:
    """Locust's percentile of its buckets, never above the maximum it was rounded up from."""
    return min(hist.percentile(q), max_ms) if hist.total else 0.0


def _percentiles(hist: LatencyHistogram, max_ms: float) -> dict[str, float]:
    return {f"p{int(q * 100)}_ms": clamped(hist, q, max_ms) for q in (0.5, 0.9, 0.95, 0.99)}


class Successes:
    """Latency of the successful requests of one endpoint (or all), summed over the plugin's windows."""

    def __init__(self) -> None:
        self.hist = LatencyHistogram()
        self.sum_ms = 0.0
        self.min_ms: float | None = None
        self.max_ms: float | None = None

    def add(self, path: Path, row: Mapping[str, Any]) -> None:
        self.hist = self.hist.merge(_histogram(path, row["response_times"]))
        self.sum_ms += float(row.get("ok_sum_ms") or 0.0)
        low, high = row.get("ok_min_ms"), row.get("ok_max_ms")
        if low is not None:
            self.min_ms = float(low) if self.min_ms is None else min(self.min_ms, float(low))
        if high is not None:
            self.max_ms = float(high) if self.max_ms is None else max(self.max_ms, float(high))

    def latency(self) -> dict[str, Any]:
        n, high = self.hist.total, round(self.max_ms or 0.0, 3)
        return {
            "min_ms": round(self.min_ms or 0.0, 3),
            "avg_ms": round(self.sum_ms / n, 3) if n else 0.0,
            "max_ms": high,
            **_percentiles(self.hist, high),
            "histogram": self.hist,
        }


def _stats(
    method: str,
    name: str,
    entries: list[dict[str, Any]],
    ok: Successes | None,
    all_hist: LatencyHistogram,
    duration: float,
    windows: tuple[Window, ...],
    errors: tuple[ErrorCount, ...],
) -> EndpointStats:
    """Counts combined as Locust's StatsEntry.extend does; latency over successes when the plugin recorded
    them (`ok`), else Locust's own over every request (a windows file of an older ci-perf)."""
    requests = sum(e["num_requests"] for e in entries)
    timed = requests - sum(e["num_none_requests"] for e in entries)
    all_max = round(max((e["max_response_time"] for e in entries), default=0), 3)
    if ok is not None:
        latency = ok.latency()
    else:
        mins = [e["min_response_time"] for e in entries if e.get("min_response_time") is not None]
        latency = {
            "min_ms": round(min(mins), 3) if mins else 0.0,
            "max_ms": all_max,
            "histogram": all_hist,
            "avg_ms": round(sum(e["total_response_time"] for e in entries) / timed, 3) if timed else 0.0,
            **_percentiles(all_hist, all_max),
        }
    return EndpointStats(
        method=method,
        name=name,
        requests=requests,
        failures=sum(e["num_failures"] for e in entries),
        rps=round(requests / duration, 3) if duration > 0 else 0.0,
        **latency,
        windows=windows,
        errors=errors,
        all_p95_ms=clamped(all_hist, 0.95, all_max) if all_hist.total else None,
    )


WRAPPED = re.compile(r"^CatchResponseError\((?P<text>'.*'|\".*\")\)$", re.S)


def error_text(error: str) -> str:
    """Locust keeps a failure as the repr of its exception: our failure texts (contract C2) are the
    strings given to resp.failure, so they come back unwrapped."""
    m = WRAPPED.match(error)
    if m:
        with contextlib.suppress(ValueError, SyntaxError):
            return str(ast.literal_eval(m["text"]))
    return error


def _errors(rows: Iterable[tuple[str, int]]) -> tuple[ErrorCount, ...]:
    acc: dict[str, int] = defaultdict(int)
    for error, n in rows:
        acc[error_text(error)] += n
    return tuple(ErrorCount(e, n) for e, n in sorted(acc.items(), key=lambda x: (-x[1], x[0])))


def _window_length(index: int, window_s: float, duration: float) -> float:
    """Windows are full length but the last, which ends when the test stopped."""
    start = index * window_s
    return round(min(window_s, duration - start), 3) if duration > start else window_s


def successes(path: Path, doc: dict[str, Any]) -> dict[Key | None, Successes] | None:
    """Success-only latency per endpoint and (key None) for all requests; None for an older file."""
    if int(doc.get("format") or 1) < 2:
        return None
    out: dict[Key | None, Successes] = {None: Successes()}
    for row in doc["windows"]:
        for key in ((row["method"], row["name"]), None):
            out.setdefault(key, Successes()).add(path, row)
    return out


def decisions(doc: dict[str, Any] | None) -> dict[str, int] | None:
    acc: dict[str, int] = defaultdict(int)
    for row in (doc or {}).get("windows", ()):
        for decision, n in (row.get("decisions") or {}).items():
            acc[str(decision)] += int(n)
    return dict(sorted(acc.items())) or None


def build_windows(path: Path, doc: dict[str, Any], duration: float) -> dict[Key | None, tuple[Window, ...]]:
    """Windows per endpoint and (key None) for all requests, every index filled so gaps count as zero."""
    w = float(doc["window_s"])
    users = {int(i): int(n) for i, n in doc["users"]}
    cells: dict[Key | None, dict[int, list[Any]]] = defaultdict(dict)
    for row in doc["windows"]:
        for key in ((row["method"], row["name"]), None):
            cell = cells[key].setdefault(row["index"], [0, 0, Successes(), None])
            cell[0] += row["requests"]
            cell[1] += row["failures"]
            cell[2].add(path, row)
            if row.get("limited") is not None:  # files of older versions do not count 429s
                cell[3] = (cell[3] or 0) + int(row["limited"])
    # A trailing sliver of the run (< 5% of a window, after the last request) is no window of its own.
    span = duration / w - 0.05
    count = max([math.ceil(min(span, MAX_WINDOWS + 1)), *(i + 1 for c in cells.values() for i in c)])
    if count > MAX_WINDOWS:
        raise ResultError(f"{path}: more than {MAX_WINDOWS} windows of {w:g}s (window_s or a window index is wrong)")
    out: dict[Key | None, tuple[Window, ...]] = {}
    for key, by_index in cells.items():
        out[key] = tuple(_window(i, w, duration, users.get(i, 0), by_index.get(i)) for i in range(count))
    if None not in out:
        out[None] = tuple(_window(i, w, duration, users.get(i, 0), None) for i in range(count))
    return out


def _window(index: int, w: float, duration: float, users: int, cell: list[Any] | None) -> Window:
    requests, failures, ok, limited = cell if cell else (0, 0, Successes(), None)
    hist, high = ok.hist, round(ok.max_ms, 3) if ok.max_ms is not None else math.inf
    timed = hist.total > 0
    return Window(
        start_s=round(index * w, 3),
        length_s=_window_length(index, w, duration),
        requests=requests,
        failures=failures,
        users=users,
        limited=limited,
        p50_ms=clamped(hist, 0.5, high) if timed else None,
        p95_ms=clamped(hist, 0.95, high) if timed else None,
        p99_ms=clamped(hist, 0.99, high) if timed else None,
    )


def worker_labels(workers: Mapping[str, Any]) -> dict[str, str]:
    """A distributed run's workers as RunMeta labels; `workers_lost` only when some were."""
    labels = {"workers": str(workers.get("seen") or workers.get("expected") or 0)}
    lost = [str(w) for w in workers.get("lost") or ()]
    if lost:
        labels["workers_lost"] = str(len(lost))
        labels["workers_lost_ids"] = ",".join(lost)
    return labels


@register("locust")
def parse_locust(artifacts: RunArtifacts, meta: RunMeta) -> RunResult:
    if "locust_json" not in artifacts.files:
        raise ResultError("the Locust run left no --json-file output (artifact 'locust_json' missing)")
    stats_path = artifacts.files["locust_json"]
    entries = read_stats(stats_path)
    win_path = artifacts.files.get("windows")
    doc = read_windows(win_path) if win_path else None
    duration = measured_duration(entries, doc)
    windows = build_windows(win_path, doc, duration) if win_path and doc else {}
    errors: dict[Key, list[tuple[str, int]]] = defaultdict(list)
    for e in doc["errors"] if doc else ():
        errors[(str(e["method"]), str(e["name"]))].append((str(e["error"]), int(e["occurrences"])))

    ok = successes(win_path, doc) if win_path and doc else None
    endpoints = []
    total_hist = LatencyHistogram()
    for e in sorted(entries, key=lambda e: (e["name"], e["method"])):
        key = (e["method"], e["name"])
        hist = _histogram(stats_path, e["response_times"])
        total_hist = total_hist.merge(hist)
        mine = (ok.get(key) or Successes()) if ok is not None else None
        endpoints.append(_stats(*key, [e], mine, hist, duration, windows.get(key, ()), _errors(errors[key])))
    all_errors = _errors(pair for rows in errors.values() for pair in rows)
    total = _stats(
        "",
        AGGREGATE,
        entries,
        ok[None] if ok is not None else None,
        total_hist,
        duration,
        windows.get(None, ()),
        all_errors,
    )
    if doc and not meta.window_s:
        meta = replace(meta, window_s=float(doc["window_s"]))
    if doc and isinstance(doc.get("workers"), dict):
        meta = replace(meta, labels={**meta.labels, **worker_labels(doc["workers"])})
    return RunResult(meta=meta, total=total, endpoints=tuple(endpoints), decisions=decisions(doc))
