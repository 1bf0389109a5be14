"""ci_perf.merge on synthetic shards: splitting one sample set into shards and merging them back must
give the statistics of the whole (exact, from histograms), and what cannot be merged is refused."""

from __future__ import annotations

import json
import random
from dataclasses import replace
from pathlib import Path

import pytest

from ci_perf.cli import main
from ci_perf.errors import ConfigError
from ci_perf.merge import merge_endpoints, merge_results, merge_window, unlike_parts
from ci_perf.model import (
    AGGREGATE,
    Availability,
    EndpointStats,
    ErrorCount,
    Evaluation,
    LatencyHistogram,
    Outcome,
    RunMeta,
    RunResult,
    Window,
)

WINDOW_S = 2.0
Sample = tuple[float, float, bool]  # (time s, latency ms, failed)


def samples(rng: random.Random, n: int, scale: float) -> list[Sample]:
    return [(rng.uniform(0, 8), rng.lognormvariate(0, 0.6) * scale, rng.random() < 0.05) for _ in range(n)]


def stats(method: str, name: str, data: list[Sample], duration: float = 8.0) -> EndpointStats:
    """What a parser with histograms would report for these samples."""
    lat = [ms for _, ms, _ in data]
    hist = LatencyHistogram.from_values(lat)
    wins = []
    for i in range(int(duration / WINDOW_S)):
        part = [s for s in data if i * WINDOW_S <= s[0] < (i + 1) * WINDOW_S]
        h = LatencyHistogram.from_values(ms for _, ms, _ in part)
        wins.append(
            Window(
                i * WINDOW_S,
                WINDOW_S,
                len(part),
                sum(f for *_, f in part),
                2,
                h.percentile(0.5) if part else None,
                h.percentile(0.95) if part else None,
                h.percentile(0.99) if part else None,
                h if part else None,
            )
        )
    fails = sum(f for *_, f in data)
    return EndpointStats(
        method=method,
        name=name,
        requests=len(data),
        failures=fails,
        rps=len(data) / duration,
        min_ms=min(lat),
        avg_ms=sum(lat) / len(lat),
        max_ms=max(lat),
        p50_ms=hist.percentile(0.5),
        p90_ms=hist.percentile(0.9),
        p95_ms=hist.percentile(0.95),
        p99_ms=hist.percentile(0.99),
        histogram=hist,
        windows=tuple(wins),
        errors=(ErrorCount("HTTP 500", fails),) if fails else (),
    )


def result(
    data: dict[tuple[str, str], list[Sample]], shard: str = "", scenario: str = "smoke_test", tool: str = "k6"
) -> RunResult:
    eps = tuple(stats(m, n, d) for (m, n), d in sorted(data.items(), key=lambda kv: (kv[0][1], kv[0][0])))
    every = [s for d in data.values() for s in d]
    labels = {"shard": shard} if shard else {}
    meta = RunMeta(
        scenario,
        tool,
        "1.1.0",
        4,
        4.0,
        8.0,
        "http://127.0.0.1:1",
        "2026-11-28T13:00:00Z",  # type: ignore[arg-type]
        WINDOW_S,
        labels=labels,
    )
    return RunResult(meta, stats("", AGGREGATE, every), eps, Availability(10, 10))


def full_and_shards(n_shards: int = 2) -> tuple[RunResult, list[RunResult]]:
    rng = random.Random(7)
    data = {("GET", "/health/"): samples(rng, 900, 2.0), ("POST", "/api/v1/servers/"): samples(rng, 400, 30.0)}
    shards: list[dict[tuple[str, str], list[Sample]]] = [{} for _ in range(n_shards)]
    for key, ss in data.items():
        for i, s in enumerate(ss):
            shards[i % n_shards].setdefault(key, []).append(s)
    return result(data), [result(d, f"{i + 1}/{n_shards}") for i, d in enumerate(shards)]


def named(results: list[RunResult]) -> list[tuple[str, RunResult]]:
    return [(f"shard{i + 1}.json", r) for i, r in enumerate(results)]


def test_merged_shards_equal_the_whole() -> None:
    whole, shards = full_and_shards(3)
    merged = merge_results(named(shards))
    for got, want in zip((merged.total, *merged.endpoints), (whole.total, *whole.endpoints), strict=True):
        assert (got.method, got.name, got.requests, got.failures) == (
            want.method,
            want.name,
            want.requests,
            want.failures,
        )
        assert got.histogram == want.histogram
        assert (got.p50_ms, got.p90_ms, got.p95_ms, got.p99_ms) == (want.p50_ms, want.p90_ms, want.p95_ms, want.p99_ms)
        assert (got.min_ms, got.max_ms) == (want.min_ms, want.max_ms)
        assert got.avg_ms == pytest.approx(want.avg_ms, abs=1e-3)
        assert got.rps == pytest.approx(want.rps, abs=1e-3)
        assert got.errors == want.errors
        for gw, ww in zip(got.windows, want.windows, strict=True):
            assert (gw.requests, gw.failures, gw.p95_ms, gw.users) == (ww.requests, ww.failures, ww.p95_ms, 6)
    assert merged.availability == Availability(30, 30)
    assert merged.meta.users == 4  # each shard records the whole plan's users
    assert merged.meta.labels == {"shards": "1/3,2/3,3/3", "merged": "3"}


def test_merged_result_round_trips_through_json() -> None:
    _, shards = full_and_shards()
    merged = merge_results(named(shards))
    assert RunResult.from_dict(json.loads(json.dumps(merged.to_dict()))) == merged


def test_windows_without_histograms_get_no_percentiles() -> None:
    a = Window(0, 2, 10, 1, 2, 5.0, 9.0, 12.0)
    b = Window(0, 2, 5, 0, 1, 7.0, 8.0, 9.0)
    w = merge_window([a, b])
    assert (w.requests, w.failures, w.users) == (15, 1, 3)
    assert w.p50_ms is None and w.p95_ms is None and w.histogram is None


def test_endpoint_without_requests_in_one_part() -> None:
    _, shards = full_and_shards()
    empty = replace(
        shards[1].total, requests=0, failures=0, rps=0.0, min_ms=0.0, max_ms=0.0, histogram=None, windows=(), errors=()
    )
    merged = merge_endpoints([shards[0].total, empty])
    assert merged.requests == shards[0].total.requests and merged.min_ms == shards[0].total.min_ms
    assert merged.p95_ms == shards[0].total.p95_ms


def test_separate_runs_add_their_users_and_workers() -> None:
    _, (a, b) = full_and_shards()
    a = replace(a, meta=replace(a.meta, labels={"workers": "2", "workers_lost": "1", "workers_lost_ids": "x"}))
    b = replace(b, meta=replace(b.meta, labels={"workers": "3"}))
    meta = merge_results(named([a, b])).meta
    assert meta.users == 8 and meta.labels == {"workers": "5", "workers_lost": "1", "merged": "2"}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"scenario": "spike_test"}, "its scenario is 'spike_test'"),
        ({"tool": "locust"}, "its tool is 'locust'"),
        ({"window_s": 5.0}, "windows last 5s"),
        ({"labels": {"shard": "1/2"}}, "shard 1/2 is also shard1.json"),
        ({"labels": {"shard": "1/3"}}, "different splits"),
    ],
)
def test_refuses_what_does_not_belong_together(change: dict[str, object], message: str) -> None:
    _, (a, b) = full_and_shards()
    b = replace(b, meta=replace(b.meta, **change))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=message):
        merge_results(named([a, b]))


def test_refuses_results_without_histograms_naming_the_file() -> None:
    _, (a, b) = full_and_shards()
    b = replace(b, endpoints=(replace(b.endpoints[0], histogram=None), *b.endpoints[1:]))
    message = r"cannot merge shard2.json: it has no latency histogram \(POST /api/v1/servers/\)"
    with pytest.raises(ConfigError, match=message):
        merge_results(named([a, b]))
    with pytest.raises(ConfigError, match="nothing to merge"):
        merge_results([])


def test_missing_shards_are_labelled() -> None:
    _, shards = full_and_shards(3)
    assert merge_results(named(shards[:2])).meta.labels["shards_missing"] == "3/3"


def test_cli_merge_writes_every_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, shards = full_and_shards()
    paths = []
    for i, r in enumerate(shards):
        path = tmp_path / f"shard{i + 1}" / "results.json"
        path.parent.mkdir()
        path.write_text(json.dumps(Outcome(r, Evaluation()).to_dict()))
        paths.append(str(path))
    code = main(["merge", *paths, "--report-dir", str(tmp_path / "merged")])
    assert code in (0, 1)
    out = json.loads((tmp_path / "merged" / "results.json").read_text())
    assert out["result"]["total"]["requests"] == 1300 and out["evaluation"]["checks"]
    assert {"junit.xml", "report.html", "summary.md"} <= {p.name for p in (tmp_path / "merged").iterdir()}
    bad = tmp_path / "other.json"
    other = replace(shards[1], meta=replace(shards[1].meta, scenario="spike_test"))
    bad.write_text(json.dumps(Outcome(other, Evaluation()).to_dict()))
    assert main(["merge", paths[0], str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "other.json" in err[0] and "spike_test" in err[0]


def test_unlike_parts_are_merged_with_a_warning(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, (a, b) = full_and_shards()
    a, b = (replace(r, meta=replace(r.meta, labels={})) for r in (a, b))  # separate runs, not shards
    assert unlike_parts(named([a, b])) == ""
    near = replace(b, meta=replace(b.meta, duration_s=9.6))  # 8 s and 9.6 s: within 20 %
    assert unlike_parts(named([a, near])) == ""
    b = replace(b, meta=replace(b.meta, users=10, duration_s=12.0))
    assert unlike_parts(named([a, b])) == "users 4 (shard1.json), 10 (shard2.json); durations 8s to 12s"
    paths = []
    for i, r in enumerate((a, b)):
        paths.append(tmp_path / f"part{i}.json")
        paths[-1].write_text(json.dumps(Outcome(r, Evaluation()).to_dict()))
    assert main(["merge", *map(str, paths), "--report-dir", str(tmp_path / "merged")]) in (0, 1)
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"ci-perf: warning: the merged parts differ (users 4 ({paths[0]}), 10 ({paths[1]}); durations 8s to "
        "12s); check they belong to one run"
    ]
    assert json.loads((tmp_path / "merged" / "results.json").read_text())["result"]["meta"]["users"] == 14


def test_a_shard_neither_gates_nor_publishes(monkeypatch: pytest.MonkeyPatch) -> None:
    from ci_perf import commands, pipeline
    from ci_perf.config import Settings

    seen: list[Settings] = []
    monkeypatch.setattr(pipeline, "run", lambda s: seen.append(s) or 1)
    assert commands.run(Settings(tool="k6", shard="1/2", publish="github", baseline="comment")) == 0
    assert seen[0].publish == "files" and seen[0].baseline == ""
    monkeypatch.setattr(pipeline, "run", lambda s: 3)
    assert commands.run(Settings(tool="k6", shard="1/2")) == 3  # an infrastructure error still counts
    monkeypatch.setattr(pipeline, "run", lambda s: 1)
    assert commands.run(Settings(tool="k6")) == 1


def test_refuses_the_same_part_twice() -> None:
    _, (a, _b) = full_and_shards()
    with pytest.raises(ConfigError, match=r"cannot merge copy\.json: it is the same result as shard1\.json"):
        merge_results([("shard1.json", a), ("copy.json", a)])
    with pytest.raises(ConfigError, match=r"same result as shard1\.json"):
        merge_results([("shard1.json", a), ("shard1.json", replace(a, availability=None))])


def test_policy_decisions_are_summed() -> None:
    _, (a, b) = full_and_shards()
    a, b = replace(a, decisions={"allow": 3, "deny": 1}), replace(b, decisions={"deny": 2})
    assert merge_results(named([a, b])).decisions == {"allow": 3, "deny": 3}
    assert merge_results(named(full_and_shards()[1])).decisions is None
