"""k6's `--out json` NDJSON (optionally gzipped) -> exact latency histograms, in bounded memory.

The file holds ~3 KB per request (ENVIRONMENT.md: a million requests is 3.8 GB) and only one line in
thirteen matters (an `http_req_duration` Point), so the file is read in large blocks and searched for
that metric's name with bytes.find, never split into lines: the C search skips the other lines at memory
speed. A hit in k6's own layout (`{"metric":...,"type":"Point","data":{"time":..,"value":V,"tags":{..}}}`)
is counted by its raw tags text, with no json.loads; each distinct tags text is decoded once at the end.
Anything else (other key orders, escapes, a bad line) goes through json.loads. Memory is bounded by the
histogram buckets (model.quantize_ms: three significant digits) times the distinct tags, which are
folded whenever they pile up, never by the number of requests. bench/ndjson_parse.py measures it.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import math
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, cast

from ci_perf.errors import ResultError
from ci_perf.model import LatencyHistogram, quantize_ms

METRIC = b'"metric":"http_req_duration"'
POINT = b'"type":"Point"'
LAYOUT = b'{"metric":"http_req_duration","type":"Point","data":{'  # how k6 1.x writes a point
SUCCESS_METRIC = "ci_perf_ok"  # our script's durations of right answers (success-only latency)
VALUE, TAGS = b',"value":', b',"tags":'
BLOCK = 4 << 20  # bytes per read: large enough that the per-block Python work is negligible
MAX_CELLS = 10_000  # distinct raw tags texts kept before folding (e.g. a script tagging unique URLs)
Key = tuple[str, str]  # (method, name) tags
Counts = dict[float, int]


@dataclass
class StreamHistograms:
    """Bucket counts per endpoint, per window (the `win` tag) and per both, plus for all requests."""

    total: Counts = field(default_factory=dict)
    endpoints: dict[Key, Counts] = field(default_factory=dict)
    windows: dict[int, Counts] = field(default_factory=dict)
    endpoint_windows: dict[tuple[Key, int], Counts] = field(default_factory=dict)
    points: int = 0

    def add(self, key: Key, win: int | None, ms: float) -> None:
        q = quantize_ms(ms)
        targets = [self.total, self.endpoints.setdefault(key, {})]
        if win is not None:
            targets += [self.windows.setdefault(win, {}), self.endpoint_windows.setdefault((key, win), {})]
        for counts in targets:
            counts[q] = counts.get(q, 0) + 1
        self.points += 1

    def add_counts(self, key: Key, win: int | None, counts: Counts) -> None:
        """Add bucket counts of one (endpoint, window) at once: what the fast reader folds in."""
        targets = [self.total, self.endpoints.setdefault(key, {})]
        if win is not None:
            targets += [self.windows.setdefault(win, {}), self.endpoint_windows.setdefault((key, win), {})]
        for target in targets:
            for q, n in counts.items():
                target[q] = target.get(q, 0) + n
        self.points += sum(counts.values())

    def endpoint(self, method: str, name: str) -> LatencyHistogram | None:
        """The endpoint's histogram; an endpoint known by name only (a user's script) sums its methods."""
        if (method, name) in self.endpoints:
            return LatencyHistogram.from_mapping(self.endpoints[(method, name)])
        return _sum(c for (m, n), c in self.endpoints.items() if n == name)

    def window(self, index: int, method: str | None = None, name: str | None = None) -> LatencyHistogram | None:
        if name is None:
            found = self.windows.get(index)
            return LatencyHistogram.from_mapping(found) if found else None
        if method and ((method, name), index) in self.endpoint_windows:
            return LatencyHistogram.from_mapping(self.endpoint_windows[((method, name), index)])
        return _sum(c for ((m, n), i), c in self.endpoint_windows.items() if n == name and i == index)


def _sum(parts: Iterator[Counts]) -> LatencyHistogram | None:
    acc: Counts = {}
    for counts in parts:
        for q, n in counts.items():
            acc[q] = acc.get(q, 0) + n
    return LatencyHistogram.from_mapping(acc) if acc else None


def _open(path: Path) -> IO[bytes]:
    with path.open("rb") as probe:
        gzipped = probe.read(2) == b"\x1f\x8b"
    return cast(IO[bytes], gzip.open(path, "rb")) if gzipped else path.open("rb")


def read_histograms(path: Path, metric: str = "http_req_duration") -> StreamHistograms:
    """One pass over the file; a line cut short (k6 killed) and a truncated gzip tail are left out.
    `metric`: the Trend whose points count (ci_perf_ok for our script's success-only latency)."""
    out = StreamHistograms()
    cells: dict[bytes, Counts] = {}  # raw `,"tags":{...}}}` text -> bucket counts
    name = metric.encode()
    try:
        with _open(path) as fh:
            _read(fh, isinstance(fh, gzip.GzipFile), path, cells, out, name)
    except FileNotFoundError:
        raise ResultError(f"k6 output {path}: missing (was k6 run with --out json=...?)") from None
    except (OSError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
        raise ResultError(f"k6 output {path}: unreadable ({exc})") from exc
    _fold(cells, out, path)
    return out


def _read(
    fh: IO[bytes], gz: bool, path: Path, cells: dict[bytes, Counts], out: StreamHistograms, metric: bytes
) -> None:
    """Fill one reused buffer, scan its whole lines, keep the cut line for the next fill. Reusing the
    buffer matters: a fresh multi-MB bytes per block costs more in page faults than the scan itself."""
    buf = bytearray(BLOCK)
    filled = offset = 0  # offset: of buf[0] in the (decompressed) file, for error messages
    while True:
        filled, eof = _fill(fh, gz, buf, filled)
        end = buf.rfind(b"\n", 0, filled) + 1
        if end:
            _scan(buf, end, cells, out, path, offset, metric)
            if len(cells) > MAX_CELLS:
                _fold(cells, out, path)
            buf[: filled - end] = buf[end:filled]
            filled, offset = filled - end, offset + end
        if eof:
            return  # what is left in buf is a line cut short by a hard stop: not a whole point
        if not end:
            buf.extend(bytes(len(buf)))  # one line longer than the buffer (a huge Metric declaration)


def _fill(fh: IO[bytes], gz: bool, buf: bytearray, filled: int) -> tuple[int, bool]:
    """Read into buf[filled:] until it is full; returns (new filled, end of data reached)."""
    if not gz:
        with memoryview(buf) as view:
            n = fh.readinto(view[filled:])  # type: ignore[attr-defined]
        return filled + n, n == 0
    # gzip: read1 pieces, so that a stream with no end (k6 killed hard) loses only its last piece;
    # read() would drop everything it had gathered when it meets the missing end.
    while filled < len(buf):
        try:
            piece = fh.read1(len(buf) - filled)  # type: ignore[attr-defined]
        except EOFError:
            return filled, True
        if not piece:
            return filled, True
        buf[filled : filled + len(piece)] = piece
        filled += len(piece)
    return filled, False


def _scan(
    buf: bytearray, end: int, cells: dict[bytes, Counts], out: StreamHistograms, path: Path, offset: int, metric: bytes
) -> None:
    """Count every http_req_duration point in buf[:end] (whole lines). Runs once per request: it works
    on offsets into buf (no line copies) and leaves every line but k6's usual layout to _add_point."""
    find, startswith = buf.find, buf.startswith
    skip_value = len(VALUE)
    key, layout = b'"metric":"' + metric + b'"', b'{"metric":"' + metric + b'","type":"Point","data":{'
    name = metric.decode()
    with memoryview(buf) as view:
        pos = find(key, 0, end)
        while pos >= 0:
            stop = find(b"\n", pos, end)
            ms = None
            if (pos == 1 or buf[pos - 2] == 10) and startswith(layout, pos - 1) and find(b"\\", pos, stop) < 0:
                v = find(VALUE, pos, stop)
                t = find(TAGS, v, stop) if v > 0 else -1
                if t > 0:
                    with contextlib.suppress(ValueError):
                        ms = float(view[v + skip_value : t])
                    ms = ms if ms is None or math.isfinite(ms) else None  # "NaN": the slow path refuses it
            if ms is None:
                start = buf.rfind(b"\n", 0, pos) + 1
                line = bytes(view[start:stop])
                if POINT in line:
                    _add_point(out, path, offset + start, line, name)
            else:
                q = 0.0 if ms <= 0 else float(f"{ms:.3g}")  # model.quantize_ms, inlined: it runs per request
                counts = cells.get(tags := bytes(view[t:stop]))
                if counts is None:
                    counts = cells[tags] = {}
                counts[q] = counts.get(q, 0) + 1
            pos = find(key, stop, end)


def _fold(cells: dict[bytes, Counts], out: StreamHistograms, path: Path) -> None:
    """Decode each distinct raw tags text once and add its counts to the histograms."""
    for raw, counts in cells.items():
        try:
            tags = json.loads(b'{"data":{' + raw[1:])["data"].get("tags") or {}
            key = _key(tags)
        except (ValueError, AttributeError) as exc:
            raise ResultError(f"k6 output {path}: bad tags {raw[:200]!r} ({exc})") from None
        out.add_counts(*key, counts)
    cells.clear()


def _key(tags: dict[str, object]) -> tuple[Key, int | None]:
    win = tags.get("win")
    return (str(tags.get("method", "")), str(tags.get("name", ""))), int(str(win)) if win not in (None, "") else None


def _line_number(path: Path, offset: int) -> int:
    """1-based number of the line starting at `offset`; only computed for an error message."""
    count, seen = 1, 0
    with _open(path) as fh:
        while seen < offset and (block := fh.read(min(BLOCK, offset - seen))):
            count += block.count(b"\n")
            seen += len(block)
    return count


def _add_point(out: StreamHistograms, path: Path, offset: int, line: bytes, metric: str) -> None:
    try:
        doc = json.loads(line)
        if doc.get("type") != "Point" or doc.get("metric") != metric:
            return  # e.g. the Metric declaration, or the name inside another metric's line
        data = doc["data"]
        key, win = _key(data.get("tags") or {})
        value = float(data["value"])
        if not math.isfinite(value):
            raise ValueError(f"value {value}")
        out.add(key, win, value)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ResultError(f"k6 output {path}, line {_line_number(path, offset)}: not a k6 Point ({exc})") from exc
