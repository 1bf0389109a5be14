"""Where a baseline comes from. Every source gives a RunResult, or None with a reason, never a crash:
a missing baseline only means no verdicts. A missing token is a ConfigError naming the variable.

Sources (the `spec` of fetch_baseline / `ci-perf run --baseline`):
  file:PATH             a results.json (Outcome) or a bare RunResult JSON; a bare existing path works too
  github-artifact[:N]   the artifact N (default ci-perf-results) of the latest successful run of this
                        workflow on the base branch, via the GitHub REST API
  gitlab-artifact[:J]   results.json in the artifacts of job J (default: this job) on the target branch
  comment               the digest embedded in this PR's previous sticky comment: the previous push of
                        the same PR, so deltas read "since the last push", not "against the base branch"
"""

from __future__ import annotations

import io
import json
import os
import sys
import zipfile
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ci_perf.digest import decode_digest
from ci_perf.errors import ConfigError, ResultError
from ci_perf.jsonread import load_json, parse_json
from ci_perf.model import Outcome, RunResult
from ci_perf.observe.model import SystemMetrics
from ci_perf.publish import github as gh
from ci_perf.publish import gitlab as gl
from ci_perf.publish.api import ApiClient, ApiError, require

DEFAULT_ARTIFACT = "ci-perf-results"
DEFAULT_ARTIFACT_PATH = "reports/results.json"  # the default report folder, as the GitLab template keeps it


@dataclass(frozen=True)
class Fetched:
    result: RunResult | None
    source: str  # what to show as Comparison.source
    reason: str = ""  # why result is None


def fetch_baseline(
    spec: str,
    *,
    env: Mapping[str, str],
    scenario: str = "",
    tool: str = "locust",
    artifact: str = DEFAULT_ARTIFACT,
    artifact_path: str = DEFAULT_ARTIFACT_PATH,
    client: ApiClient | None = None,
) -> Fetched:
    kind, _, arg = spec.partition(":")
    if kind == "file" or (not arg and Path(spec).is_file()):
        return from_file(Path(arg if kind == "file" else spec))
    if kind == "github-artifact":
        return from_github_artifact(env, arg or artifact, client=client)
    if kind == "gitlab-artifact":
        return from_gitlab_artifact(env, job=arg, path=artifact_path, client=client)
    if kind == "comment":
        return from_previous_comment(env, scenario, tool, client=client)
    if kind in ("ref", "image", "same-job"):
        raise ConfigError(f"baseline {spec!r} measures the base side by side: only `ci-perf run` does that")
    raise ConfigError(
        f"unknown baseline {spec!r}: use file:PATH, github-artifact[:NAME], gitlab-artifact[:JOB], comment, "
        "or ref:REF, same-job, image:REF (ci-perf run)"
    )


def load_baseline(
    spec: str, env: Mapping[str, str] | None = None, *, scenario: str = "", tool: str = "locust"
) -> RunResult | None:
    """fetch_baseline for the pipeline: the RunResult, or None after saying why on stderr."""
    fetched = fetch_baseline(spec, env=os.environ if env is None else env, scenario=scenario, tool=tool)
    if fetched.result is None:
        print(f"ci-perf: baseline {fetched.source}: {fetched.reason}", file=sys.stderr, flush=True)
    return fetched.result


# --- files --------------------------------------------------------------------------------------


def load_result_json(data: Any) -> RunResult:
    """A results.json (Outcome) or a bare RunResult."""
    if not isinstance(data, dict):
        raise ResultError(f"not a ci-perf result (a JSON {type(data).__name__}, expected an object)")
    return Outcome.from_dict(data).result if "result" in data else RunResult.from_dict(data)


def load_result_file(path: Path) -> RunResult:
    return load_saved(path)[0]


def load_saved(path: Path) -> tuple[RunResult, SystemMetrics | None]:
    """A saved run: the result, and the system view when the file is a whole results.json."""
    data = load_json(path)  # ResultError naming the file: missing, not UTF-8, not JSON, NaN
    try:
        if isinstance(data, dict) and "result" in data:
            outcome = Outcome.from_dict(data)
            return outcome.result, outcome.system
        return load_result_json(data), None
    except ResultError as exc:
        raise ResultError(f"{path}: {exc}") from None


def from_file(path: Path) -> Fetched:
    if not path.is_file():
        return Fetched(None, f"file:{path}", f"{path} does not exist")
    return Fetched(load_result_file(path), f"file:{path}")


def save_baseline(outcome_or_result: Outcome | RunResult, path: Path) -> Path:
    """`ci-perf baseline save`: the bare RunResult, histograms included, so merges stay exact."""
    result = outcome_or_result.result if isinstance(outcome_or_result, Outcome) else outcome_or_result
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result.to_dict(), indent=1) + "\n", encoding="utf-8")
    return path


def show_baseline(path: Path) -> str:
    """`ci-perf baseline show PATH`."""
    return describe_baseline(load_result_file(path), str(path))


def describe_baseline(r: RunResult, label: str = "baseline") -> str:
    """What the baseline is and its headline numbers, one endpoint a line."""
    m = r.meta
    lines = [
        f"{label}: {m.scenario} with {m.tool} {m.tool_version}, {m.users} users, {m.duration_s:g}s, "
        f"started {m.started_at or '?'} at {(m.commit or '?')[:12]} {m.ref}".rstrip()
    ]
    lines.append(
        f"{'endpoint':40} {'requests':>9} {'errors':>7} {'rps':>8} {'p50':>8} {'p95':>8} {'p99':>8} {'windows':>7}"
    )
    for e in (r.total, *r.endpoints):
        lines.append(
            f"{e.key[:40]:40} {e.requests:>9} {e.error_rate:>7.2%} {e.rps:>8.1f} {e.p50_ms:>8.1f} "
            f"{e.p95_ms:>8.1f} {e.p99_ms:>8.1f} {len(e.windows):>7}"
        )
    return "\n".join(lines)


# --- CI artifacts -------------------------------------------------------------------------------


def from_github_artifact(
    env: Mapping[str, str], name: str = DEFAULT_ARTIFACT, *, client: ApiClient | None = None, max_runs: int = 5
) -> Fetched:
    """Latest successful run of this workflow on the base branch that still has the artifact."""
    api = client or gh.client_from_env(env)
    repo = require(env, "GITHUB_REPOSITORY")
    branch = env.get("GITHUB_BASE_REF") or env.get("GITHUB_REF_NAME") or "main"
    workflow = env.get("GITHUB_WORKFLOW_REF", "").split("@")[0].rsplit("/", 1)[-1]
    runs_path = f"/repos/{repo}/actions/workflows/{workflow}/runs" if workflow else f"/repos/{repo}/actions/runs"
    source = f"github-artifact:{name}@{branch}"
    try:
        runs = api.request(
            "GET", runs_path, params={"branch": branch, "status": "success", "per_page": max_runs}
        ).json()["workflow_runs"]
        for run in runs:
            if str(run["id"]) == env.get("GITHUB_RUN_ID"):
                continue
            found = api.request(
                "GET", f"/repos/{repo}/actions/runs/{run['id']}/artifacts", params={"name": name}
            ).json()["artifacts"]
            live = [a for a in found if a["name"] == name and not a.get("expired")]
            if live:
                blob = api.request("GET", live[0]["archive_download_url"]).content
                return Fetched(_result_from_zip(blob), f"{source} (run {run['id']})")
    except ApiError as exc:
        return Fetched(None, source, str(exc))
    return Fetched(None, source, f"no successful run on {branch} has an artifact {name!r}")


def _result_from_zip(blob: bytes) -> RunResult:
    try:
        with zipfile.ZipFile(io.BytesIO(blob)) as zf:
            names = sorted((n for n in zf.namelist() if n.endswith("results.json")), key=len)
            if not names:
                raise ResultError("the baseline artifact has no results.json")
            return load_result_json(parse_json(zf.read(names[0]), f"the baseline artifact's {names[0]}"))
    except (zipfile.BadZipFile, ValueError, EOFError, zlib.error) as exc:
        raise ResultError(f"the baseline artifact is not a readable zip of results.json ({exc})") from None


def from_gitlab_artifact(
    env: Mapping[str, str], job: str = "", path: str = DEFAULT_ARTIFACT_PATH, *, client: ApiClient | None = None
) -> Fetched:
    """GET /projects/:id/jobs/artifacts/:ref/raw/:path?job=:job (latest successful pipeline on ref)."""
    api = client or gl.client_from_env(env, allow_job_token=True)
    project = quote(require(env, "CI_PROJECT_ID"), safe="")
    ref = env.get("CI_MERGE_REQUEST_TARGET_BRANCH_NAME") or env.get("CI_DEFAULT_BRANCH") or "main"
    job = job or require(env, "CI_JOB_NAME")
    source = f"gitlab-artifact:{job}@{ref}"
    url = f"/projects/{project}/jobs/artifacts/{quote(ref, safe='')}/raw/{quote(path)}"
    try:
        resp = api.request("GET", url, params={"job": job})
    except ApiError as exc:
        reason = f"no {path} from job {job!r} on {ref}" if exc.status == 404 else str(exc)
        return Fetched(None, source, reason)
    try:
        return Fetched(load_result_json(resp.json()), source)
    except ValueError as exc:
        raise ResultError(f"{source}: {path} is not JSON ({exc})") from None


# --- digest in the previous comment -------------------------------------------------------------


def from_previous_comment(
    env: Mapping[str, str], scenario: str, tool: str, *, client: ApiClient | None = None
) -> Fetched:
    finder: Callable[..., str | None] = gl.previous_note_body if env.get("GITLAB_CI") else gh.previous_comment_body
    try:
        body = finder(env, scenario, tool, client=client)
    except ApiError as exc:
        return Fetched(None, "comment", str(exc))
    result = decode_digest(body or "")
    return Fetched(result, "comment (previous push)", "" if result else "no previous comment with a digest")
