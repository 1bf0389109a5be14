"""How fast, and in how much memory, does ci-perf read k6's per-request NDJSON?

Measures, each in its own subprocess (peak memory = its ru_maxrss, which tracemalloc would slow down):
  plain    the reference: a plain Python loop over the file's lines, doing nothing with them
  ci-perf  ci_perf.parsers.k6_stream.read_histograms (what `--histogram` / `--shard` runs use)
  json     (--json) json.loads on every line, the naive parser ENVIRONMENT.md timed at 125 s / 385 MB

and checks ci-perf's percentiles (overall and per endpoint) against the exact ones the generator saved.
Targets: ci-perf's time at most 2.5x the plain loop's, its peak under 64 MB, percentiles within 0.5%.
Plain and ci-perf runs alternate (--rounds, default 2) so that a noisy machine affects both alike.

  python bench/ndjson_parse.py                      # generates 1,000,000 requests (~3.4 GB) in a temp
                                                    # folder, measures, deletes it
  python bench/ndjson_parse.py --requests 200000 --gzip
  python bench/ndjson_parse.py --file /tmp/k6.ndjson  # a file from bench/ndjson_gen.py (kept)
"""

from __future__ import annotations

import argparse
import gzip
import json
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Any, cast

import ndjson_gen

MAX_RATIO, MAX_PEAK_MB, MAX_ERROR = 2.5, 64.0, 0.005


def _open(path: Path) -> IO[bytes]:
    with path.open("rb") as probe:
        gz = probe.read(2) == b"\x1f\x8b"
    return cast(IO[bytes], gzip.open(path, "rb")) if gz else path.open("rb")


def run_plain(path: Path) -> dict[str, Any]:
    lines = 0
    with _open(path) as fh:
        for _ in fh:
            lines += 1
    return {"lines": lines}


def run_json(path: Path) -> dict[str, Any]:
    points = 0
    with _open(path) as fh:
        for line in fh:
            doc = json.loads(line)
            points += doc.get("metric") == "http_req_duration" and doc.get("type") == "Point"
    return {"points": points}


def run_ciperf(path: Path) -> dict[str, Any]:
    from ci_perf.model import LatencyHistogram
    from ci_perf.parsers.k6_stream import read_histograms

    hists = read_histograms(path)
    total = LatencyHistogram.from_mapping(hists.total)
    out: dict[str, Any] = {
        "points": hists.points,
        "total": {k: total.percentile(q) for k, q in ndjson_gen.QUANTILES.items()},
    }
    out["endpoints"] = {}
    for (method, name), counts in hists.endpoints.items():
        h = LatencyHistogram.from_mapping(counts)
        out["endpoints"][f"{method} {name}"] = {
            "requests": h.total,
            **{k: h.percentile(q) for k, q in ndjson_gen.QUANTILES.items()},
        }
    return out


MODES = {"plain": run_plain, "json": run_json, "ci-perf": run_ciperf}


def worker(mode: str, path: Path) -> None:
    """Child side: run one mode, print seconds, peak RSS and its result as JSON."""
    started = time.perf_counter()
    result = MODES[mode](path)
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    print(json.dumps({"seconds": seconds, "peak_mb": peak_mb, "result": result}))


def measure(mode: str, path: Path) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, __file__, "--worker", mode, str(path)], capture_output=True, text=True, check=False
    )
    if proc.returncode:
        raise SystemExit(f"{mode} failed:\n{proc.stderr}")
    data: dict[str, Any] = json.loads(proc.stdout)
    return data


def accuracy(result: dict[str, Any], ref: dict[str, Any]) -> tuple[float, str]:
    """Largest relative percentile error over overall and per-endpoint p50..p99; and where."""
    worst, where = 0.0, ""
    pairs = [("total", result["total"], ref["total"])]
    pairs += [(k, result["endpoints"].get(k, {}), v) for k, v in ref["endpoints"].items()]
    for label, got, exact in pairs:
        for q in ndjson_gen.QUANTILES:
            if q not in got:
                return float("inf"), f"{label} missing"
            err = abs(got[q] - exact[q]) / exact[q] if exact[q] else abs(got[q])
            if err > worst:
                worst, where = err, f"{label} {q}: {got[q]} vs exact {exact[q]}"
    return worst, where


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def report(path: Path, rounds: int, with_json: bool) -> bool:
    ref = json.loads(ndjson_gen.reference_path(path).read_text(encoding="utf-8"))
    size_gb = path.stat().st_size / 1e9
    print(f"file: {path} ({size_gb:.2f} GB, {ref['requests']:,} requests)")
    runs: dict[str, list[dict[str, Any]]] = {"plain": [], "ci-perf": []}
    measure("plain", path)  # warm the page cache so that the first timed run is not the only cold one
    for r in range(rounds):
        for mode in ("plain", "ci-perf") if r % 2 == 0 else ("ci-perf", "plain"):
            runs[mode].append(last := measure(mode, path))
            print(f"  round {r + 1} {mode:8s} {last['seconds']:7.2f} s  peak {last['peak_mb']:6.1f} MB")
    plain_s = statistics.median(x["seconds"] for x in runs["plain"])
    ours_s = statistics.median(x["seconds"] for x in runs["ci-perf"])
    peak = max(x["peak_mb"] for x in runs["ci-perf"])
    plain_peak = max(x["peak_mb"] for x in runs["plain"])
    result = runs["ci-perf"][-1]["result"]
    err, where = accuracy(result, ref)
    ratio = ours_s / plain_s
    counted = result["points"] == ref["requests"]
    print(f"plain line loop:  {plain_s:.2f} s ({size_gb / plain_s:.2f} GB/s), peak {plain_peak:.1f} MB")
    print(f"ci-perf reader:   {ours_s:.2f} s ({ref['requests'] / ours_s:,.0f} requests/s), peak {peak:.1f} MB")
    if with_json:
        naive = measure("json", path)
        print(
            f"json.loads/line:  {naive['seconds']:.2f} s, peak {naive['peak_mb']:.1f} MB "
            f"({naive['seconds'] / plain_s:.1f}x plain)"
        )
    ok_ratio, ok_peak, ok_err = ratio <= MAX_RATIO, peak < MAX_PEAK_MB, err <= MAX_ERROR and counted
    print(f"time ratio ci-perf/plain = {ratio:.2f} (target <= {MAX_RATIO}): {verdict(ok_ratio)}")
    print(f"peak memory {peak:.1f} MB (target < {MAX_PEAK_MB:.0f} MB): {verdict(ok_peak)}")
    print(
        f"percentile error max {err:.3%} ({where}); {result['points']:,} of {ref['requests']:,} "
        f"requests counted (target <= {MAX_ERROR:.1%}, all counted): {verdict(ok_err)}"
    )
    return ok_ratio and ok_peak and ok_err


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--file", type=Path, help="an existing file from bench/ndjson_gen.py (with its reference)")
    p.add_argument("--requests", type=int, default=1_000_000)
    p.add_argument("--gzip", action="store_true", help="generate a gzipped file, as ci-perf's k6 runner writes")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--json", action="store_true", help="also time json.loads on every line (slow)")
    p.add_argument("--tmp", type=Path, default=Path(tempfile.gettempdir()), help="where to generate the file")
    p.add_argument("--worker", nargs=2, metavar=("MODE", "FILE"), help=argparse.SUPPRESS)
    args = p.parse_args()
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # stopped: still clean up (nginx, temp files)
    if args.worker:
        worker(args.worker[0], Path(args.worker[1]))
        return 0
    if args.file:
        return 0 if report(args.file, args.rounds, args.json) else 1
    need = args.requests * 3600 // (8 if args.gzip else 1)
    free = shutil.disk_usage(args.tmp).free
    if free < need * 1.2:
        raise SystemExit(
            f"{args.tmp} has {free / 1e9:.1f} GB free; the file needs ~{need / 1e9:.1f} GB "
            "(use --tmp, --requests or --gzip)"
        )
    with tempfile.TemporaryDirectory(prefix="ci-perf-ndjson-", dir=args.tmp) as tmp:
        path = Path(tmp) / ("k6.ndjson.gz" if args.gzip else "k6.ndjson")
        # In a child: a child's peak RSS starts at its parent's size (Linux keeps it across exec), so the
        # measuring parent must stay small.
        gen = [
            sys.executable,
            str(Path(__file__).with_name("ndjson_gen.py")),
            str(path),
            "--requests",
            str(args.requests),
            *(["--gzip"] if args.gzip else []),
        ]
        started = time.perf_counter()
        subprocess.run(gen, check=True, stdout=subprocess.DEVNULL)
        print(f"generated in {time.perf_counter() - started:.1f} s")
        return 0 if report(path, args.rounds, args.json) else 1  # the folder and file go when it closes


if __name__ == "__main__":
    sys.exit(main())
