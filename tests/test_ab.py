"""Same-runner A/B (`ci-perf run --baseline ref:REF`, ci_perf.ab): the checks, the base's worktree, the
pooling of rounds, and the whole flow on a git repository whose second commit adds 8 ms per request."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from types import ModuleType

import pytest

import synth
from ci_perf import ab
from ci_perf.config import Settings
from ci_perf.errors import ConfigError
from ci_perf.services.base import StackConfig

BENCH = Path(__file__).resolve().parent.parent / "bench"


def _target() -> ModuleType:
    spec = importlib.util.spec_from_file_location("ab_target", BENCH / "ab_target.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["ab_target"] = module
    spec.loader.exec_module(module)
    return module


target = _target()
git = target.git


def make_repo(root: Path) -> Path:
    """Commit 1: 2 ms per request; commit 2: 10 ms (8 ms more)."""
    target.make_repo(root / "repo", [("fast", 2), ("8 ms slower", 10)])
    return root / "repo"


# --- checks and pieces ----------------------------------------------------------------------------


def test_round_order_interleaves_so_every_pair_holds_both_sides() -> None:
    order = ab.round_order(8)
    assert order == ("base", "head", "head", "base", "base", "head", "head", "base")
    assert all({order[i], order[i + 1]} == {"base", "head"} for i in range(0, 8, 2))


def test_specs_resolve_or_say_what_is_wrong(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    first = git(repo, "rev-parse", "HEAD~1").strip()
    assert ab.resolve("ref:HEAD~1", {}, repo).commit == first
    git(repo, "branch", "main-base", "HEAD~1")
    assert ab.resolve("same-job", {"GITHUB_BASE_REF": "main-base"}, repo).commit == first
    assert ab.resolve("image:api:main", {}, None).image == "api:main"
    clone = tmp_path / "clone"  # a single-branch clone: same-job fetches the base branch from origin
    subprocess.run(["git", "clone", "-q", "--single-branch", "--branch", "main-base", str(repo), str(clone)],
                   check=True)  # fmt: skip
    git(repo, "branch", "feature", "HEAD")
    assert ab.resolve("same-job", {"CI_MERGE_REQUEST_TARGET_BRANCH_NAME": "feature"}, clone).ref == "origin/feature"
    with pytest.raises(ConfigError, match="fetch-depth: 0"):
        ab.resolve("ref:no-such-branch", {}, repo)
    with pytest.raises(ConfigError, match="GITHUB_BASE_REF"):
        ab.resolve("same-job", {}, repo)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (Settings(host="http://127.0.0.1:1", baseline="ref:main"), "not an external --host"),
        (Settings(baseline="ref:main", rounds=5, api_command="x"), "even number, at least 10"),
        (Settings(baseline="ref:main"), "set --api-command"),
        (Settings(baseline="ref:main", backend="docker"), "set --api-build-context"),
        (Settings(baseline="image:x", api_command="x"), "needs --backend docker"),
    ],
)
def test_what_cannot_run_side_by_side_is_one_line(settings: Settings, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ab.check(
            settings,
            ab.resolve(settings.baseline, {}, None) if "image" in settings.baseline else ab.Base("x", commit="c"),
        )


def test_the_base_tree_is_removed_on_the_way_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI_PERF_STATE_DIR", str(tmp_path / "state"))
    repo = make_repo(tmp_path)
    base = ab.resolve("ref:HEAD~1", {}, repo)
    with pytest.raises(RuntimeError), ab.base_tree(repo, base, "abtest") as tree:
        assert tree is not None and (tree / "latency_ms").read_text() == "2\n"  # the first commit
        assert (tmp_path / "state" / "abtest.base.json").is_file()  # `ci-perf down` finds it after a SIGKILL
        raise RuntimeError("a round broke")
    assert not tree.exists() and not tree.parent.exists()
    assert str(tree) not in git(repo, "worktree", "list")
    assert not (tmp_path / "state" / "abtest.base.json").exists()


def test_pool_keeps_counts_means_rps_per_round_and_puts_windows_one_after_another() -> None:
    rounds = [synth.run(i, with_histogram=True) for i in range(3)]
    pooled = ab.pool(rounds)
    assert pooled.total.requests == sum(r.total.requests for r in rounds)
    assert pooled.total.rps == pytest.approx(sum(r.total.rps for r in rounds) / 3, abs=0.01)
    assert len(pooled.total.windows) == sum(len(r.total.windows) for r in rounds)
    starts = [w.start_s for w in pooled.total.windows]
    assert starts == sorted(starts) and starts[-1] >= 2 * rounds[0].meta.duration_s
    assert pooled.meta.users == rounds[0].meta.users and pooled.meta.labels["rounds"] == "3"


# --- the whole flow -------------------------------------------------------------------------------


def _ci_perf(repo: Path, report: Path, baseline: str, locustfile: Path) -> subprocess.CompletedProcess[str]:
    cmd = [
        sys.executable, "-m", "ci_perf", "run", "--preset", "none", "--scenario", "smoke_test",
        "--script", str(locustfile), "--users", "4", "--spawn-rate", "4", "--duration", "3s", "--rounds", "10",
        "--api-command", target.API_COMMAND, "--health-path", "/health/",
        "--baseline", baseline, "--fail-on-regression", "--min-effect", "50%", "--report-dir", str(report),
        "--publish", "files",
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "CI_", "GITLAB_"))}
    env["CI_PERF_STATE_DIR"] = os.environ.get("CI_PERF_STATE_DIR", str(report.parent / "state"))
    return subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.integration
def test_a_commit_that_adds_8_ms_fails_the_gate_and_the_same_commit_passes(tmp_path: Path) -> None:
    """The min effect is 50% here: the slowdown is about +300%, and with 3 pairs of 3 s rounds on a shared
    machine the test must not depend on how quiet the machine is (bench/verdict_trials.py measures the
    default 10%)."""
    repo = make_repo(tmp_path)
    locustfile = target.write_locustfile(tmp_path / "locustfile.py")
    slowed = _ci_perf(repo, tmp_path / "slowed", "ref:HEAD~1", locustfile)
    assert slowed.returncode == 1, slowed.stdout + slowed.stderr
    assert "fail: p50 of GET /work" in slowed.stdout, slowed.stdout  # named, with its interval
    results = json.loads((tmp_path / "slowed" / "results.json").read_text())
    assert results["side_by_side"]["order"] == ["base", "head", "head", "base"] * 2 + ["base", "head"]
    degraded = {(d["endpoint"], d["metric"]) for d in results["comparison"]["deltas"] if d["change"] == "degraded"}
    assert ("GET /work", "p50") in degraded  # p95/p99 of 3 s rounds on a busy machine may stay inconclusive
    assert "measured side by side on this runner, 10 rounds" in results["comparison"]["source"]
    assert "side by side on this runner, 10 rounds" in (tmp_path / "slowed" / "comment.md").read_text()
    assert len(git(repo, "worktree", "list").splitlines()) == 1  # the base's tree is gone

    same = _ci_perf(repo, tmp_path / "same", "ref:HEAD", locustfile)
    assert same.returncode == 0, same.stdout + same.stderr
    results = json.loads((tmp_path / "same" / "results.json").read_text())
    assert not [d for d in results["comparison"]["deltas"] if d["change"] == "degraded"]

    # `ci-perf report` re-renders the A/B result byte for byte
    again = tmp_path / "again"
    subprocess.run([sys.executable, "-m", "ci_perf", "report", str(tmp_path / "slowed" / "results.json"), "-o",
                    str(again)], check=True, capture_output=True)  # fmt: skip
    for name in ("report.md", "comment.md", "report.html", "junit.xml"):
        assert (again / name).read_text() == (tmp_path / "slowed" / name).read_text(), name


@pytest.mark.integration
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_in_a_head_round_removes_the_base_tree_and_the_stack(tmp_path: Path, sig: signal.Signals) -> None:
    repo = make_repo(tmp_path)
    locustfile = target.write_locustfile(tmp_path / "locustfile.py")
    state = tmp_path / "state"
    cmd = [sys.executable, "-m", "ci_perf", "run", "--preset", "none", "--script", str(locustfile), "--users", "2",
           "--duration", "30s", "--rounds", "10", "--api-command", target.API_COMMAND, "--baseline", "ref:HEAD~1",
           "--report-dir", str(tmp_path / "out"), "--publish", "files"]  # fmt: skip
    env = {**os.environ, "CI_PERF_STATE_DIR": str(state)}
    proc = subprocess.Popen(cmd, cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    seen = []
    for line in proc.stdout:  # the second round is the head's: by then the base round has come and gone
        seen.append(line)
        if line.startswith("ci-perf: round 2/10: head"):
            break
    for line in proc.stdout:
        seen.append(line)
        if line.startswith("ci-perf: smoke_test with"):
            break
    assert seen and "round 2/10" in "".join(seen), "".join(seen)
    run_id = seen[0].split("run id ")[1].split(")")[0]
    time.sleep(2)
    assert (state / f"{run_id}.base.json").is_file() and (state / f"{run_id}.json").is_file()
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=90)
    assert proc.returncode == 130, "".join(seen) + out
    assert sorted(p.name for p in state.iterdir()) == []  # the stack's, the tokens' and the tree's state: gone
    assert len(git(repo, "worktree", "list").splitlines()) == 1  # only the main tree
    assert not list(Path("/tmp").glob(f"ci-perf-{run_id}-*"))


def test_the_base_runs_from_its_tree_or_its_image(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    (repo / "svc").mkdir()
    tree = tmp_path / "tree"
    config = StackConfig(backend="local", log_dir=tmp_path, api_command="x", api_build_context="")
    local = Settings(api_command="x", baseline="ref:HEAD~1")
    location = ab.base_location(local, repo, repo / "svc")
    assert ab.side_config(config, ab.Base("b", commit="c"), tree, location).api_dir == str(tree / "svc")
    docker = Settings(backend="docker", api_build_context="../svc", baseline="ref:HEAD~1")
    location = ab.base_location(docker, repo, repo / "svc")
    built = ab.side_config(replace(config, backend="docker"), ab.Base("b", commit="c"), tree, location)
    assert built.api_build_context == str(tree / "svc") and built.api_dir == ""
    image = ab.side_config(replace(config, backend="docker", api_image="api:pr"), ab.Base("b", image="api:main"), None,
                           Path())  # fmt: skip
    assert image.api_image == "api:main"
    with pytest.raises(ConfigError, match="outside the repository"):
        ab.base_location(replace(docker, api_build_context=str(tmp_path)), repo, repo)


@pytest.mark.integration
def test_a_base_that_does_not_start_is_a_broken_run_with_reports_and_no_tree_left(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    (repo / "only_in_head").write_text("")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "a file the api command needs")
    locustfile = target.write_locustfile(tmp_path / "locustfile.py")
    cmd = [sys.executable, "-m", "ci_perf", "run", "--preset", "none", "--script", str(locustfile), "--rounds", "10",
           "--api-command", f"test -f only_in_head && {target.API_COMMAND}", "--baseline", "ref:HEAD~1",
           "--health-timeout", "20s", "--report-dir", str(tmp_path / "out"), "--publish", "files"]  # fmt: skip
    env = {**os.environ, "CI_PERF_STATE_DIR": str(tmp_path / "state")}
    done = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 3, done.stdout + done.stderr
    assert "api (http://127.0.0.1:" in done.stderr and "exited before becoming healthy" in done.stderr
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["infra"]["stage"] == "stack" and results["verdict"]["status"] == "error"
    assert (tmp_path / "out" / "rounds" / "01-base" / "logs" / "api.log").is_file()
    assert len(git(repo, "worktree", "list").splitlines()) == 1
    assert not list((tmp_path / "state").iterdir())
