"""Every reader of a file ci-perf did not just write (issue 14 item 12), fuzzed from real inputs:
Locust's --json and windows files, k6's summaries and NDJSON output, results.json, baseline files and
the comment digest, mutated by byte flips, truncation, deletions, type swaps of JSON values and
NaN/infinity. Each reader either returns a well-typed object (every field of its declared type,
every figure finite, every count whole and not negative) or raises ResultError, one line naming the
file; any other exception is a crash. Hypothesis runs derandomized (a fixed seed): the same examples on
every run, in the normal suite."""

from __future__ import annotations

import base64
import copy
import functools
import gzip
import json
import math
import os
import random
import signal
import traceback
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, fields, is_dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from ci_perf.baseline import load_result_file
from ci_perf.digest import decode_digest, encode_digest
from ci_perf.errors import ResultError
from ci_perf.model import Outcome, RunMeta, RunResult
from ci_perf.parsers.k6 import parse_k6
from ci_perf.parsers.k6_stream import StreamHistograms, read_histograms
from ci_perf.parsers.locust import parse_locust
from ci_perf.pipeline import load_outcome
from ci_perf.runners.base import RunArtifacts

TESTS = Path(__file__).parent
GOLDEN = TESTS / "golden"
EXAMPLES = int(os.environ.get("CI_PERF_FUZZ_EXAMPLES", "400"))  # per reader; six readers: 2,400
HANG_S = 2.0  # a reader still busy after this long on a ~100 KB file is stuck (e.g. range(10**30))


class Hang(Exception):
    pass


def _hang(signum: int, frame: object) -> None:
    raise Hang(f"still reading after {HANG_S:g}s")


# --- what a valid answer is ---------------------------------------------------------------------


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def problems(value: Any, hint: Any, where: str) -> list[str]:
    """Where `value` is not of the declared type `hint` (dataclasses field by field, recursively)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return []
    if origin in (typing.Union, types.UnionType):
        found = [problems(value, a, where) for a in args]
        return [] if any(not f for f in found) else found[0] or [f"{where}: {value!r} is none of {hint}"]
    if origin is typing.Literal:
        return [] if value in args else [f"{where}: {value!r} not in {args}"]
    if hint is type(None):
        return [] if value is None else [f"{where}: {value!r} is not None"]
    if origin is tuple:
        if not isinstance(value, tuple):
            return [f"{where}: {type(value).__name__}, expected a tuple"]
        kinds = [args[0]] * len(value) if len(args) == 2 and args[1] is Ellipsis else list(args)
        if len(kinds) != len(value):
            return [f"{where}: {len(value)} items, expected {len(kinds)}"]
        return [p for i, (v, k) in enumerate(zip(value, kinds, strict=True)) for p in problems(v, k, f"{where}[{i}]")]
    if origin is dict:
        if not isinstance(value, dict):
            return [f"{where}: {type(value).__name__}, expected a dict"]
        return [p for k, v in value.items() for p in problems(k, args[0], where) + problems(v, args[1], f"{where}.{k}")]
    if hint is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        return [] if ok else [f"{where}: {value!r} is not a finite number"]
    if hint is int:
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
        return [] if ok else [f"{where}: {value!r} is not a count"]
    if isinstance(hint, type) and issubclass(hint, Enum):
        return [] if isinstance(value, hint) else [f"{where}: {value!r} is not a {hint.__name__}"]
    if isinstance(hint, type) and is_dataclass(hint):
        if not isinstance(value, hint):
            return [f"{where}: {type(value).__name__}, expected {hint.__name__}"]
        hints = _hints(hint)
        return [p for f in fields(hint) for p in problems(getattr(value, f.name), hints[f.name], f"{where}.{f.name}")]
    return [] if isinstance(value, hint) else [f"{where}: {type(value).__name__}, expected {hint.__name__}"]


def check_result(result: RunResult) -> list[str]:
    return problems(result, RunResult, "result")


def check_outcome(outcome: Outcome) -> list[str]:
    found = problems(outcome, Outcome, "outcome")
    return found or problems(outcome.verdict.status, typing.get_type_hints(type(outcome.verdict))["status"], "verdict")


def check_histograms(h: StreamHistograms) -> list[str]:
    cells = [h.total, *h.endpoints.values(), *h.windows.values(), *h.endpoint_windows.values()]
    return [f"histogram bucket {q!r}: {n!r}" for c in cells for q, n in c.items() if not math.isfinite(q) or n < 1]


# --- mutations ------------------------------------------------------------------------------------

ODD_VALUES: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    1.5,
    10**30,
    "",
    "x",
    "1e999",
    [],
    {},
    [[1, 2]],
    {"a": 1},
    math.nan,
    math.inf,
    -math.inf,
    1e308,
]


def mutate_json(data: st.DataObject, doc: Any) -> bytes:
    """1-3 structural mutations: a value replaced by an odd one, a key or item deleted, a container's
    type swapped, a number made NaN or infinite."""
    for _ in range(data.draw(st.integers(1, 3))):
        walk = random.Random(data.draw(st.integers(0, 2**32 - 1)))  # where: one draw (draws are the slow part)
        parent, key, node = None, None, doc
        while isinstance(node, dict | list) and node and walk.random() < 0.75:
            parent, key = node, walk.choice(list(node) if isinstance(node, dict) else range(len(node)))
            node = node[key]
        op = data.draw(st.sampled_from(["replace", "replace", "delete", "swap"]))
        if parent is None:
            doc = copy.deepcopy(data.draw(st.sampled_from(ODD_VALUES))) if op == "replace" else doc
            continue
        if op == "delete":
            del parent[key]
        elif op == "swap" and isinstance(node, dict):
            parent[key] = list(node.values())
        elif op == "swap" and isinstance(node, list):
            parent[key] = {str(i): v for i, v in enumerate(node)}
        else:
            parent[key] = copy.deepcopy(data.draw(st.sampled_from(ODD_VALUES)))
    # Compact, as k6 writes its lines; NaN and infinities as Python writes them: NaN, Infinity.
    return json.dumps(doc, separators=(",", ":")).encode()


def mutate_bytes(data: st.DataObject, raw: bytes) -> bytes:
    op = data.draw(st.sampled_from(["flip", "truncate", "delete", "insert"]))
    if not raw:
        return data.draw(st.binary(max_size=8))
    i = data.draw(st.integers(0, len(raw) - 1))
    if op == "flip":
        return raw[:i] + bytes([data.draw(st.integers(0, 255))]) + raw[i + 1 :]
    if op == "truncate":
        return raw[:i]
    if op == "delete":
        return raw[:i] + raw[i + data.draw(st.integers(1, 64)) :]
    return raw[:i] + data.draw(st.binary(min_size=1, max_size=8)) + raw[i:]


def mutate(data: st.DataObject, raw: bytes, lines: bool = False) -> bytes:
    """`lines`: NDJSON, one JSON document a line (one line is mutated structurally)."""
    if lines and data.draw(st.integers(0, 2)):
        rows = raw.split(b"\n")
        i = data.draw(st.integers(0, len(rows) - 1))
        rows[i] = mutate(data, rows[i]) if rows[i] else rows[i]
        return b"\n".join(rows)
    if data.draw(st.integers(0, 2)):  # two in three: structural, the rest byte-level
        try:
            return mutate_json(data, json.loads(raw))
        except ValueError:
            pass
    return mutate_bytes(data, raw)


# --- the readers, each on its golden inputs -----------------------------------------------------


@dataclass(frozen=True)
class Reader:
    name: str
    inputs: list[dict[str, bytes]]  # one golden case: file name -> content
    read: Callable[[Path, dict[str, Path]], list[str]]  # mutated files -> problems with the answer


def _meta(folder: Path) -> RunMeta:
    return RunMeta(**json.loads((folder / "meta.json").read_text()))


def _cases(root: Path, names: tuple[str, ...]) -> list[dict[str, bytes]]:
    found = []
    for folder in sorted(p for p in root.iterdir() if (p / "meta.json").is_file()):
        case = {n: (folder / n).read_bytes() for n in names if (folder / n).is_file()}
        if names[0] in case:
            found.append({**case, "meta.json": (folder / "meta.json").read_bytes()})
    return found


def read_locust(folder: Path, files: dict[str, Path]) -> list[str]:
    artifacts = RunArtifacts(
        "locust", "2.47.0", "", 0, {"locust_json": files["locust.json"], "windows": files["locust_windows.json"]}
    )
    return check_result(parse_locust(artifacts, _meta(folder)))


def read_k6(folder: Path, files: dict[str, Path]) -> list[str]:
    summary = files.get("k6-summary.json") or files["k6-summary-export.json"]
    role = "k6_summary" if summary.name == "k6-summary.json" else "k6_summary_export"
    artifacts = RunArtifacts(
        "k6",
        "1.1.0",
        "",
        0,
        {role: summary, **({"stderr": files["k6.stderr.log"]} if "k6.stderr.log" in files else {})},
    )
    return check_result(parse_k6(artifacts, _meta(folder)))


def read_ndjson(folder: Path, files: dict[str, Path]) -> list[str]:
    return check_histograms(read_histograms(files["k6.ndjson"], "ci_perf_ok"))


def read_results(folder: Path, files: dict[str, Path]) -> list[str]:
    return check_outcome(load_outcome(files["results.json"]))


def read_baseline(folder: Path, files: dict[str, Path]) -> list[str]:
    return check_result(load_result_file(files["baseline.json"]))


def read_digest(folder: Path, files: dict[str, Path]) -> list[str]:
    found = decode_digest(files["comment.md"].read_text(encoding="utf-8", errors="replace"))
    return [] if found is None else check_result(found)


def _outcomes() -> list[Outcome]:
    import sys

    sys.path.insert(0, str(TESTS))
    try:
        from report_fixtures import CASES, outcome_for
    finally:
        sys.path.remove(str(TESTS))
    return [outcome_for(case) for case in CASES]


def _ndjson() -> bytes:
    """k6's --out json layout (k6 1.x): a Metric declaration, Points of our success Trend and others."""
    lines = ['{"metric":"ci_perf_ok","type":"Metric","data":{"name":"ci_perf_ok","type":"trend"}}']
    for i in range(12):
        tags = {"method": "GET", "name": f"/api/v1/servers/{i % 3}", "win": str(i % 4)}
        for metric in ("ci_perf_ok", "http_reqs"):
            point = {"time": "2026-12-02T07:34:19Z", "value": 1.5 + i, "tags": tags}
            lines.append(json.dumps({"metric": metric, "type": "Point", "data": point}, separators=(",", ":")))
    return ("\n".join(lines) + "\n").encode()


def _digest_input(doc: bytes) -> bytes:
    raw = json.dumps(json.loads(doc), separators=(",", ":")).encode()
    return f"report\n<!-- ci-perf-digest:{base64.b64encode(gzip.compress(raw, 9, mtime=0)).decode()} -->\n".encode()


OUTCOMES = _outcomes()
RESULT_DOCS = [json.dumps(o.to_dict()).encode() for o in OUTCOMES]
RUN_DOCS = [json.dumps(o.result.to_dict()).encode() for o in OUTCOMES]
READERS = [
    Reader("locust", _cases(GOLDEN / "locust", ("locust.json", "locust_windows.json")), read_locust),
    Reader(
        "k6",
        [
            *_cases(GOLDEN / "k6", ("k6-summary.json", "k6.stderr.log")),
            *_cases(GOLDEN / "k6", ("k6-summary-export.json",)),
        ],
        read_k6,
    ),
    Reader("k6_ndjson", [{"k6.ndjson": _ndjson()}], read_ndjson),
    Reader("results", [{"results.json": d} for d in RESULT_DOCS], read_results),
    Reader("baseline", [{"baseline.json": d} for d in [*RESULT_DOCS, *RUN_DOCS]], read_baseline),
    Reader("digest", [{"digest.json": d} for d in RUN_DOCS], read_digest),
]


def _write(data: st.DataObject, folder: Path, case: dict[str, bytes]) -> dict[str, Path]:
    """The case's files, one or more of them mutated (never meta.json: the run's own, not a tool's)."""
    names = [n for n in case if n != "meta.json"]
    chosen = data.draw(st.lists(st.sampled_from(names), min_size=1, max_size=len(names), unique=True))
    files = {}
    for name, raw in case.items():
        content = mutate(data, raw, name.endswith(".ndjson")) if name in chosen else raw
        if name == "digest.json":  # the digest travels gzipped and base64-encoded in a comment
            try:
                name, content = "comment.md", _digest_input(content)
            except ValueError:
                name, content = "comment.md", b"<!-- ci-perf-digest:" + base64.b64encode(content) + b" -->"
            if data.draw(st.booleans()):
                content = mutate_bytes(data, content)
        if _ON_DISK.get(folder / name) != content:  # writes are slow here; most files stay as they were
            (folder / name).write_bytes(content)
            _ON_DISK[folder / name] = content
        files[name] = folder / name
    return files


_ON_DISK: dict[Path, bytes] = {}


def fuzz(reader: Reader, folder: Path, examples: int) -> list[str]:
    """Run `examples` mutations; returns the crashes (exceptions other than ResultError, invalid answers)."""
    crashes: list[str] = []

    @settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(st.data())
    def one(data: st.DataObject) -> None:
        case = data.draw(st.sampled_from(reader.inputs))
        files = _write(data, folder, case)
        previous = signal.signal(signal.SIGALRM, _hang)
        signal.setitimer(signal.ITIMER_REAL, HANG_S)
        try:
            found = reader.read(folder, files)
        except ResultError as exc:
            if "\n" in str(exc) or not str(exc):
                crashes.append(f"ResultError not one line: {str(exc)[:200]!r}")
            return
        except Exception as exc:
            where = traceback.extract_tb(exc.__traceback__)[-1]
            crashes.append(f"{type(exc).__name__} at {Path(where.filename).name}:{where.lineno}: {str(exc)[:120]}")
            return
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
        if found:
            crashes.append(f"invalid answer: {found[0]}")

    one()
    return crashes


@pytest.mark.parametrize("reader", READERS, ids=[r.name for r in READERS])
def test_reader_returns_a_valid_object_or_a_result_error(reader: Reader, tmp_path: Path) -> None:
    for case in reader.inputs:  # the unmutated inputs read cleanly: the fuzz starts from valid files
        files = {}
        for name, raw in case.items():
            if name == "digest.json":
                name, raw = "comment.md", _digest_input(raw)
            (tmp_path / name).write_bytes(raw)
            files[name] = tmp_path / name
        assert reader.read(tmp_path, files) == []
    crashes = fuzz(reader, tmp_path, EXAMPLES)
    kinds = sorted({c.split(":")[0] + ":" + c.split(":")[1] if c.count(":") > 1 else c for c in crashes})
    assert not crashes, f"{len(crashes)} crashes in {EXAMPLES} examples, {len(kinds)} kinds:\n" + "\n".join(kinds)


def test_the_digest_round_trips() -> None:
    result = OUTCOMES[0].result
    assert decode_digest(encode_digest(result)) is not None
