"""Each reader's one-line ResultError for the faults the issue 14 fuzzing found (item 12): text that is
not UTF-8, non-object metrics, wrong-typed fields, NaN and infinity; the message names the file and the
field. (tests/test_readers_fuzz.py mutates the golden inputs at random; these are the named cases.)"""

from __future__ import annotations

import base64
import gzip
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ci_perf.baseline import load_result_file
from ci_perf.digest import decode_digest, encode_digest
from ci_perf.errors import ResultError
from ci_perf.model import RunMeta, RunResult
from ci_perf.parsers.k6 import parse_k6
from ci_perf.parsers.k6_stream import read_histograms
from ci_perf.parsers.locust import parse_locust
from ci_perf.pipeline import load_outcome
from ci_perf.runners.base import RunArtifacts

GOLDEN = Path(__file__).parent / "golden"
K6 = GOLDEN / "k6" / "smoke_test"
LOCUST = GOLDEN / "locust" / "smoke"
RUN = json.loads((GOLDEN / "reports" / "input" / "handmade_run.json").read_text())
META = RunMeta(**json.loads((K6 / "meta.json").read_text()))

Edit = Callable[[Any], Any]


def _set(path: str, value: Any) -> Edit:
    """A document with the value at a dotted path (list items by index) replaced."""

    def edit(doc: Any) -> Any:
        *parents, last = path.split(".")
        node = doc
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        node[int(last) if isinstance(node, list) else last] = value
        return doc

    return edit


def _k6(tmp_path: Path, raw: bytes) -> None:
    (tmp_path / "k6-summary.json").write_bytes(raw)
    parse_k6(RunArtifacts("k6", "1.1.0", "", 0, {"k6_summary": tmp_path / "k6-summary.json"}), META)


def _locust(tmp_path: Path, stats: bytes, windows: bytes) -> None:
    (tmp_path / "locust.json").write_bytes(stats)
    (tmp_path / "locust_windows.json").write_bytes(windows)
    files = {"locust_json": tmp_path / "locust.json", "windows": tmp_path / "locust_windows.json"}
    parse_locust(RunArtifacts("locust", "2.47.0", "", 0, files), META)


def _edited(path: Path, edit: Edit) -> bytes:
    return json.dumps(edit(json.loads(path.read_bytes()))).encode()


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (_set("metrics.http_reqs", 5), "metrics.http_reqs is 5, expected an object"),
        (_set("metrics.http_reqs.values.count", "12"), "metrics.http_reqs.count is '12', expected a finite number"),
        (_set("metrics.http_reqs.values.rate", -1), "metrics.http_reqs.rate is -1, expected a number >= 0"),
        (_set("metrics.http_req_duration.values.p(95)", float("nan")), "NaN is not a number JSON allows"),
        (_set("metrics.http_req_duration.values.max", float("inf")), "Infinity is not a number JSON allows"),
        (_set("ci_perf.windows", "3"), "ci_perf: windows is '3', expected a whole number"),
        (_set("ci_perf.windows", 10**9), "1000000000 windows of"),
        (_set("ci_perf.endpoints", [["GET"]]), "ci_perf.endpoints[0] is a list, expected a pair"),
        (_set("ci_perf.error_statuses", ["500"]), "ci_perf.error_statuses[0] is '500', expected a whole number"),
        (_set("ci_perf.plan.stages", [[5, -2]]), "ci_perf.plan.stages[0][1] is -2"),
        (_set("state", "done"), "state is 'done', expected an object"),
    ],
)
def test_k6_summary(tmp_path: Path, edit: Edit, message: str) -> None:
    with pytest.raises(ResultError) as err:
        _k6(tmp_path, _edited(K6 / "k6-summary.json", edit))
    assert "k6-summary.json" in str(err.value) and message in str(err.value) and "\n" not in str(err.value)


def test_k6_summary_not_utf8(tmp_path: Path) -> None:
    with pytest.raises(ResultError, match=r"k6-summary\.json: not UTF-8 text \(byte 1\)"):
        _k6(tmp_path, b"{\xff}")


def test_k6_output_nan_value_and_bad_window_tag(tmp_path: Path) -> None:
    point = {"metric": "http_req_duration", "type": "Point", "data": {"time": "t", "value": 1.0, "tags": {"win": "x"}}}
    path = tmp_path / "k6.ndjson"
    path.write_text(json.dumps(point, separators=(",", ":")) + "\n")
    with pytest.raises(ResultError, match=r"k6 output .*k6\.ndjson: bad tags"):
        read_histograms(path)
    path.write_text(json.dumps(point, separators=(",", ":")).replace("1.0", "NaN").replace('"x"', '"1"') + "\n")
    with pytest.raises(ResultError, match=r"k6\.ndjson, line 1: not a k6 Point"):
        read_histograms(path)


@pytest.mark.parametrize(
    ("which", "edit", "message"),
    [
        ("stats", _set("0.min_response_time", "1"), "entry 0: min_response_time is '1', expected a finite number"),
        ("stats", _set("0.response_times", {"NaN": 1}), "entry 0 response_times is malformed"),
        ("stats", _set("0.num_failures", -1), "entry 0: num_failures is -1, expected a whole number"),
        ("windows", _set("windows.0.ok_max_ms", "slow"), "window 0: ok_max_ms is 'slow', expected a finite number"),
        ("windows", _set("windows.0.decisions", {"allow": "2"}), "window 0 decisions.allow is '2'"),
        ("windows", _set("windows.0.limited", True), "window 0: limited is True, expected a whole number"),
        ("windows", _set("errors", [{"method": "GET"}]), "error 0 lacks 'name'"),
        ("windows", _set("users", [[0]]), "users[0] is a list, expected [window index, users]"),
        ("windows", _set("window_s", 1e300), "window_s is 1e+300, expected a length from 0 to a day"),
        ("windows", _set("windows.0.index", 10**9), "more than 100000 windows"),
        ("windows", _set("workers", {"lost": 3}), "workers: lost is 3, expected a list"),
    ],
)
def test_locust_files(tmp_path: Path, which: str, edit: Edit, message: str) -> None:
    stats, windows = (LOCUST / "locust.json").read_bytes(), (LOCUST / "locust_windows.json").read_bytes()
    if which == "stats":
        stats = _edited(LOCUST / "locust.json", edit)
    else:
        windows = _edited(LOCUST / "locust_windows.json", edit)
    name = "locust.json" if which == "stats" else "locust_windows.json"
    with pytest.raises(ResultError) as err:
        _locust(tmp_path, stats, windows)
    assert name in str(err.value) and message in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (_set("meta.users", "6"), "meta.users is '6', expected a whole number"),
        (_set("meta.tool", "jmeter"), "meta.tool is 'jmeter', expected one of: locust, k6"),
        (_set("total.p95_ms", None), "total.p95_ms is None, expected a finite number"),
        (_set("endpoints.0.windows.0.length_s", "1s"), "endpoints[0].windows[0].length_s is '1s'"),
        (_set("endpoints.0.errors", [{"error": 5, "occurrences": 1}]), "endpoints[0].errors[0].error is 5"),
        (_set("total.histogram", [[1.0, 2, 3]]), "total.histogram[0] has 3 items, expected 2"),
        (_set("availability", {"probes": 3}), "availability lacks 'ok'"),
        (_set("decisions", {"allow": -1}), "decisions.allow is -1, expected a whole number"),
        (_set("endpoints", {"a": 1}), "endpoints is an object, expected a list"),
    ],
)
def test_baseline_file(tmp_path: Path, edit: Edit, message: str) -> None:
    path = tmp_path / "baseline.json"
    path.write_text(json.dumps(edit(json.loads(json.dumps(RUN)))))
    with pytest.raises(ResultError) as err:
        load_result_file(path)
    assert str(path) in str(err.value) and message in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"schema_version": 1, "result": \xfe}', "not UTF-8 text (byte 32)"),
        (b'{"schema_version": 1, "x": NaN}', "NaN is not a number JSON allows"),
        (b'{"schema_version": 1, "x": 1e999}', "1e999 is too large for a number"),
        (b"[" * 100_000, "nested too deeply"),
    ],
)
def test_results_json_text(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "results.json"
    path.write_bytes(content)
    with pytest.raises(ResultError) as err:
        load_outcome(path)
    assert str(path) in str(err.value) and message in str(err.value)


def test_results_json_fields(tmp_path: Path) -> None:
    doc = {"schema_version": 1, "result": RUN, "evaluation": {"checks": [{"status": "fine"}]}}
    path = tmp_path / "results.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(ResultError, match=r"evaluation\.checks\[0\] lacks 'name'"):
        load_outcome(path)
    doc["evaluation"] = {"checks": []}
    doc["gating"] = {"fail_on_regression": "yes"}
    path.write_text(json.dumps(doc))
    with pytest.raises(ResultError, match=r"gating\.fail_on_regression is 'yes', expected true or false"):
        load_outcome(path)


def test_a_broken_digest_is_no_baseline() -> None:
    """The digest is best-effort: unreadable (corrupt gzip, NaN, a wrong type) means no comparison."""
    good = encode_digest(RunResult.from_dict(RUN))
    assert decode_digest(good) is not None
    payload = good.split(":", 1)[1].removesuffix(" -->")
    raw = base64.b64decode(payload)
    corrupt = base64.b64encode(raw[:20] + bytes([raw[20] ^ 0xFF]) + raw[21:]).decode()
    assert decode_digest(f"<!-- ci-perf-digest:{corrupt} -->") is None  # zlib.error before the fix
    for text in ('{"meta": NaN}', json.dumps({**RUN, "meta": {**RUN["meta"], "users": "6"}})):
        blob = base64.b64encode(gzip.compress(text.encode())).decode()
        assert decode_digest(f"<!-- ci-perf-digest:{blob} -->") is None
