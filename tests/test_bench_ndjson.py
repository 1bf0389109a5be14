"""Correctness (not speed) of the k6 NDJSON benchmark pieces: bench/ndjson_gen.py's file and reference
percentiles, and ci-perf's fast streaming reader against plain json.loads parsing of the same lines."""

from __future__ import annotations

import gzip
import importlib.util
import io
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

from ci_perf.model import LatencyHistogram
from ci_perf.parsers import k6_stream
from ci_perf.parsers.k6_stream import StreamHistograms, read_histograms

BENCH = Path(__file__).resolve().parent.parent / "bench"


def _bench_module(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


gen = _bench_module("ndjson_gen")


def naive(data: bytes) -> StreamHistograms:
    """The obvious parser: json.loads on every whole line."""
    out = StreamHistograms()
    for line in data.split(b"\n")[:-1]:
        doc = json.loads(line)
        if doc.get("type") == "Point" and doc.get("metric") == "http_req_duration":
            tags = doc["data"]["tags"]
            win = tags.get("win")
            out.add((tags.get("method", ""), tags.get("name", "")), int(win) if win else None, doc["data"]["value"])
    return out


def same(a: StreamHistograms, b: StreamHistograms) -> None:
    assert a.points == b.points
    assert a.total == b.total and a.endpoints == b.endpoints
    assert a.windows == b.windows and a.endpoint_windows == b.endpoint_windows


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, object]]:
    path = tmp_path_factory.mktemp("ndjson") / "k6.ndjson"
    return path, gen.write(path, 3000, seed=7)


def test_generator_reference_is_exact(generated: tuple[Path, dict[str, object]]) -> None:
    path, ref = generated
    values: dict[str, list[float]] = {}
    lines = path.read_bytes().split(b"\n")[:-1]
    for line in lines:
        doc = json.loads(line)  # every line is JSON
        if doc.get("metric") == "http_req_duration" and doc["type"] == "Point":
            tags = doc["data"]["tags"]
            values.setdefault(f"{tags['method']} {tags['name']}", []).append(doc["data"]["value"])
    everything = sorted(v for vs in values.values() for v in vs)
    assert ref["requests"] == len(everything) == 3000
    for key, q in gen.QUANTILES.items():
        assert ref["total"][key] == everything[int(len(everything) * q)]  # type: ignore[index]
    for name, vs in values.items():
        vs.sort()
        assert ref["endpoints"][name]["p95"] == vs[int(len(vs) * 0.95)]  # type: ignore[index]
    assert 0 < ref["failures"] < 3000 * 0.05  # type: ignore[operator]
    metrics = {json.loads(line).get("metric") for line in lines}
    assert {"http_req_blocked", "http_req_tls_handshaking", "data_sent", "iteration_duration", "vus"} <= metrics
    assert json.loads(gen.reference_path(path).read_text()) == ref


def test_fast_reader_equals_json_loads(generated: tuple[Path, dict[str, object]], tmp_path: Path) -> None:
    path, ref = generated
    data = path.read_bytes()
    fast = read_histograms(path)
    same(fast, naive(data))
    # within the 0.5% that three significant digits allow
    total = LatencyHistogram.from_mapping(fast.total)
    exact = ref["total"]
    for key, q in gen.QUANTILES.items():
        assert abs(total.percentile(q) - exact[key]) <= 0.005 * exact[key]  # type: ignore[index]
    gz = tmp_path / "k6.ndjson.gz"
    gz.write_bytes(gzip.compress(data, 1))
    same(read_histograms(gz), fast)


def test_fast_reader_odd_lines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Escapes, another key order, a line longer than the buffer, unique tags: all as json.loads says."""

    def point(value: float, name: str, win: str, **extra: str) -> bytes:
        tags = {"method": "GET", "name": name, "status": "200", "win": win, **extra}
        return json.dumps(
            {
                "metric": "http_req_duration",
                "type": "Point",
                "data": {"time": "2026-11-28T13:00:00Z", "value": value, "tags": tags},
            },
            separators=(",", ":"),
        ).encode()

    lines = [
        point(1.5, "a&b <c>", "0").replace(b"&", b"\\u0026"),  # Go escapes &, < and >
        point(2.25, 'quote " name', "1"),
        json.dumps(
            {
                "type": "Point",
                "metric": "http_req_duration",
                "data": {"tags": {"method": "POST", "name": "x"}, "value": 3.0},
            },
            separators=(",", ":"),
        ).encode(),
        b'{"type":"Metric","data":{"name":"http_req_duration","submetrics":[' + b'{"x":1},' * 400 + b"{}]},"
        b'"metric":"http_req_duration"}',
        point(0, "/zero", "2"),
        *(point(10.0 + i, "/unique", "3", url=f"/unique/{i}") for i in range(40)),
    ]
    data = b"\n".join(lines) + b"\n"
    path = tmp_path / "odd.ndjson"
    path.write_bytes(data)
    monkeypatch.setattr(k6_stream, "BLOCK", 1024)  # the Metric line is longer: the buffer must grow
    monkeypatch.setattr(k6_stream, "MAX_CELLS", 8)  # unique url tags fold along the way
    got = read_histograms(path)
    same(got, naive(data))
    assert got.points == 44 and ("GET", "a&b <c>") in got.endpoints


def test_fast_reader_cut_gzip_keeps_whole_points(generated: tuple[Path, dict[str, object]], tmp_path: Path) -> None:
    path, _ = generated
    data = path.read_bytes()
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", compresslevel=1) as fh:
        fh.write(data)
    cut = tmp_path / "cut.ndjson.gz"
    cut.write_bytes(buf.getvalue()[: len(buf.getvalue()) * 2 // 3])  # k6 killed: no gzip end
    got = read_histograms(cut)
    # whatever was decompressed before the cut counts, line for line as json.loads reads that prefix
    with gzip.open(cut, "rb") as fh:
        prefix = b""
        try:
            while chunk := fh.read1(1 << 16):  # type: ignore[attr-defined]
                prefix += chunk
        except EOFError:
            pass
    same(got, naive(prefix[: prefix.rfind(b"\n") + 1]))
    assert got.points > 1000
