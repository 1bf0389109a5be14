"""Publish to GitHub: one sticky PR comment per scenario+tool, job summary, step outputs, annotations.

Never fails the run for want of permission: a fork PR's read-only token (403) gives a warning
annotation, the job summary, and comment.md + publish-request.json in the report folder.

A fork-safe `workflow_run` publisher (workflows/ is another area) uploads that report folder as an
artifact from the PR job, and in a workflow triggered by `workflow_run` (which has a write token)
downloads it and calls:

    from ci_perf.publish.github import publish_pending
    status = publish_pending(Path("ci-perf-report"), os.environ)

publish_pending reads publish-request.json, checks that the PR's head commit is the triggering run's
(`workflow_run.head_sha` in GITHUB_EVENT_PATH) so a fork cannot aim the comment at another PR,
then calls publish_github(body, scenario=..., tool=..., pr=number, ...).
"""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from ci_perf.digest import strip_digest
from ci_perf.errors import ConfigError
from ci_perf.publish.api import ApiClient, ApiError, PublishStatus, require
from ci_perf.workflow_commands import Annotation, annotation_line, escape_data

API_VERSION = "2022-11-28"
MAX_BODY = 65_536  # GitHub's limit for a comment body
TOKEN_VARS = ("CI_PERF_GITHUB_TOKEN", "GITHUB_TOKEN")


def comment_marker(scenario: str, tool: str) -> str:
    """The hidden first line that identifies our comment. The markdown renderer owns the format;
    until reports/markdown.py exports it, the same string is built here."""
    try:
        from ci_perf.reports.markdown import comment_marker as shared
    except ImportError:
        return f"<!-- ci-perf:{scenario}:{tool} -->"
    return str(shared(scenario, tool))


def lookup_marker(scenario: str, tool: str) -> str:
    """Without a scenario, any of our comments that carries a digest will do."""
    return comment_marker(scenario, tool) if scenario else "<!-- ci-perf-digest:"


def client_from_env(env: Mapping[str, str]) -> ApiClient:
    token = next((env[v] for v in TOKEN_VARS if env.get(v)), "")
    if not token:
        raise ConfigError("GITHUB_TOKEN is not set: pass `GITHUB_TOKEN: ${{ github.token }}` in the step's env")
    headers = {
        "Authorization": f"Bearer {token}",
        "Accept": "application/vnd.github+json",
        "X-GitHub-Api-Version": API_VERSION,
        "User-Agent": "ci-perf",
    }
    return ApiClient(env.get("GITHUB_API_URL") or "https://api.github.com", headers, secrets=[token])


def pr_number(env: Mapping[str, str]) -> int | None:
    """From the event payload (pull_request.number), else from GITHUB_REF refs/pull/N/merge."""
    event = _event(env)
    number = (event.get("pull_request") or {}).get("number")
    if isinstance(number, int):
        return number
    parts = env.get("GITHUB_REF", "").split("/")
    if len(parts) == 4 and parts[:2] == ["refs", "pull"] and parts[2].isdigit():
        return int(parts[2])
    return None


def find_comment(client: ApiClient, repo: str, number: int, marker: str) -> dict[str, Any] | None:
    for comment in client.paginate(f"/repos/{repo}/issues/{number}/comments", {"per_page": 100}):
        if marker in (comment.get("body") or ""):
            return dict(comment)
    return None


def upsert_comment(client: ApiClient, repo: str, number: int, marker: str, body: str) -> PublishStatus:
    """Edit the comment carrying `marker` in place, or create it (never twice: see create_or_update)."""
    comments = f"/repos/{repo}/issues/{number}/comments"
    action, resp = client.create_or_update(
        lambda: find_comment(client, repo, number, marker),
        lambda found: client.request("PATCH", f"/repos/{repo}/issues/comments/{found['id']}", json={"body": body}),
        lambda: client.request("POST", comments, json={"body": body}, idempotent=False),
    )
    url = str(resp.json().get("html_url", ""))
    return PublishStatus(True, action, f"comment {action} on #{number}", url)


def previous_comment_body(
    env: Mapping[str, str], scenario: str, tool: str, *, client: ApiClient | None = None
) -> str | None:
    number = pr_number(env)
    if number is None:
        return None
    found = find_comment(
        client or client_from_env(env), require(env, "GITHUB_REPOSITORY"), number, lookup_marker(scenario, tool)
    )
    return str(found["body"]) if found else None


def compose(body: str, marker: str, digest: str = "") -> str:
    """Marker first, digest last; the middle is cut if the whole would exceed GitHub's limit. A digest
    already in `body` (re-publishing a folder whose comment.md an earlier publish wrote) is replaced."""
    if digest:
        body = strip_digest(body)
    head = "" if body.startswith(marker) else marker + "\n"
    tail = f"\n{digest}" if digest else ""
    room = MAX_BODY - len(head) - len(tail)
    if len(body) > room:
        cut = "\n\n… (truncated: see the job summary for the full report)"
        body = body[: room - len(cut)] + cut
    return head + body + tail


# --- workflow commands and files ----------------------------------------------------------------


def add_mask_line(secret: str) -> str:
    """`::add-mask::` so the runner hides `secret` in later log lines (print it, don't log it)."""
    return f"::add-mask::{escape_data(secret)}"


def write_outputs(outputs: Mapping[str, str], env: Mapping[str, str]) -> Path | None:
    """Append name=value lines to $GITHUB_OUTPUT; multiline values use a random heredoc delimiter."""
    target = env.get("GITHUB_OUTPUT")
    if not target or not outputs:
        return None
    lines = []
    for name, value in outputs.items():
        if "\n" in value or "\r" in value:
            delim = f"ghadelimiter_{uuid.uuid4()}"
            lines.append(f"{name}<<{delim}\n{value}\n{delim}")
        else:
            lines.append(f"{name}={value}")
    with open(target, "a", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    return Path(target)


def append_summary(markdown: str, env: Mapping[str, str], report_dir: Path) -> Path:
    """Append to $GITHUB_STEP_SUMMARY, or write report_dir/summary.md when it is unset (act, laptop)."""
    target = Path(env["GITHUB_STEP_SUMMARY"]) if env.get("GITHUB_STEP_SUMMARY") else report_dir / "summary.md"
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "a", encoding="utf-8") as fh:
        fh.write(markdown.rstrip("\n") + "\n")
    return target


# --- the publisher ------------------------------------------------------------------------------


def publish_github(
    body: str,
    *,
    scenario: str,
    tool: str,
    report_dir: Path,
    env: Mapping[str, str],
    summary: str | None = None,
    outputs: Mapping[str, str] | None = None,
    annotations: Sequence[Annotation] = (),
    digest: str = "",
    pr: int | None = None,
    client: ApiClient | None = None,
    stream: TextIO | None = None,
    comment: bool = True,
) -> PublishStatus:
    """Summary, outputs and annotations first (they need no permission), then the sticky comment."""
    out = stream or sys.stdout
    text = body if summary is None else summary  # "" means: no summary (the workflow_run publisher)
    files = [str(append_summary(text, env, report_dir))] if text else []
    written = write_outputs(outputs or {}, env)
    files += [str(written)] if written else []
    for a in annotations:
        print(annotation_line(a), file=out)
    if not comment:
        return PublishStatus(False, "skipped", "comment turned off", files=tuple(files))
    marker = comment_marker(scenario, tool)
    full = compose(body, marker, digest)
    number = pr if pr is not None else pr_number(env)
    if env.get("ACT") == "true" or number is None:
        why = "ACT=true: no API calls" if env.get("ACT") == "true" else "not a pull request"
        return _not_posted("skipped", why, full, scenario, tool, number, report_dir, files)
    if client is None and not any(env.get(v) for v in TOKEN_VARS):
        # No token must not fail a job whose gate passed: say so once, keep every file.
        why = "GITHUB_TOKEN is not set: PR comment skipped; pass `GITHUB_TOKEN: ${{ github.token }}` in the step's env"
        print(annotation_line(Annotation("warning", why, "ci-perf")), file=out)
        return _not_posted("skipped", why, full, scenario, tool, number, report_dir, files, warned=True)
    api = client or client_from_env(env)
    try:
        status = upsert_comment(api, require(env, "GITHUB_REPOSITORY"), number, marker, full)
    except ApiError as exc:
        # A rate limit says when to retry (in the message); only a plain 403 is a read-only token.
        forbidden = exc.status == 403 and exc.retry_after_s is None
        hint = " (read-only token: fork PR? use the workflow_run publisher)" if forbidden else ""
        print(annotation_line(Annotation("warning", f"PR comment not posted: {exc}{hint}", "ci-perf")), file=out)
        why = f"not posted: {exc}{hint}"
        return _not_posted("failed", why, full, scenario, tool, number, report_dir, files, warned=True)
    return PublishStatus(status.posted, status.action, status.detail, status.url, tuple(files))


def _not_posted(
    action: str,
    why: str,
    body: str,
    scenario: str,
    tool: str,
    number: int | None,
    report_dir: Path,
    files: list[str],
    warned: bool = False,
) -> PublishStatus:
    """Leave what a later publisher needs: the comment body and where it goes."""
    report_dir.mkdir(parents=True, exist_ok=True)
    (report_dir / "comment.md").write_text(body, encoding="utf-8")
    request = {"pr_number": number, "scenario": scenario, "tool": tool}
    (report_dir / "publish-request.json").write_text(json.dumps(request) + "\n", encoding="utf-8")
    done = (*files, str(report_dir / "comment.md"), str(report_dir / "publish-request.json"))
    return PublishStatus(False, action, why, files=done, warned=warned)


def publish_pending(
    report_dir: Path, env: Mapping[str, str], *, client: ApiClient | None = None, stream: TextIO | None = None
) -> PublishStatus:
    """The workflow_run side of the fork fallback: post what a PR job left in report_dir."""
    request = json.loads((report_dir / "publish-request.json").read_text(encoding="utf-8"))
    number = request.get("pr_number")
    if not isinstance(number, int):
        return PublishStatus(False, "skipped", "the uploaded run was not for a pull request")
    api = client or client_from_env(env)
    head_sha = (_event(env).get("workflow_run") or {}).get("head_sha")
    if head_sha:
        pull = api.request("GET", f"/repos/{require(env, 'GITHUB_REPOSITORY')}/pulls/{number}").json()
        if pull.get("head", {}).get("sha") != head_sha:
            return PublishStatus(False, "skipped", f"PR #{number} is not the triggering run's head commit")
    body = (report_dir / "comment.md").read_text(encoding="utf-8")
    return publish_github(
        body,
        scenario=str(request["scenario"]),
        tool=str(request["tool"]),
        report_dir=report_dir,
        env=env,
        summary="",
        pr=number,
        client=api,
        stream=stream,
    )


def _event(env: Mapping[str, str]) -> dict[str, Any]:
    path = env.get("GITHUB_EVENT_PATH")
    if not path:
        return {}
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
