"""The subcommands, one function each, with explicit arguments; each returns an exit code."""

from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path

from ci_perf import pipeline
from ci_perf.config import Settings, parse_duration
from ci_perf.errors import EXIT_GATE_FAILED, EXIT_OK, ConfigError, ResultError, RunnerError
from ci_perf.model import RunResult, Tool
from ci_perf.observe.model import SystemMetrics
from ci_perf.scenarios.catalog import SCENARIOS


def scenarios() -> int:
    rows = [("NAME", "USERS", "SPAWN/S", "DURATION", "TOOLS", "PURPOSE")]
    for s in SCENARIOS.values():
        rows.append((s.name, str(s.users), f"{s.spawn_rate:g}", _fmt_duration(s.duration_s), "locust, k6", s.purpose))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "  " + row[-1])
    return EXIT_OK


def _fmt_duration(seconds: int) -> str:
    m, s = divmod(seconds, 60)
    return f"{m}m{s:02d}s" if m and s else f"{m}m" if m else f"{s}s"


def run(settings: Settings) -> int:
    from ci_perf import ab

    if ab.wanted(settings.baseline) and not settings.shard:  # the base measured here, side by side
        return ab.run(settings, os.environ)
    if not settings.shard:
        return pipeline.run(settings)
    # A shard carries 1/N of the load: its throughput fails every rate threshold, and its comment would
    # show a fraction of the numbers. The verdict and the publishing belong to `ci-perf merge`.
    code = pipeline.run(replace(settings, publish="files", baseline=""))
    print(
        f"ci-perf: shard {settings.shard}: not gating or publishing on its own; combine the shards with "
        "`ci-perf merge */results.json`",
        flush=True,
    )
    return EXIT_OK if code == EXIT_GATE_FAILED else code


def worker(settings: Settings, master_host: str, master_port: int) -> int:
    """`ci-perf worker`: a Locust worker for a master on another host (`ci-perf run --master`)."""
    from ci_perf.auth import Auth
    from ci_perf.runners.base import RunSpec
    from ci_perf.runners.locust_dist import run_worker

    if settings.tool != "locust":
        raise ConfigError("ci-perf worker runs Locust workers; k6 scales out with `ci-perf run --shard i/N`")
    spec = RunSpec(
        scenario=pipeline.scenario_for(settings),
        host="",
        raw_dir=settings.report_dir / "raw",
        auth=Auth.from_env(os.environ),
        script=settings.script,
    )
    print(f"ci-perf: Locust worker for {settings.scenario}, master {master_host}:{master_port}", flush=True)
    with pipeline.sigterm_as_interrupt():
        code = run_worker(spec, master_host, master_port)
    if code != 0:
        raise RunnerError(f"the Locust worker exited with code {code}; see its output above")
    return EXIT_OK


def up(settings: Settings) -> int:
    """Bring the stack up and keep it until Ctrl-C or SIGTERM; then tear it all down."""
    auth = pipeline.auth_for(settings, os.environ)
    config = pipeline.stack_config(settings, auth.api_key)
    with pipeline.sigterm_as_interrupt(), pipeline.running_stack(config) as info:
        print(f"ci-perf: stack is up (run id {config.run_id})")
        print(f"  API:      {info.base_url}")
        if info.database_url:
            print(f"  database: {pipeline.public_host(info.database_url)}")
        if info.redis_url:
            print(f"  redis:    {info.redis_url}")
        print(f"  logs:     {config.log_dir.resolve()}")
        print("ci-perf: press Ctrl-C to stop it", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            print("ci-perf: stopping the stack", flush=True)
    return EXIT_OK


def down(run_id: str | None, everything: bool, force: bool = False) -> int:
    from ci_perf.services.docker import cleanup_docker
    from ci_perf.services.local import cleanup_local

    wanted = None if everything else run_id
    done = cleanup_local(wanted, force)
    try:
        done.add(cleanup_docker(wanted, force))
    except Exception as exc:  # no engine here: nothing of ours can be running in it either
        print(f"ci-perf: docker not reachable ({type(exc).__name__}); skipped containers")
    for item in done.removed:
        print(f"removed {item}")
    for run, reason in sorted(done.skipped.items()):
        print(f"ci-perf: skipped run {run}: {reason}; `ci-perf down --run-id {run} --force` removes it anyway")
    print(f"ci-perf: removed {len(done.removed)} item(s)" + (f", skipped {len(done.skipped)} live run(s)"
                                                             if done.skipped else ""))  # fmt: skip
    return EXIT_OK


def report(results: Path, report_dir: Path | None) -> int:
    outcome = pipeline.load_outcome(results)
    folder = report_dir or results.parent
    written = pipeline.write_outputs(outcome, folder, [])
    for name in sorted(written):
        print(written[name])
    return EXIT_OK


def publish_saved(results: Path, target: str, comment_only: bool, fail_on_regression: bool | None) -> int:
    from ci_perf.publish import publish_outcome

    outcome = pipeline.load_outcome(results)
    if fail_on_regression is not None:  # asked for on this command line: judge with it
        outcome = replace(outcome, gating=replace(outcome.gating, fail_on_regression=fail_on_regression))
    env = os.environ
    if target == "auto":
        target = "github" if env.get("GITHUB_ACTIONS") else "gitlab" if env.get("GITLAB_CI") else "github"
    settings = Settings(
        scenario=outcome.result.meta.scenario,
        tool=outcome.result.meta.tool,
        report_dir=results.parent,
        fail_on_regression=outcome.gating.fail_on_regression,
    )
    written = {p.name: p for p in results.parent.iterdir() if p.is_file()}
    publish_outcome(target, outcome, settings, written, env, comment_only=comment_only)
    return EXIT_OK


def baseline_save(results: Path, output: Path) -> int:
    from ci_perf.baseline import save_baseline

    outcome = pipeline.load_outcome(results)
    save_baseline(outcome.result, output)
    print(f"ci-perf: baseline saved to {output}")
    return EXIT_OK


def baseline_show(source: str) -> int:
    from ci_perf.baseline import describe_baseline, load_baseline

    spec = source if ":" in source or source in ("github-artifact", "gitlab-artifact") else f"file:{source}"
    result = load_baseline(spec)
    if result is None:
        print(f"ci-perf: no baseline at {source}")
        return 1
    print(describe_baseline(result))
    return EXIT_OK


def demo(duration: str, report_dir: Path) -> int:
    """The README's demo: the demo target on a local stack, smoke_test with Locust, then k6."""
    # Both tools before anything starts: a missing one should not surface after the Locust half.
    from ci_perf.runners.k6 import find_k6
    from ci_perf.runners.locust import find_locust

    find_locust()
    find_k6()
    codes = []
    tools: tuple[Tool, ...] = ("locust", "k6")
    for tool in tools:
        settings = Settings(
            scenario="smoke_test",
            tool=tool,
            backend="local",
            duration_s=parse_duration(duration),
            report_dir=report_dir / tool,
        )
        codes.append(pipeline.run(settings))
    print(f"ci-perf: demo reports in {report_dir.resolve()}/locust and {report_dir.resolve()}/k6")
    return max(codes)


def merge(results: list[Path], report_dir: Path, config: Path | None) -> int:
    """`ci-perf merge`: shard/worker results.json files -> one result, judged and rendered again."""
    from ci_perf.config import build_settings
    from ci_perf.merge import merge_results, unlike_parts

    parts = [(str(path), pipeline.load_outcome(path).result) for path in results]
    merged = merge_results(parts)
    if unlike := unlike_parts(parts):
        pipeline.eprint(f"ci-perf: warning: the merged parts differ ({unlike}); check they belong to one run")
    meta = merged.meta
    settings = build_settings(
        {"scenario": meta.scenario, "tool": meta.tool, "report_dir": report_dir}, config_file=config
    )
    baseline = pipeline.load_baseline_for(settings)
    if meta.labels.get("shards_missing"):
        pipeline.eprint(f"ci-perf: warning: shard(s) {meta.labels['shards_missing']} missing from the merge")
    pipeline.warn_lost_workers(meta)
    print(
        f"ci-perf: merged {len(parts)} results: {merged.total.requests} requests, "
        f"p95 {merged.total.p95_ms:g} ms, {merged.total.rps:.1f} req/s"
    )
    return _judge_saved(settings, merged, None, baseline)


def compare(
    base: Path,
    head: Path,
    report_dir: Path | None,
    config: Path | None,
    fail_on_regression: bool | None,
    min_effect: str | None,
) -> int:
    """`ci-perf compare BASE HEAD`: HEAD judged with BASE as its baseline, as a run would judge it
    (thresholds, findings, the comparison, one Verdict), from the two saved files alone."""
    from ci_perf.baseline import load_result_file, load_saved
    from ci_perf.config import build_settings

    try:
        result, system = load_saved(head)
        baseline = load_result_file(base)
    except ResultError as exc:
        raise ResultError(
            f"{exc}; compare takes the results.json of two ci-perf runs (or `ci-perf baseline save` files)"
        ) from None
    meta = result.meta
    cli = {"scenario": meta.scenario, "tool": meta.tool, "report_dir": report_dir, "baseline": f"file:{base}",
           "fail_on_regression": fail_on_regression, "min_effect": min_effect}  # fmt: skip
    settings = build_settings(cli, config_file=config)
    pipeline.check_report_dir(settings.report_dir)
    print(f"ci-perf: {head} judged against {base}")
    return _judge_saved(settings, result, system, baseline)


def _judge_saved(settings: Settings, result: RunResult, system: SystemMetrics | None,
                 baseline: RunResult | None) -> int:  # fmt: skip
    """The stages after a run's load, on a result that was already measured: evaluate, write every
    report, print the verdict; its exit code."""
    from ci_perf.scenarios.catalog import get_scenario

    meta = result.meta
    scenario = get_scenario(meta.scenario).with_load(meta.users, meta.spawn_rate, int(meta.duration_s))
    outcome = pipeline.evaluate(settings, scenario, result, system, baseline)
    written = pipeline.write_outputs(outcome, settings.report_dir, [])
    pipeline.print_verdict(outcome, settings.report_dir, written)
    return outcome.verdict.exit_code
