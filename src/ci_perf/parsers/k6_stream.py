"""k6's `--out json` NDJSON (optionally gzipped) -> exact latency histograms, in bounded memory.

The file holds ~3 KB per request (ENVIRONMENT.md: a million requests is 3.8 GB), so it is read line
by line and only `http_req_duration` Point lines are decoded: a byte search rejects every other line
before json.loads. Memory is bounded by the histogram buckets (model.quantize_ms: three significant
digits), never by the number of requests.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, cast

from ci_perf.errors import ResultError
from ci_perf.model import LatencyHistogram, quantize_ms

METRIC = b'"metric":"http_req_duration"'
POINT = b'"type":"Point"'
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


def read_histograms(path: Path) -> StreamHistograms:
    """One pass over the file; a truncated gzip tail (k6 killed) keeps what was read before it."""
    out = StreamHistograms()
    try:
        with _open(path) as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.endswith(b"\n"):
                    break  # a line cut short when k6 was killed
                if METRIC in line and POINT in line:
                    _add_point(out, path, lineno, line)
    except FileNotFoundError:
        raise ResultError(f"k6 output {path}: missing (was k6 run with --out json=...?)") from None
    except EOFError:
        pass  # k6 was stopped hard: the gzip stream has no end; the points before it are whole
    except (OSError, gzip.BadGzipFile) as exc:
        raise ResultError(f"k6 output {path}: unreadable ({exc})") from exc
    return out


def _add_point(out: StreamHistograms, path: Path, lineno: int, line: bytes) -> None:
    try:
        data = json.loads(line)["data"]
        tags = data.get("tags") or {}
        win = tags.get("win")
        out.add((str(tags.get("method", "")), str(tags.get("name", ""))),
                int(win) if win not in (None, "") else None, float(data["value"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise ResultError(f"k6 output {path}, line {lineno}: not a k6 Point ({exc})") from exc
