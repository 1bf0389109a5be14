"""Combine the results of shards (k6 `--shard i/N`) or of separate workers into one RunResult.

Pure functions, exact where the data allows: counts, failures, rps and errors add; min and max are
exact; averages are weighted by requests; percentiles come from merged latency histograms (never
from averaging percentiles). Windows merge by index; a merged window's percentiles are None unless
every part recorded that window's histogram.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace

from ci_perf.config import parse_shard
from ci_perf.errors import ConfigError
from ci_perf.model import Availability, EndpointStats, ErrorCount, LatencyHistogram, RunMeta, RunResult, Window

Named = tuple[str, RunResult]  # (where it came from, for messages; the result)
PERCENTILES = {"p50_ms": 0.5, "p90_ms": 0.9, "p95_ms": 0.95, "p99_ms": 0.99}


def merge_results(parts: Sequence[Named]) -> RunResult:
    """One result from several runs of the same scenario and tool; ConfigError (one line) otherwise."""
    if not parts:
        raise ConfigError("nothing to merge: pass two or more results.json files")
    check_compatible(parts)
    results = [r for _, r in parts]
    keys = sorted({(e.method, e.name) for r in results for e in r.endpoints}, key=lambda k: (k[1], k[0]))
    endpoints = tuple(
        merge_endpoints([e for r in results for e in r.endpoints if (e.method, e.name) == key]) for key in keys
    )
    return RunResult(
        meta=merge_meta([r.meta for r in results]),
        total=merge_endpoints([r.total for r in results]),
        endpoints=endpoints,
        availability=merge_availability([r.availability for r in results]),
        decisions=merge_decisions([r.decisions for r in results]),
    )


def merge_decisions(parts: Sequence[dict[str, int] | None]) -> dict[str, int] | None:
    """Policy decisions summed over the parts (None when no part counted them)."""
    counted = [d for d in parts if d is not None]
    if not counted:
        return None
    out: dict[str, int] = {}
    for d in counted:
        for value, n in d.items():
            out[value] = out.get(value, 0) + n
    return out


def check_compatible(parts: Sequence[Named]) -> None:
    for i, (name, result) in enumerate(parts):  # the same part twice would double its requests
        twin = next((other for other, r in parts[:i] if other == name or r == result), None)
        if twin is not None:
            raise ConfigError(f"cannot merge {name}: it is the same result as {twin}; pass each part once")
    first_name, first = parts[0]
    for name, result in parts[1:]:
        for what in ("scenario", "tool"):
            mine, theirs = getattr(result.meta, what), getattr(first.meta, what)
            if mine != theirs:
                raise ConfigError(f"cannot merge {name}: its {what} is {mine!r}, {first_name}'s is {theirs!r}")
        if result.meta.window_s != first.meta.window_s:
            raise ConfigError(
                f"cannot merge {name}: its windows last {result.meta.window_s:g}s, "
                f"{first_name}'s {first.meta.window_s:g}s (run every part with the same --window)"
            )
    for name, result in parts:
        missing = [e.key for e in (result.total, *result.endpoints) if e.requests and e.histogram is None]
        if missing:
            raise ConfigError(
                f"cannot merge {name}: it has no latency histogram ({missing[0]}), so percentiles "
                "cannot be combined exactly; re-run k6 with --histogram or --shard i/N"
            )
    check_shards(parts)


DURATION_SPREAD = 0.2  # parts whose durations differ by more than this fraction get a warning


def unlike_parts(parts: Sequence[Named]) -> str:
    """Why the parts look like unlike runs ("" when they do not): different user counts (shards of one
    split each record the whole plan's users, separate runs are meant as equal shares of the load) or
    durations more than DURATION_SPREAD apart. A warning, not a refusal: uneven workers can be intended."""
    reasons = []
    users: dict[int, str] = {}  # each count with the first part that has it
    for name, r in parts:
        users.setdefault(r.meta.users, name)
    if len(users) > 1:
        reasons.append("users " + ", ".join(f"{n} ({name})" for n, name in sorted(users.items())))
    durations = [r.meta.duration_s for _, r in parts]
    if max(durations) > min(durations) * (1 + DURATION_SPREAD):
        reasons.append(f"durations {min(durations):g}s to {max(durations):g}s")
    return "; ".join(reasons)


def check_shards(parts: Sequence[Named]) -> None:
    """Shards must come from one split (the same N) and each index once."""
    shards = [(name, parse_shard(r.meta.labels["shard"])) for name, r in parts if r.meta.labels.get("shard")]
    totals = sorted({total for _, (_, total) in shards})
    if len(totals) > 1:
        raise ConfigError(f"cannot merge shards of different splits ({', '.join(f'i/{t}' for t in totals)})")
    seen: dict[int, str] = {}
    for name, (index, total) in shards:
        if index in seen:
            raise ConfigError(f"cannot merge {name}: shard {index}/{total} is also {seen[index]}")
        seen[index] = name


def merge_meta(metas: Sequence[RunMeta]) -> RunMeta:
    """Shards of one split each record the whole plan's users; separate runs (workers) add theirs."""
    first = metas[0]
    shards = sorted(parse_shard(m.labels["shard"]) for m in metas if m.labels.get("shard"))
    split = len(shards) == len(metas)
    labels = merge_labels(metas)
    if split:
        total = shards[0][1]
        labels["shards"] = ",".join(f"{i}/{n}" for i, n in shards)
        missing = sorted(set(range(1, total + 1)) - {i for i, _ in shards})
        if missing:
            labels["shards_missing"] = ",".join(f"{i}/{total}" for i in missing)
    return replace(
        first,
        tool_version=",".join(sorted({m.tool_version for m in metas})),
        users=first.users if split else sum(m.users for m in metas),
        spawn_rate=first.spawn_rate if split else sum(m.spawn_rate for m in metas),
        duration_s=max(m.duration_s for m in metas),
        host=",".join(dict.fromkeys(m.host for m in metas)),
        started_at=min((m.started_at for m in metas if m.started_at), default=""),
        labels=labels,
    )


def merge_labels(metas: Sequence[RunMeta]) -> dict[str, str]:
    """Labels all parts agree on stay; worker counts add; a part's own shard label does not carry over."""
    labels = {k: v for k, v in metas[0].labels.items() if all(m.labels.get(k) == v for m in metas)}
    labels.pop("shard", None)
    labels.pop("workers_lost_ids", None)
    for key in ("workers", "workers_lost"):
        values = [int(m.labels[key]) for m in metas if m.labels.get(key, "").isdigit()]
        if values:
            labels[key] = str(sum(values))
    labels["merged"] = str(len(metas))
    return labels


def merge_histograms(hists: Iterable[LatencyHistogram | None]) -> LatencyHistogram | None:
    merged: LatencyHistogram | None = None
    for h in hists:
        if h is None:
            return None
        merged = h if merged is None else merged.merge(h)
    return merged


def merge_endpoints(parts: Sequence[EndpointStats]) -> EndpointStats:
    """Parts of one endpoint (or of the aggregate) from several runs."""
    busy = [p for p in parts if p.requests]
    requests = sum(p.requests for p in parts)
    hist = merge_histograms(p.histogram for p in busy) or LatencyHistogram()
    return EndpointStats(
        method=parts[0].method,
        name=parts[0].name,
        requests=requests,
        failures=sum(p.failures for p in parts),
        rps=round(sum(p.rps for p in parts), 3),
        min_ms=min((p.min_ms for p in busy), default=0.0),
        avg_ms=round(sum(p.avg_ms * p.requests for p in busy) / requests, 3) if requests else 0.0,
        max_ms=max((p.max_ms for p in busy), default=0.0),
        **{f: hist.percentile(q) if hist.total else 0.0 for f, q in PERCENTILES.items()},
        histogram=hist,
        windows=merge_windows([p.windows for p in parts]),
        errors=merge_errors(e for p in parts for e in p.errors),
    )


def merge_windows(series: Sequence[Sequence[Window]]) -> tuple[Window, ...]:
    """Window i of every part into one; a part without window i counts as zero requests there."""
    count = max((len(s) for s in series), default=0)
    return tuple(merge_window([s[i] for s in series if i < len(s)]) for i in range(count))


def merge_window(parts: Sequence[Window]) -> Window:
    busy = [w for w in parts if w.requests]
    merged = merge_histograms(w.histogram for w in busy) if busy else None
    hist = merged if merged is not None and merged.total > 0 else None
    return Window(
        start_s=parts[0].start_s,
        length_s=max(w.length_s for w in parts),
        requests=sum(w.requests for w in parts),
        failures=sum(w.failures for w in parts),
        users=sum(w.users for w in parts),
        p50_ms=hist.percentile(0.5) if hist else None,
        p95_ms=hist.percentile(0.95) if hist else None,
        p99_ms=hist.percentile(0.99) if hist else None,
        histogram=hist,
        limited=sum(w.limited or 0 for w in parts) if any(w.limited is not None for w in parts) else None,
    )


def merge_errors(errors: Iterable[ErrorCount]) -> tuple[ErrorCount, ...]:
    acc: dict[str, int] = {}
    for e in errors:
        acc[e.error] = acc.get(e.error, 0) + e.occurrences
    return tuple(ErrorCount(e, n) for e, n in sorted(acc.items(), key=lambda kv: (-kv[1], kv[0])))


def merge_availability(parts: Sequence[Availability | None]) -> Availability | None:
    present = [a for a in parts if a is not None]
    if not present:
        return None
    return Availability(probes=sum(a.probes for a in present), ok=sum(a.ok for a in present))
