"""The command line: one subcommand -> one function with explicit arguments -> exit code.

Errors a user can fix become one line on stderr (CiPerfError); anything else is a bug, reported in
one line with the traceback written to ci-perf.log in the report folder.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ci_perf import __version__
from ci_perf.config import Settings, build_settings
from ci_perf.config_schema import BACKEND_CHOICES
from ci_perf.errors import EXIT_INFRA, EXIT_OK, EXIT_USAGE, CiPerfError, ConfigError
from ci_perf.inputcheck import error_annotation
from ci_perf.model import TOOLS

EXIT_INTERRUPTED = 130


def _add_load_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scenario", "-s", help="scenario name (see `ci-perf scenarios`)")
    p.add_argument("--tool", "-t", choices=TOOLS, help="load tool (default locust)")
    p.add_argument("--users", "-u", type=int, help="override the scenario's users")
    p.add_argument("--spawn-rate", "-r", type=float, help="override the scenario's spawn rate (users/s)")
    p.add_argument("--duration", "-d", help="override the scenario's duration (30s, 5m, 1h)")
    p.add_argument("--script", type=Path, help="your own locustfile or k6 script instead of ours")
    p.add_argument(
        "--processes", type=int, help="Locust processes on this machine (default: one per core, at most one per user)"
    )
    p.add_argument("--window", dest="window_s", type=float, help="time-series window in seconds")


def _add_scale_out_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workers", type=int, help="Locust: a master plus N worker processes on this machine")
    p.add_argument(
        "--master",
        action="store_true",
        default=None,
        help="Locust: run only the master; remote `ci-perf worker`s connect to it",
    )
    p.add_argument("--expect-workers", type=int, help="with --master: workers to wait for (default 1)")
    p.add_argument("--shard", help="k6: run execution segment i of N (i/N, e.g. 1/4); merge with `ci-perf merge`")
    p.add_argument(
        "--histogram",
        action="store_true",
        default=None,
        help="k6: also record exact latency histograms (always on with --shard)",
    )


def _add_stack_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", "-c", type=Path, help="ci-perf.yml (default ./ci-perf.yml when present)")
    p.add_argument(
        "--preset",
        choices=("sark", "none"),
        help="wire the stack and auth for a known API (default: sark with the bundled demo API)",
    )
    p.add_argument(
        "--backend",
        "-b",
        choices=BACKEND_CHOICES,
        help="where the system under test runs (default: external with --host, else local; "
        "auto: docker where a Docker engine answers, else local)",
    )
    p.add_argument("--host", help="base URL of an already running API (external backend)")
    p.add_argument("--report-dir", "-o", type=Path, help="report folder (default ./reports)")
    p.add_argument("--health-path", help="health endpoint path (default /health/)")
    p.add_argument("--health-timeout", help="how long to wait for health (default 120s)")
    p.add_argument("--db-image", help="database image (docker backend)")
    p.add_argument("--redis-image", help="Redis image (docker backend)")
    p.add_argument("--api-image", help="API image (docker backend; default: the demo target)")
    p.add_argument(
        "--docker-network",
        choices=("host", "bridge"),
        help="docker backend: host networking (default) or a per-run bridge network",
    )
    p.add_argument("--api-build-context", help="build the API image from this folder (docker backend)")
    p.add_argument("--api-command", help="API command (local backend; default: the demo target)")
    p.add_argument(
        "--api-env",
        action="append",
        metavar="KEY=VALUE",
        help="API environment, repeatable; adds to CI_PERF_API_ENV and ci-perf.yml (later wins per key)",
    )
    p.add_argument("--migrate-command", help="run after the database is up, before the API")
    p.add_argument("--seed-command", help="run after the API is healthy, before the test")


def _add_judge_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--baseline",
        help="file:PATH | github-artifact | gitlab-artifact | comment; or measure the base side by side on this "
        "runner: ref:REF | same-job | image:REF",
    )
    p.add_argument("--rounds", type=int, help="side by side: rounds in all, even, at least 10 (default 10)")
    p.add_argument(
        "--fail-on-regression",
        action="store_true",
        default=None,
        help="exit 1 when a metric degraded against the baseline",
    )
    p.add_argument("--min-effect", help="smallest change that counts as a regression (default 10%%)")
    p.add_argument(
        "--publish",
        choices=("auto", "github", "gitlab", "files", "none"),
        help="where results go besides files (default auto: the CI you run in)",
    )
    p.add_argument(
        "--no-comment",
        dest="comment",
        action="store_false",
        default=None,
        help="no sticky PR/MR comment (job summary, outputs and annotations still written)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ci-perf", description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--version", action="version", version=f"ci-perf {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    sub.add_parser("scenarios", help="list the scenarios")
    run = sub.add_parser("run", help="bring up the stack, run a scenario, judge and publish")
    _add_load_options(run)
    _add_scale_out_options(run)
    _add_stack_options(run)
    _add_judge_options(run)
    worker = sub.add_parser("worker", help="Locust: run one worker for a `ci-perf run --master` elsewhere")
    worker.add_argument("--master-host", required=True, help="host of the Locust master")
    worker.add_argument("--master-port", type=int, default=5557, help="its port (default 5557)")
    for flag, text in (("--scenario", "scenario name (the master's)"), ("--script", "your own locustfile")):
        worker.add_argument(flag, type=Path if flag == "--script" else str, help=text)
    worker.add_argument("--config", "-c", type=Path, help="ci-perf.yml (default ./ci-perf.yml when present)")
    worker.add_argument("--report-dir", "-o", type=Path, help="where the worker's log goes (default ./reports)")
    merge = sub.add_parser("merge", help="combine shard/worker results.json files into one result and reports")
    merge.add_argument("results", type=Path, nargs="+", help="results.json of each shard or separate run")
    merge.add_argument("--report-dir", "-o", type=Path, default=Path("reports/merged"))
    merge.add_argument("--config", "-c", type=Path, help="ci-perf.yml with thresholds (default ./ci-perf.yml)")
    cmp = sub.add_parser("compare", help="judge a saved result against another as its baseline, running nothing")
    cmp.add_argument("base", type=Path, help="the baseline: a results.json or a saved baseline (`baseline save`)")
    cmp.add_argument("head", type=Path, help="the result to judge: a results.json")
    cmp.add_argument("--report-dir", "-o", type=Path, help="where every report goes (default ./reports)")
    cmp.add_argument("--config", "-c", type=Path, help="ci-perf.yml with thresholds (default ./ci-perf.yml)")
    cmp.add_argument("--fail-on-regression", action="store_true", default=None, help="exit 1 when a metric degraded")
    cmp.add_argument("--min-effect", help="smallest change that counts as a regression (default 10%%)")
    up = sub.add_parser("up", help="bring up the stack and keep it running until Ctrl-C")
    _add_stack_options(up)
    down = sub.add_parser("down", help="remove what a killed run left behind")
    group = down.add_mutually_exclusive_group(required=True)
    group.add_argument("--run-id", help="the run id printed when the run started")
    group.add_argument("--all", action="store_true", help="everything ci-perf started")
    down.add_argument("--force", action="store_true", help="also runs whose ci-perf is still running")
    report = sub.add_parser("report", help="re-render every report from a saved results.json")
    report.add_argument("results", type=Path)
    report.add_argument("--report-dir", "-o", type=Path, help="default: the results file's folder")
    for name, text in (("comment", "post the sticky PR/MR comment"), ("publish", "publish everything")):
        p = sub.add_parser(name, help=f"{text} from a saved results.json")
        p.add_argument("results", type=Path)
        p.add_argument("--publish", choices=("auto", "github", "gitlab"), default="auto")
        p.add_argument("--fail-on-regression", action="store_true", default=None)
    baseline = sub.add_parser("baseline", help="save or show a baseline")
    bsub = baseline.add_subparsers(dest="baseline_command", metavar="ACTION")
    bsub.required = True
    save = bsub.add_parser("save", help="save a run's result as the baseline")
    save.add_argument("results", type=Path)
    save.add_argument("--output", type=Path, default=Path("ci-perf-baseline.json"))
    show = bsub.add_parser("show", help="print a baseline's summary")
    show.add_argument("source", help="file:PATH | PATH | github-artifact | gitlab-artifact")
    demo = sub.add_parser("demo", help="the demo: local stack, smoke_test with Locust and k6")
    demo.add_argument("--duration", "-d", default="15s")
    demo.add_argument("--report-dir", "-o", type=Path, default=Path("reports/demo"))
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    keys = set(Settings.__dataclass_fields__) | {"duration", "health_timeout"}
    cli: dict[str, Any] = {k: v for k, v in vars(args).items() if k in keys}
    if getattr(args, "api_env", None):
        cli["api_env"] = _pairs(args.api_env)
    return build_settings(cli, config_file=getattr(args, "config", None))


def _pairs(items: Sequence[str]) -> dict[str, str]:
    out = {}
    for item in items:
        key, found, value = item.partition("=")
        if not found or not key:
            raise ConfigError(f"--api-env {item!r} must look like KEY=VALUE")
        out[key] = value
    return out


def dispatch(args: argparse.Namespace) -> int:
    from ci_perf import commands

    handlers = {
        "scenarios": lambda: commands.scenarios(),
        "run": lambda: commands.run(_settings(args)),
        "up": lambda: commands.up(_settings(args)),
        "down": lambda: commands.down(args.run_id, args.all, args.force),
        "report": lambda: commands.report(args.results, args.report_dir),
        "comment": lambda: commands.publish_saved(args.results, args.publish, True, args.fail_on_regression),
        "publish": lambda: commands.publish_saved(args.results, args.publish, False, args.fail_on_regression),
        "demo": lambda: commands.demo(args.duration, args.report_dir),
        "worker": lambda: commands.worker(_settings(args), args.master_host, args.master_port),
        "merge": lambda: commands.merge(args.results, args.report_dir, args.config),
        "compare": lambda: commands.compare(
            args.base, args.head, args.report_dir, args.config, args.fail_on_regression, args.min_effect
        ),
    }
    if args.command == "baseline":
        if args.baseline_command == "save":
            return commands.baseline_save(args.results, args.output)
        return commands.baseline_show(args.source)
    return handlers[args.command]()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return dispatch(args)
    except CiPerfError as exc:
        annotation = error_annotation(exc, os.environ) if isinstance(exc, ConfigError) else None
        if annotation:  # on GitHub a bad setting is also an annotation, as in the action's input check
            print(annotation, flush=True)
        print(f"ci-perf: error: {exc}", file=sys.stderr, flush=True)
        return exc.exit_code
    except KeyboardInterrupt:
        print("ci-perf: interrupted; everything it started has been stopped", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED
    except Exception as exc:  # a bug, not a user's mistake: one line here, the traceback in the log
        log = _crash_log(args)
        print(f"ci-perf: internal error: {type(exc).__name__}: {exc} (traceback in {log})", file=sys.stderr)
        return EXIT_INFRA


def _crash_log(args: argparse.Namespace) -> Path:
    folder = getattr(args, "report_dir", None) or Path(os.environ.get("CI_PERF_REPORT_DIR", "reports"))
    folder.mkdir(parents=True, exist_ok=True)
    path = Path(folder) / "ci-perf.log"
    with path.open("a", encoding="utf-8") as f:
        f.write(traceback.format_exc())
    return path


__all__ = ["EXIT_OK", "EXIT_USAGE", "build_parser", "main"]
