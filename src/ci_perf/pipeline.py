"""One run as a pipeline of plain functions (docs/architecture.md):

Settings -> Stack up -> Runner -> RunArtifacts -> parser -> RunResult -> Evaluation + findings ->
Comparison -> Outcome (its Verdict) -> files (results.json and every report) -> publishers -> exit
code. The stack is torn down on every way out: success, failure, timeout, Ctrl-C and SIGTERM.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import signal
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, nullcontext
from dataclasses import replace
from pathlib import Path
from types import FrameType
from urllib.parse import urlsplit, urlunsplit

from ci_perf import presets
from ci_perf.analysis import findings_for
from ci_perf.auth import Auth, mask, mask_data, mask_files
from ci_perf.config import Settings
from ci_perf.errors import CiPerfError, ConfigError, ResultError, RunnerError, ServiceError
from ci_perf.jsonread import load_json
from ci_perf.model import (
    AGGREGATE,
    Comparison,
    EndpointStats,
    Evaluation,
    Gating,
    Infra,
    Outcome,
    RunMeta,
    RunResult,
    Status,
)
from ci_perf.observe import SystemMetrics, SystemSampler, Targets, targets_for
from ci_perf.parsers import get_parser
from ci_perf.probe import HealthProbe, wait_for_health
from ci_perf.runners import RunSpec, get_runner
from ci_perf.scenarios.catalog import Scenario, get_scenario
from ci_perf.services.base import StackConfig, StackInfo, get_backend
from ci_perf.tokens import JwtConfig, horizon_for, mint, new_secret, tokens_file


def scenario_for(settings: Settings) -> Scenario:
    return get_scenario(settings.scenario).with_load(settings.users, settings.spawn_rate, settings.duration_s)


def default_window_s(duration_s: float) -> float:
    """About twenty windows per run (the verdict statistics sample them), 1 s to 30 s each."""
    return float(max(1, min(30, round(duration_s / 20))))


def stack_config(settings: Settings, api_key: str, run_id: str | None = None,
                 jwt_secret: str | None = None) -> StackConfig:  # fmt: skip
    """The stack to start: the user's stack settings over the preset's (ci_perf.presets)."""
    preset = presets.resolve(settings.preset, settings.demo_api)
    api_env, databases, services = presets.stack_parts(preset, dict(settings.api_env), settings.databases,
                                                       dict(settings.services))  # fmt: skip
    if jwt_secret is None:
        plan = jwt_plan(settings, os.environ)
        jwt_secret = plan[1] if plan else ""
    config = StackConfig(
        backend=settings.resolved_backend,
        log_dir=settings.report_dir / "logs",
        host=settings.host,
        health_path=settings.health_path,
        health_timeout_s=settings.health_timeout_s,
        db_image=settings.db_image,
        redis_image=settings.redis_image,
        api_image=settings.api_image,
        docker_network="bridge" if settings.docker_network == "bridge" else "host",
        api_build_context=settings.api_build_context,
        api_command=settings.api_command,
        api_env=api_env,
        migrate_command=settings.migrate_command,
        seed_command=settings.seed_command,
        api_key=api_key,
        databases=databases,
        services=services,
        jwt_secret=jwt_secret,
    )
    return replace(config, run_id=run_id) if run_id else config


def jwt_plan(settings: Settings, env: Mapping[str, str]) -> tuple[JwtConfig, str] | None:
    """(how to mint, the signing secret) when ci-perf mints JWTs: auth.jwt, or the preset's. The secret
    comes from the env var the config names; a stack ci-perf starts gets a fresh one when it is unset."""
    preset = presets.resolve(settings.preset, settings.demo_api)
    config = settings.jwt or preset.jwt
    if config is None:
        return None
    secret = env.get(config.secret_env, "")
    if not secret and settings.resolved_backend == "external":
        raise ConfigError(f"ci-perf mints JWTs for this run but {config.secret_env} is not set; set it to the "
                          "API's JWT signing secret (or use --preset none with CI_PERF_BEARER_TOKEN)")  # fmt: skip
    return config, secret or new_secret()


def auth_for(settings: Settings, env: Mapping[str, str], plan: tuple[JwtConfig, str] | None = None) -> Auth:
    """Auth from the environment. A stack we start ourselves gets a fresh API key when none is given,
    unless ci-perf mints JWTs (then X-API-Key is sent only when CI_PERF_API_KEY asks for it)."""
    auth = Auth.from_env(env)
    if plan is not None:
        auth = replace(auth, masked=(*auth.masked, plan[1]))
    elif not auth.api_key and settings.resolved_backend != "external":
        auth = replace(auth, api_key=settings.api_key or "sk_ci_perf_" + secrets.token_hex(12))
    preset = presets.resolve(settings.preset, settings.demo_api)
    csrf = preset.csrf if settings.csrf is None else settings.csrf
    if csrf and not auth.csrf_token:  # SARK wants at least 32 characters
        auth = replace(auth, csrf_token=secrets.token_urlsafe(32))
    return auth


@contextmanager
def minted_tokens(plan: tuple[JwtConfig, str] | None, scenario: Scenario, run_id: str,
                  auth: Auth) -> Iterator[Auth]:  # fmt: skip
    """The run's JWTs in their private file (C5) for as long as the load runs; `auth` pointing at them."""
    if plan is None:
        yield auth
        return
    config, secret = plan
    peak = max([1.0, *(s.users_fraction for s in scenario.stages)])
    identities = config.identities or max(1, math.ceil(scenario.users * peak))
    tokens = mint(config, secret, identities, horizon_for(scenario.duration_s))
    with tokens_file(tokens, run_id) as path:
        yield replace(auth, tokens_file=str(path), masked=(*auth.masked, *tokens.all()))


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C so that every `finally` tears down what it started."""


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    def handler(signum: int, frame: FrameType | None) -> None:
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def running_stack(config: StackConfig) -> Iterator[StackInfo]:
    """The stack for the block; torn down on every way out. A stack that vanished while the block ran
    (another job's `ci-perf down --all --force`, the OOM killer) is an infrastructure error, whatever the
    block made of the load: this is where that is decided, before teardown hides it."""
    stack = get_backend(config)
    try:
        print(f"ci-perf: starting the {config.backend} stack (run id {config.run_id})", flush=True)
        info = stack.up()
        try:
            yield info
        except CiPerfError as exc:
            if gone := stack.gone():
                raise _went_away(gone) from exc
            raise
        if gone := stack.gone():
            raise _went_away(gone)
    finally:
        # Ctrl-C during teardown must not leave half of it behind.
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            stack.down()
        finally:
            signal.signal(signal.SIGINT, previous)


def _went_away(gone: list[str]) -> ServiceError:
    return ServiceError(
        f"the stack went away during the load: {'; '.join(gone)}; its results are not the API's. Was it "
        "stopped by another job's `ci-perf down --all --force`, or killed for memory? See its logs"
    )


def public_host(url: str) -> str:
    """The host as it may appear in reports: no user:password@."""
    parts = urlsplit(url)
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def run_load(settings: Settings, scenario: Scenario, host: str, auth: Auth, targets: Targets | None = None,
             run_id: str = "") -> tuple[RunResult, SystemMetrics | None]:  # fmt: skip
    """Health wait, the tool run with the availability probe and the system sampler beside it (when
    there is something to observe), and the parse."""
    health_url = host.rstrip("/") + settings.health_path
    wait_for_health(health_url, settings.health_timeout_s)
    window_s = settings.window_s or default_window_s(scenario.duration_s)
    spec = RunSpec(
        scenario=scenario,
        host=host.rstrip("/"),
        raw_dir=settings.report_dir / "raw",
        auth=auth,
        window_s=window_s,
        script=settings.script,
        processes=settings.processes,
        workers=settings.workers or 0,
        expect_workers=(settings.expect_workers or 1) if settings.master else 0,
        master_port=settings.master_port,
        shard=settings.shard,
        histogram=settings.histogram or bool(settings.shard),
        run_id=run_id,
    )
    print(
        f"ci-perf: {scenario.name} with {settings.tool}: {scenario.users} users for {scenario.duration_s}s "
        f"against {public_host(host)}",
        flush=True,
    )
    sampler = SystemSampler(targets) if targets else None
    with HealthProbe(health_url) as probe, sampler or nullcontext():
        artifacts = get_runner(settings.tool)(spec)
    meta = RunMeta(
        scenario=scenario.name,
        tool=settings.tool,
        tool_version=artifacts.tool_version,
        users=scenario.users,
        spawn_rate=scenario.spawn_rate,
        duration_s=float(scenario.duration_s),
        host=public_host(host),
        started_at=artifacts.started_at,
        window_s=window_s,
        commit=os.environ.get("GITHUB_SHA") or os.environ.get("CI_COMMIT_SHA", ""),
        ref=os.environ.get("GITHUB_HEAD_REF")
        or os.environ.get("GITHUB_REF_NAME")
        or os.environ.get("CI_COMMIT_REF_NAME", ""),
        labels={"shard": settings.shard} if settings.shard else {},
    )
    result = get_parser(settings.tool)(artifacts, meta)
    warn_lost_workers(result.meta)
    return replace(result, availability=probe.availability), sampler.metrics if sampler else None


def check_scale_out(settings: Settings) -> None:
    """Scale-out flags belong to one tool each; say so in one line rather than ignore them."""
    from ci_perf.errors import ConfigError

    locust_only = [
        f
        for f, on in (
            ("--workers", settings.workers),
            ("--master", settings.master),
            ("--expect-workers", settings.expect_workers),
        )
        if on
    ]
    if settings.tool == "k6" and locust_only:
        raise ConfigError(f"{', '.join(locust_only)} distribute Locust; with k6 use --shard i/N on each machine")
    if settings.tool == "locust" and settings.shard:
        raise ConfigError("--shard splits a k6 run; with Locust use --workers N or --master/--worker")
    if settings.script is not None and not settings.script.is_file():  # before the stack, not after it
        kind = "locustfile" if settings.tool == "locust" else "k6 script"
        raise ConfigError(f"--script {settings.script}: no such file; pass the path of your {kind}")
    if settings.expect_workers and not settings.master:
        raise ConfigError("--expect-workers goes with --master (for workers on this machine use --workers N)")


def warn_lost_workers(meta: RunMeta) -> None:
    lost = meta.labels.get("workers_lost")
    if lost:
        eprint(
            f"ci-perf: warning: {lost} of {meta.labels.get('workers', '?')} Locust worker(s) were lost during "
            f"the run ({meta.labels.get('workers_lost_ids', '')}); their unreported requests are missing"
        )


def evaluate(settings: Settings, scenario: Scenario, result: RunResult, system: SystemMetrics | None = None,
             baseline: RunResult | None = None) -> Outcome:  # fmt: skip
    """Thresholds, findings and the comparison with `baseline` (loaded by the caller, before the run)."""
    from ci_perf.thresholds import evaluate as evaluate_thresholds
    from ci_perf.thresholds import parse_thresholds

    thresholds = parse_thresholds(
        settings.thresholds, settings.scenario_thresholds, scenario_path=f"scenarios.{scenario.name}.thresholds"
    )
    db_query_ms = system.db_query_ms if system else None
    evaluation = evaluate_thresholds(result, thresholds, scenario, db_query_ms=db_query_ms)
    return Outcome(
        result=result,
        evaluation=evaluation,
        comparison=compare_to_baseline(settings, result, baseline),
        system=system,
        findings=findings_for(result, system, evaluation.checks),
        gating=gating_for(settings),
    )


def gating_for(settings: Settings) -> Gating:
    return Gating(fail_on_regression=settings.fail_on_regression, min_effect=settings.min_effect)


def load_baseline_for(settings: Settings) -> RunResult | None:
    """The baseline named in the settings, read before anything starts: a bad file is one line and
    exit 2 up front, not after the whole load; a missing one is said on stderr and the run goes on."""
    if not settings.baseline:
        return None
    from ci_perf.baseline import load_baseline

    return load_baseline(settings.baseline, scenario=settings.scenario, tool=settings.tool)


def compare_to_baseline(settings: Settings, result: RunResult, baseline: RunResult | None) -> Comparison | None:
    if baseline is None or not settings.baseline:
        return None
    from ci_perf.compare import compare

    return compare(result, baseline, source=settings.baseline, min_effect=settings.min_effect)


def masked(outcome: Outcome, secret_values: list[str]) -> Outcome:
    """The outcome with every secret masked in its texts (an echoing API puts them into error texts),
    once, before anything writes, prints or publishes it: on the raw texts, since an escaped secret no
    longer matches the raw one."""
    return Outcome.from_dict(mask_data(outcome.to_dict(), secret_values)) if secret_values else outcome


def write_outputs(outcome: Outcome, report_dir: Path, secret_values: list[str]) -> dict[str, Path]:
    """results.json and every rendered report of a `masked` outcome, secrets masked again in every file
    (a last line of defence)."""
    from ci_perf.reports import render_all

    report_dir.mkdir(parents=True, exist_ok=True)
    files = {"results.json": json.dumps(outcome.to_dict(), indent=2, sort_keys=True) + "\n"}
    files.update(render_all(outcome))
    written: dict[str, Path] = {}
    for name, content in files.items():
        path = report_dir / name
        path.write_text(mask(content, secret_values), encoding="utf-8")
        written[name] = path
    return written


def load_outcome(path: Path) -> Outcome:
    if not path.exists():
        raise ResultError(f"{path} does not exist; pass the results.json of a ci-perf run")
    data = load_json(path)  # ResultError naming the file: not UTF-8, not JSON, NaN
    if not isinstance(data, dict):
        raise ResultError(f"{path} is not a ci-perf results document (expected a JSON object)")
    try:
        outcome = Outcome.from_dict(data)
    except ResultError as exc:
        raise ResultError(f"{path}: {exc}") from None
    if "findings" not in data:  # written before findings were stored: compute them as the run would have
        outcome = replace(outcome, findings=findings_for(outcome.result, outcome.system, outcome.evaluation.checks))
    return outcome


def run(settings: Settings, env: Mapping[str, str] | None = None) -> int:
    """`ci-perf run`: the whole flow; returns the exit code."""
    env = os.environ if env is None else env
    check_scale_out(settings)
    scenario = scenario_for(settings)
    plan = jwt_plan(settings, env)
    auth = auth_for(settings, env, plan)
    config = stack_config(settings, auth.api_key, jwt_secret=plan[1] if plan else "")
    check_report_dir(settings.report_dir)
    baseline = load_baseline_for(settings)
    try:
        with (
            sigterm_as_interrupt(),
            running_stack(config) as info,
            minted_tokens(plan, scenario, config.run_id, auth) as auth,
        ):
            result, system = run_load(settings, scenario, info.base_url, auth, targets_for(info, env), config.run_id)
    except CiPerfError as exc:  # the run broke: still report why, then fail with the error's one line
        report_broken(settings, scenario, auth.secrets(), env, exc)
        raise
    mask_raw_and_logs(settings.report_dir, auth.secrets())
    outcome = masked(evaluate(settings, scenario, result, system, baseline), auth.secrets())
    written = write_outputs(outcome, settings.report_dir, auth.secrets())
    publish(outcome, settings, written, env)
    print_verdict(outcome, settings.report_dir, written)
    return outcome.verdict.exit_code


def report_broken(settings: Settings, scenario: Scenario, secret_values: list[str], env: Mapping[str, str],
                  exc: CiPerfError) -> None:  # fmt: skip
    """The run broke: mask what the tools and services wrote, then write and publish why. The error is
    masked in place too: the caller re-raises it, and its message (a service's or tool's last lines)
    becomes the one line on stderr."""
    mask_raw_and_logs(settings.report_dir, secret_values)
    exc.args = (mask(str(exc), secret_values),)
    broken = masked(broken_outcome(settings, scenario, exc), secret_values)
    written = write_outputs(broken, settings.report_dir, secret_values)
    try:
        publish(broken, settings, written, env)
    except CiPerfError as late:  # the break is the story: a publishing problem must not replace it
        eprint(f"ci-perf: warning: the broken run's reports were not published: {late}")


# Which stage broke, by the error's type (ci_perf.errors): for the JUnit error case and the headline.
_STAGES: dict[type[CiPerfError], str] = {ServiceError: "stack", RunnerError: "load", ResultError: "results",
                                          ConfigError: "config"}  # fmt: skip


def broken_outcome(settings: Settings, scenario: Scenario, exc: CiPerfError) -> Outcome:
    """An Outcome with no load results and the error as its Infra: the reports and the comment say
    what broke (the message carries a service's last log lines) instead of nothing at all."""
    meta = RunMeta(
        scenario=scenario.name,
        tool=settings.tool,
        tool_version="",
        users=scenario.users,
        spawn_rate=scenario.spawn_rate,
        duration_s=float(scenario.duration_s),
        host=public_host(settings.host) if settings.host else "",
    )
    nothing = EndpointStats("", AGGREGATE, 0, 0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    stage = next((name for kind, name in _STAGES.items() if isinstance(exc, kind)), "run")
    return Outcome(
        result=RunResult(meta, nothing, ()),
        evaluation=Evaluation(),
        gating=gating_for(settings),
        infra=Infra(exc.exit_code, stage, str(exc)),
    )


def check_report_dir(folder: Path) -> None:
    """A report folder ci-perf can write, checked before anything starts (one line, exit 2)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".ci-perf-write-check"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(
            f"report folder {folder} is not writable ({exc.strerror or exc}); pass --report-dir with a folder "
            "ci-perf may create and write"
        ) from None


def mask_raw_and_logs(report_dir: Path, secrets: list[str]) -> None:
    """The tools' own output (raw/) and the services' logs (logs/) leave with the report folder too
    (workflows upload it): mask them like the reports."""
    for folder in ("raw", "logs"):
        mask_files(report_dir / folder, secrets)


def print_verdict(outcome: Outcome, report_dir: Path, written: Mapping[str, Path]) -> None:
    meta, verdict = outcome.result.meta, outcome.verdict
    print(f"ci-perf: {meta.scenario}/{meta.tool}: {verdict.status}: {verdict.headline}")
    for item in verdict.items[1:]:
        print(f"ci-perf:   {item.level}: {item.text}")
    for finding in outcome.findings:  # what to check first, for what failed the run
        if finding.status is Status.FAIL and finding.advice:
            print(f"ci-perf:   fix: {finding.advice}")
    print(f"ci-perf: reports in {report_dir.resolve()}: {', '.join(sorted(written))}")


def publish(outcome: Outcome, settings: Settings, written: Mapping[str, Path], env: Mapping[str, str]) -> None:
    """Where the results go besides files: GitHub or GitLab when running there (or when asked)."""
    target = settings.publish
    if target == "auto":
        target = "github" if env.get("GITHUB_ACTIONS") else "gitlab" if env.get("GITLAB_CI") else "files"
    if target in ("files", "none"):
        return
    from ci_perf.publish import publish_outcome

    publish_outcome(target, outcome, settings, written, env)


def eprint(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
