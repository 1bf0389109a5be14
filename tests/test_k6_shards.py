"""k6 shards (`--shard i/N` -> execution segments) and the streaming NDJSON histogram reader."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from ci_perf.auth import Auth
from ci_perf.config import parse_shard
from ci_perf.errors import ConfigError, ResultError
from ci_perf.model import LatencyHistogram, RunMeta, quantize_ms
from ci_perf.parsers.k6 import parse_k6, shard_users
from ci_perf.parsers.k6_stream import read_histograms
from ci_perf.runners.base import RunSpec
from ci_perf.runners.k6 import build_argv, run_k6, segment_args
from ci_perf.scenarios.catalog import get_scenario


def point(metric: str, value: float, **tags: str) -> str:
    return json.dumps(
        {"metric": metric, "type": "Point", "data": {"time": "2026-11-28T13:00:00Z", "value": value, "tags": tags}},
        separators=(",", ":"),
    )


def write_ndjson(path: Path, lines: list[str], gz: bool = True) -> Path:
    data = ("\n".join(lines) + "\n").encode()
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def test_shard_parsing_and_k6_segments() -> None:
    assert parse_shard("2/4") == (2, 4) and parse_shard(" 1 / 1 ") == (1, 1)
    for bad in ("0/2", "3/2", "1", "a/b", "1/0"):
        with pytest.raises(ConfigError, match="i/N"):
            parse_shard(bad)
    assert segment_args("1/2") == ["--execution-segment", "0:1/2", "--execution-segment-sequence", "0,1/2,1"]
    assert segment_args("2/3")[1] == "1/3:2/3" and segment_args("3/3")[1] == "2/3:1"
    assert segment_args("") == []


def test_ndjson_output_only_when_sharding_or_asked(tmp_path: Path) -> None:
    files = {"k6_summary_export": tmp_path / "e.json", "k6_ndjson": tmp_path / "k6.ndjson.gz"}
    sc = get_scenario("smoke_test")
    plain = build_argv("k6", RunSpec(sc, "http://h", tmp_path), files, 1)
    assert "--out" not in plain and "--execution-segment" not in plain
    shard = build_argv("k6", RunSpec(sc, "http://h", tmp_path, shard="2/2"), files, 1)
    assert f"json={files['k6_ndjson']}" in shard and "1/2:1" in shard
    assert "--out" in build_argv("k6", RunSpec(sc, "http://h", tmp_path, histogram=True), files, 1)


def test_shard_users_stripe_like_k6() -> None:
    # measured with k6 1.1.0: 5 constant VUs over 3 equal segments run 2, 2 and 1
    assert [shard_users(5, (i, 3)) for i in (1, 2, 3)] == [2, 2, 1]
    assert sum(shard_users(7, (i, 4)) for i in range(1, 5)) == 7
    assert shard_users(1, (2, 2)) == 0 and shard_users(4, None) == 4


def test_stream_reader_builds_exact_histograms(tmp_path: Path) -> None:
    lines = [
        '{"type":"Metric","data":{"name":"http_req_duration","type":"trend"},"metric":"http_req_duration"}',
        point("http_reqs", 1, method="GET", name="/health/", win="0"),
        point("http_req_duration", 1.234, method="GET", name="/health/", win="0"),
        point("http_req_duration", 1.2341, method="GET", name="/health/", win="1"),
        point("http_req_duration", 250.6, method="POST", name="/api/v1/servers/", win="1"),
        point("http_req_waiting", 9.0, method="POST", name="/api/v1/servers/", win="1"),
    ]
    path = write_ndjson(tmp_path / "k6.ndjson.gz", lines)
    with gzip.open(path, "ab") as fh:  # a line cut short by a hard stop is ignored
        fh.write(b'{"metric":"http_req_duration","type":"Point","data":{"value":')
    h = read_histograms(path)
    assert h.points == 3
    assert h.endpoint("GET", "/health/") == LatencyHistogram(((quantize_ms(1.234), 2),))
    assert h.endpoint("", "/api/v1/servers/") == LatencyHistogram(((251.0, 1),))  # name only: all methods
    assert h.window(1) == LatencyHistogram(((1.23, 1), (251.0, 1)))
    assert h.window(0, "GET", "/health/") == LatencyHistogram(((1.23, 1),))
    assert h.window(5) is None
    plain = read_histograms(write_ndjson(tmp_path / "k6.ndjson", lines, gz=False))
    assert plain.total == h.total


def test_stream_reader_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ResultError, match="missing"):
        read_histograms(tmp_path / "none.ndjson.gz")
    bad = write_ndjson(tmp_path / "bad.ndjson", ['{"metric":"http_req_duration","type":"Point","data":{}}'], gz=False)
    with pytest.raises(ResultError, match="line 1"):
        read_histograms(bad)


@pytest.mark.integration
def test_a_shard_runs_its_segment_with_histograms(sark_stub: str, tmp_path: Path) -> None:
    sc = get_scenario("smoke_test").with_load(users=3, spawn_rate=3, duration_s=4)
    spec = RunSpec(sc, sark_stub, tmp_path, Auth(api_key="test-key"), window_s=1.0, shard="1/2")
    artifacts = run_k6(spec)
    meta = RunMeta("smoke_test", "k6", artifacts.tool_version, 3, 3, 4.0, sark_stub, labels={"shard": "1/2"})
    result = parse_k6(artifacts, meta)
    summary = json.loads(artifacts.files["k6_summary"].read_text())
    assert summary["ci_perf"]["execution_segment"] == "0:1/2"
    assert result.meta.labels == {"shard": "1/2"}
    assert max(w.users for w in result.total.windows) == 2  # 3 VUs over 2 shards: 2 here, 1 there
    for ep in (result.total, *result.endpoints):
        assert ep.histogram is not None and ep.histogram.total == ep.requests, ep.key
        assert sum(w.histogram.total for w in ep.windows if w.histogram) == ep.requests, ep.key
        for w in ep.windows:  # k6's per-request points (their win tag) agree with each window's own Trend
            assert (w.histogram.total if w.histogram else 0) == w.requests - w.failures, (ep.key, w.start_s)
    assert abs(result.total.histogram.percentile(0.5) - result.total.p50_ms) <= max(0.5, result.total.p50_ms * 0.5)
