"""How often does the baseline comparison cry wolf, and how often does it catch a real regression?

Runs real ci-perf runs against tests/sark_stub.py (or --host for A/A only):

  baseline   one run of the target with --base-latency-ms
  A/A        --trials runs of the same target, compared with the baseline: any DEGRADED is a false alarm
  A/B        --trials runs with --inject-ms more latency: any DEGRADED is a detection

and prints the false-alarm rate and the detection rate. Every run's results.json is kept under --out,
and verdicts are recomputed from them with ci_perf.compare (not read from the runs' own comparison),
so `--rates-only DIR` re-scores saved trials with other --alpha / --min-effect without rerunning.

  python bench/verdict_trials.py --trials 10 --duration 60s --out /tmp/verdict-trials
  python bench/verdict_trials.py --rates-only /tmp/verdict-trials --alpha 0.05

--same-runner puts both methods side by side, in one run of this script, on one tiny API in a git
repository (bench/ab_ab_target.py: a base commit, a commit that changes nothing, a commit ~20% slower):

  saved baseline   one run of the base saved; --trials runs of each later commit compared with it
                   (each as long as a side-by-side run's head rounds together, unless --duration)
  same runner      --trials `ci-perf run --baseline ref:BASE` of each later commit (--rounds rounds)

The trials alternate between the methods, so drift of the machine reaches both; false alarms are
counted on the unchanged commit, detections on the slow one, each a `degraded` anywhere.

  python bench/verdict_trials.py --same-runner --trials 10 --out /tmp/ab-trials

Needs the `ci-perf run` CLI and the runner extras (locust or k6). The default 60 s duration gives
about a dozen 5 s windows per run; with fewer than 5 steady windows every verdict is inconclusive.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import ab_target  # bench/ is the script's folder, first on sys.path
import requests

from ci_perf.baseline import load_result_file
from ci_perf.compare import compare
from ci_perf.config import parse_duration
from ci_perf.model import Change, RunResult
from ci_perf.paired import compare_paired
from ci_perf.pipeline import load_outcome

ROOT = Path(__file__).resolve().parent.parent
STUB = ROOT / "tests" / "sark_stub.py"


@dataclass(frozen=True)
class Rates:
    aa_trials: int
    false_alarms: int
    ab_trials: int
    detections: int

    @property
    def false_alarm_rate(self) -> float:
        return self.false_alarms / self.aa_trials if self.aa_trials else 0.0

    @property
    def detection_rate(self) -> float:
        return self.detections / self.ab_trials if self.ab_trials else 0.0

    def summary(self) -> str:
        return (
            f"false-alarm rate {self.false_alarms}/{self.aa_trials} = {self.false_alarm_rate:.1%} (A/A); "
            f"detection rate {self.detections}/{self.ab_trials} = {self.detection_rate:.1%} (A/B)"
        )


def flagged(current: RunResult, baseline: RunResult, min_effect: float, alpha: float) -> bool:
    """What a user sees as 'this PR regressed': any DEGRADED verdict."""
    cmp_ = compare(current, baseline, "file:baseline", min_effect=min_effect, alpha=alpha)
    return any(d.change is Change.DEGRADED for d in cmp_.deltas)


def score(
    baseline: RunResult, aa: Sequence[RunResult], ab: Sequence[RunResult], min_effect: float = 0.10, alpha: float = 0.01
) -> Rates:
    return Rates(
        aa_trials=len(aa),
        false_alarms=sum(flagged(r, baseline, min_effect, alpha) for r in aa),
        ab_trials=len(ab),
        detections=sum(flagged(r, baseline, min_effect, alpha) for r in ab),
    )


def rates_from_dir(out: Path, min_effect: float = 0.10, alpha: float = 0.01) -> Rates:
    """Score saved trials: out/baseline/results.json, out/aa-*/results.json, out/ab-*/results.json."""

    def load(kind: str) -> list[RunResult]:
        return [load_result_file(p) for p in sorted(out.glob(f"{kind}-*/results.json"))]

    return score(load_result_file(out / "baseline" / "results.json"), load("aa"), load("ab"), min_effect, alpha)


# --- running real trials ------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def stub(latency_ms: float) -> Iterator[str]:
    port = _free_port()
    proc = subprocess.Popen([sys.executable, str(STUB), "--port", str(port), "--latency-ms", str(latency_ms)])
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                requests.get(url + "/health/", timeout=1)
                break
            except requests.ConnectionError:
                time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def run_once(args: argparse.Namespace, host: str, report_dir: Path, baseline: Path | None) -> RunResult:
    cmd = [
        args.ci_perf,
        "run",
        "--scenario",
        args.scenario,
        "--tool",
        args.tool,
        "--backend",
        "external",
        "--host",
        host,
        "--users",
        str(args.users),
        "--duration",
        args.duration,
        "--report-dir",
        str(report_dir),
    ]
    if baseline is not None:
        cmd += ["--baseline", str(baseline)]
    code = subprocess.run(cmd, check=False).returncode
    if code not in (0, 1):  # 1 is a failed gate, a normal outcome here
        raise SystemExit(f"ci-perf run exited {code}: {' '.join(cmd)}")
    return load_result_file(report_dir / "results.json")


def run_trials(args: argparse.Namespace) -> Rates:
    out: Path = args.out
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    with stub(args.base_latency_ms) as url:
        host = args.host or url
        run_once(args, host, out / "baseline", None)
        base_file = out / "baseline" / "results.json"
        for i in range(args.trials):
            run_once(args, host, out / f"aa-{i}", base_file)
    if not args.host:
        with stub(args.base_latency_ms + args.inject_ms) as url:
            for i in range(args.trials):
                run_once(args, url, out / f"ab-{i}", base_file)
    return rates_from_dir(out, args.min_effect, args.alpha)


# --- same-runner A/B next to the saved baseline, on one tiny API (issue 15 item 5) --------------


def side_by_side_flagged(results: Path, min_effect: float) -> bool:
    """Any DEGRADED, recomputed from the rounds the run kept (not read from its own comparison)."""
    ab = load_outcome(results).side_by_side
    if ab is None:
        raise SystemExit(f"{results} is not a same-runner result")
    cmp_ = compare_paired(ab.base, ab.head, "ref:base", min_effect)
    return any(d.change is Change.DEGRADED for d in cmp_.deltas)


def same_runner_rates_from_dir(out: Path, min_effect: float = 0.10, alpha: float = 0.01) -> tuple[Rates, Rates]:
    """(saved baseline, same runner) from out/saved-{baseline,aa-*,ab-*} and out/side-{aa,ab}-*."""
    saved = load_result_file(out / "saved-baseline" / "results.json")

    def runs(kind: str) -> list[Path]:
        return sorted(out.glob(f"{kind}-*/results.json"))

    def saved_flags(kind: str) -> int:
        return sum(flagged(load_result_file(p), saved, min_effect, alpha) for p in runs(kind))

    def side_flags(kind: str) -> int:
        return sum(side_by_side_flagged(p, min_effect) for p in runs(kind))

    return (
        Rates(len(runs("saved-aa")), saved_flags("saved-aa"), len(runs("saved-ab")), saved_flags("saved-ab")),
        Rates(len(runs("side-aa")), side_flags("side-aa"), len(runs("side-ab")), side_flags("side-ab")),
    )


def run_in_tree(args: argparse.Namespace, tree: Path, report_dir: Path, extra: Sequence[str]) -> None:
    cmd = [args.ci_perf, "run", "--preset", "none", "--scenario", "smoke_test", "--script", str(args.locustfile),
           "--users", str(args.users), "--spawn-rate", str(args.users), "--api-command",
           ab_target.API_COMMAND,
           "--health-path", "/health/", "--window", "1", "--report-dir", str(report_dir), "--publish", "files",
           *extra]  # fmt: skip
    code = subprocess.run(cmd, cwd=tree, check=False).returncode
    if code not in (0, 1):
        raise SystemExit(f"ci-perf run exited {code} in {tree}: {' '.join(cmd)}")


def run_same_runner_trials(args: argparse.Namespace) -> tuple[Rates, Rates]:
    out: Path = args.out
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    latency = args.base_latency_ms
    base, same, slow = ab_target.make_repo(out / "repo", [
        ("base", latency), ("unchanged (a comment)", latency), ("slower", latency * (1 + args.slowdown))])  # fmt: skip
    trees = {}
    for name, commit in (("base", base), ("same", same), ("slow", slow)):
        trees[name] = out / f"tree-{name}"
        ab_target.git(out / "repo", "worktree", "add", "--detach", "--quiet", str(trees[name]), commit)
    args.locustfile = ab_target.write_locustfile(out / "locustfile.py")
    saved = out / "saved-baseline"
    run_in_tree(args, trees["base"], saved, ["--duration", args.duration])
    for i in range(args.trials):  # the methods take turns: drift of the machine reaches both
        for kind, tree in (("aa", trees["same"]), ("ab", trees["slow"])):
            run_in_tree(args, tree, out / f"saved-{kind}-{i:02d}",
                        ["--duration", args.duration, "--baseline", f"file:{saved / 'results.json'}"])  # fmt: skip
            side = ["--duration", args.round_duration, "--rounds", str(args.rounds), "--baseline", f"ref:{base}"]
            run_in_tree(args, tree, out / f"side-{kind}-{i:02d}", side)
    return same_runner_rates_from_dir(out, args.min_effect, args.alpha)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--trials", type=int, default=5)
    p.add_argument("--scenario", default="smoke_test")
    p.add_argument("--tool", default="locust", choices=("locust", "k6"))
    p.add_argument("--users", type=int, default=5)
    p.add_argument("--duration", default="60s")
    p.add_argument("--base-latency-ms", type=float, default=10.0)
    p.add_argument("--inject-ms", type=float, default=5.0, help="extra latency of the A/B target")
    p.add_argument("--host", default="", help="an already running target (A/A trials only)")
    p.add_argument("--out", type=Path, default=Path("verdict-trials"))
    p.add_argument("--rates-only", type=Path, metavar="DIR", help="score saved trials, run nothing")
    p.add_argument("--min-effect", type=float, default=0.10)
    p.add_argument("--alpha", type=float, default=0.01)
    p.add_argument("--ci-perf", default=shutil.which("ci-perf") or "ci-perf")
    p.add_argument("--same-runner", action="store_true", help="both methods on a tiny API in a git repository")
    p.add_argument("--slowdown", type=float, default=0.25, help="--same-runner: the slow commit's extra sleep")
    p.add_argument("--rounds", type=int, default=10, help="--same-runner: rounds per side-by-side run")
    p.add_argument("--round-duration", default="4s", help="--same-runner: each round's duration")
    args = p.parse_args(argv)
    if args.same_runner:
        if args.duration == "60s":  # a saved-baseline run as long as the head's rounds together: the same load time
            args.duration = f"{args.rounds // 2 * parse_duration(args.round_duration)}s"
        if args.users == 5:
            args.users = 4
        saved, side = (same_runner_rates_from_dir(args.rates_only, args.min_effect, args.alpha) if args.rates_only
                       else run_same_runner_trials(args))  # fmt: skip
        print(f"saved baseline: {saved.summary()}")
        print(f"same runner:    {side.summary()}")
        return 0
    rates = rates_from_dir(args.rates_only, args.min_effect, args.alpha) if args.rates_only else run_trials(args)
    print(rates.summary())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
