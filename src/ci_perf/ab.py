"""Same-runner A/B: `ci-perf run --baseline ref:REF | same-job | image:REF` measures the base and the head
side by side on this machine, in interleaved rounds, and judges the pairs (ci_perf.paired).

- ref:REF checks REF out in a temporary git worktree (removed on every way out, Ctrl-C and SIGTERM
  included; registered for `ci-perf down` after a SIGKILL). Local backend: api_command, migrate and
  seed run in the tree's counterpart of the current folder. Docker: api_build_context is built from
  the tree. same-job is ref: of the pull/merge request's base (GITHUB_BASE_REF,
  CI_MERGE_REQUEST_TARGET_BRANCH_NAME); image:REF (docker) runs the prebuilt image REF as the base.
- Rounds: base, head, head, base, base, head, ... (settings.rounds, even, at least 10). Each round gets
  a fresh stack with the same settings: no database rows, Redis keys or warm caches carry over from one
  side's round into the other's, and the backends need no change. It costs a stack start per round
  (seconds on the local backend), paid by both sides alike.
- Same scenario, users and tool on both sides; each round is a whole run with its own raw/ and logs/
  under report_dir/rounds/NN-side/. All rounds share one run id, so `ci-perf down --run-id` finds
  whatever a killed round left.

The Outcome's result is the head's rounds pooled (thresholds, findings, tables), its comparison the
paired one, and side_by_side keeps every round of both sides for `ci-perf report`.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from ci_perf import pipeline
from ci_perf.config import Settings
from ci_perf.errors import CiPerfError, ConfigError
from ci_perf.merge import merge_results
from ci_perf.model import EndpointStats, RunResult, Side, SideBySide, Window
from ci_perf.paired import MIN_PAIRS, compare_paired
from ci_perf.services.base import StackConfig, new_run_id

MIN_ROUNDS = 2 * MIN_PAIRS  # fewer rounds can only ever be inconclusive


def wanted(spec: str) -> bool:
    """Whether a --baseline asks for the base to be measured here rather than loaded."""
    return spec == "same-job" or spec.startswith(("ref:", "image:"))


@dataclass(frozen=True)
class Base:
    """What runs as the base: a commit of this repository, or a prebuilt image."""

    label: str  # for the report: "ref:HEAD~1 (0123456789ab)"
    ref: str = ""
    commit: str = ""
    image: str = ""


def git(repo: Path, *args: str) -> str:
    try:
        done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=120)
    except FileNotFoundError:
        raise ConfigError("--baseline ref: needs git on PATH") from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise ConfigError(f"git {' '.join(args)} failed: {last}")
    return done.stdout.strip()


def repo_root(cwd: Path) -> Path:
    try:
        return Path(git(cwd, "rev-parse", "--show-toplevel"))
    except ConfigError:
        raise ConfigError(f"--baseline ref: runs the base from git, but {cwd} is not in a git repository") from None


def resolve(spec: str, env: Mapping[str, str], repo: Path | None) -> Base:
    """The base a spec names, checked before anything starts (one line, exit 2)."""
    kind, _, arg = spec.partition(":")
    if kind == "image":
        if not arg:
            raise ConfigError("--baseline image: needs the base image, e.g. image:myapi:main")
        return Base(label=spec, image=arg)
    if kind == "same-job":
        branch = env.get("GITHUB_BASE_REF") or env.get("CI_MERGE_REQUEST_TARGET_BRANCH_NAME") or ""
        if not branch:
            raise ConfigError(
                "--baseline same-job needs the pull/merge request's base branch (GITHUB_BASE_REF or "
                "CI_MERGE_REQUEST_TARGET_BRANCH_NAME, set on pull_request / merge request pipelines); "
                "elsewhere use --baseline ref:REF"
            )
        candidates = [f"origin/{branch}", branch]
    elif not arg:
        raise ConfigError("--baseline ref: needs a git ref, e.g. ref:main or ref:HEAD~1")
    else:
        candidates = [arg]
    assert repo is not None
    found = _first_commit(repo, candidates)
    if found is None and kind == "same-job":  # a shallow or single-branch clone: fetch the base branch
        branch = candidates[-1]
        fetched = subprocess.run(["git", "-C", str(repo), "fetch", "--quiet", "origin",
                                  f"+refs/heads/{branch}:refs/remotes/origin/{branch}"],
                                 capture_output=True, timeout=300, check=False)  # fmt: skip
        found = _first_commit(repo, candidates) if fetched.returncode == 0 else None
    if found is not None:
        ref, commit = found
        return Base(label=f"ref:{ref} ({commit[:12]})", ref=ref, commit=commit)
    raise ConfigError(
        f"{candidates[-1]!r} is not a commit in {repo}; fetch it first (actions/checkout with fetch-depth: 0, "
        "GitLab GIT_DEPTH: 0)"
    )


def _first_commit(repo: Path, refs: Sequence[str]) -> tuple[str, str] | None:
    for ref in refs:
        try:
            return ref, git(repo, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
        except ConfigError:
            continue
    return None


def check(settings: Settings, base: Base) -> None:
    """What a same-runner A/B can run: two versions of an API ci-perf starts itself."""
    backend = settings.resolved_backend
    if backend == "external":
        raise ConfigError(
            f"--baseline {settings.baseline} starts both versions of the API; it needs --backend local or docker, "
            "not an external --host"
        )
    if settings.rounds < MIN_ROUNDS or settings.rounds % 2:
        raise ConfigError(f"rounds {settings.rounds}: same-runner A/B needs an even number, at least {MIN_ROUNDS}")
    if settings.shard or settings.master:
        raise ConfigError(f"--baseline {settings.baseline} runs every round on this machine; drop --shard/--master")
    if base.image:
        if backend != "docker":
            raise ConfigError("--baseline image:REF runs a prebuilt image: it needs --backend docker")
        return
    if backend == "local" and not settings.api_command:
        raise ConfigError(
            "--baseline ref: runs the API from each tree: set --api-command (with the bundled demo both "
            "sides would run the same code)"
        )
    if backend == "docker" and not settings.api_build_context:
        raise ConfigError(
            "--baseline ref: builds the API from each tree: set --api-build-context (for prebuilt images use "
            "--baseline image:REF)"
        )


def round_order(rounds: int) -> tuple[Side, ...]:
    """base, head, head, base, ...: each pair of neighbouring rounds holds both sides, in turns."""
    return tuple("base" if i % 4 in (0, 3) else "head" for i in range(rounds))


@contextmanager
def base_tree(repo: Path, base: Base, run_id: str) -> Iterator[Path | None]:
    """The base commit checked out in a temporary worktree for as long as the rounds run."""
    if not base.commit:
        yield None
        return
    from ci_perf.services.procs import RunState

    folder = Path(tempfile.mkdtemp(prefix=f"ci-perf-{run_id}-base-"))
    state = RunState(f"{run_id}.base")
    tree = folder / "tree"
    try:
        state.add_dir(folder)
        git(repo, "worktree", "add", "--detach", "--quiet", str(tree), base.commit)
        yield tree
    finally:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut this short
        try:
            subprocess.run(["git", "-C", str(repo), "worktree", "remove", "--force", str(tree)],
                           capture_output=True, timeout=60, check=False)  # fmt: skip
            shutil.rmtree(folder, ignore_errors=True)
            subprocess.run(["git", "-C", str(repo), "worktree", "prune"], capture_output=True, timeout=60, check=False)
            state.forget()
        finally:
            signal.signal(signal.SIGINT, previous)


def base_location(settings: Settings, repo: Path, cwd: Path) -> Path:
    """Where, inside a tree, the base's API runs from (local: the current folder's counterpart) or is
    built (docker: api_build_context's counterpart); relative to the repository's root."""
    where = cwd / settings.api_build_context if settings.resolved_backend == "docker" else cwd
    try:
        return where.resolve().relative_to(repo.resolve())
    except ValueError:
        raise ConfigError(f"{where} is outside the repository {repo}: the base's tree has no copy of it") from None


def side_config(config: StackConfig, base: Base, tree: Path | None, location: Path) -> StackConfig:
    """The base's stack: the same settings, the API from the base's tree (or image)."""
    if base.image:
        return replace(config, api_image=base.image, api_build_context="")
    assert tree is not None
    if config.backend == "local":
        return replace(config, api_dir=str(tree / location))
    return replace(config, api_build_context=str(tree / location))


def pool(rounds: Sequence[RunResult]) -> RunResult:
    """One side's rounds as one result, for thresholds, findings and the report's tables: counts add,
    percentiles come from the merged histograms (ci_perf.merge), req/s is the mean per round, and the
    windows follow each other on one time axis, round after round."""
    merged = merge_results([(f"round {i + 1}", r) for i, r in enumerate(rounds)])
    offsets, at = [], 0.0
    for r in rounds:
        offsets.append(at)
        at += max([r.meta.duration_s, *(w.start_s + w.length_s for w in r.total.windows)])

    def one_after_another(e: EndpointStats) -> EndpointStats:
        series = [(off, r.endpoint(e.key)) for off, r in zip(offsets, rounds, strict=True)]
        windows: list[Window] = [
            replace(w, start_s=w.start_s + off) for off, part in series if part for w in part.windows
        ]
        return replace(e, rps=round(e.rps / len(rounds), 3), windows=tuple(windows))

    meta = replace(rounds[0].meta, labels={**rounds[0].meta.labels, "rounds": str(len(rounds))})
    return replace(merged, meta=meta, total=one_after_another(merged.total),
                   endpoints=tuple(one_after_another(e) for e in merged.endpoints))  # fmt: skip


def run(settings: Settings, env: Mapping[str, str]) -> int:
    """`ci-perf run --baseline ref:REF`: every round, the paired verdicts, the reports; the exit code."""
    pipeline.check_scale_out(settings)
    cwd = Path.cwd()
    repo = None if settings.baseline.startswith("image:") else repo_root(cwd)
    base = resolve(settings.baseline, env, repo)
    check(settings, base)
    location = base_location(settings, repo, cwd) if repo else Path()
    head_commit = git(repo, "rev-parse", "HEAD") if repo else ""
    scenario = pipeline.scenario_for(settings)
    plan = pipeline.jwt_plan(settings, env)
    auth = pipeline.auth_for(settings, env, plan)
    pipeline.check_report_dir(settings.report_dir)
    run_id, order = new_run_id(), round_order(settings.rounds)
    rounds: dict[Side, list[RunResult]] = {"base": [], "head": []}
    secrets = set(auth.secrets())
    print(f"ci-perf: same-runner A/B against {base.label}: {len(order)} rounds (run id {run_id})", flush=True)
    try:
        with pipeline.sigterm_as_interrupt(), base_tree(repo or cwd, base, run_id) as tree:
            for i, side in enumerate(order):
                folder = settings.report_dir / "rounds" / f"{i + 1:02d}-{side}"
                # k6 records histograms so that rounds pool exactly; the same run id finds leftovers.
                each = replace(settings, report_dir=folder, histogram=True)
                config = pipeline.stack_config(each, auth.api_key, run_id, jwt_secret=plan[1] if plan else "")
                if side == "base":
                    config = side_config(config, base, tree, location)
                print(f"ci-perf: round {i + 1}/{len(order)}: {side}", flush=True)
                with (
                    pipeline.running_stack(config) as info,
                    pipeline.minted_tokens(plan, scenario, run_id, auth) as round_auth,
                ):
                    secrets.update(round_auth.secrets())
                    result, _ = pipeline.run_load(each, scenario, info.base_url, round_auth)
                pipeline.mask_raw_and_logs(folder, sorted(secrets))
                meta = (replace(result.meta, commit=base.commit, ref=base.ref or base.image) if side == "base"
                        else replace(result.meta, commit=result.meta.commit or head_commit))  # fmt: skip
                rounds[side].append(replace(result, meta=meta))
    except CiPerfError as exc:
        for folder in sorted((settings.report_dir / "rounds").glob("*")):  # the broken round's too
            pipeline.mask_raw_and_logs(folder, sorted(secrets))
        pipeline.report_broken(settings, scenario, sorted(secrets), env, exc)
        raise
    head = pool(rounds["head"])
    source = f"{base.label}, measured side by side on this runner, {len(order)} rounds"
    comparison = compare_paired(rounds["base"], rounds["head"], source, settings.min_effect)
    outcome = replace(
        pipeline.evaluate(replace(settings, baseline=""), scenario, head),
        comparison=comparison,
        side_by_side=SideBySide(order, tuple(rounds["base"]), tuple(rounds["head"])),
    )
    outcome = pipeline.masked(outcome, sorted(secrets))
    written = pipeline.write_outputs(outcome, settings.report_dir, sorted(secrets))
    pipeline.publish(outcome, settings, written, env)
    pipeline.print_verdict(outcome, settings.report_dir, written)
    return outcome.verdict.exit_code
