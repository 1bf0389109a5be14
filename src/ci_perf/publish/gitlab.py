"""Publish to GitLab: one sticky merge request note per scenario+tool, edited in place.

GitLab's CI_JOB_TOKEN cannot write notes, so posting needs a project/personal access token in
CI_PERF_GITLAB_TOKEN or GITLAB_TOKEN (sent as PRIVATE-TOKEN). The JUnit, load_performance and
metrics reports are files the pipeline declares; they need no API call. Like the GitHub publisher,
a 403 or an API failure leaves comment.md in the report folder and a warning, and never raises.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import quote

from ci_perf.errors import ConfigError
from ci_perf.publish.api import ApiClient, ApiError, PublishStatus, require
from ci_perf.publish.github import comment_marker, compose, lookup_marker

TOKEN_VARS = ("CI_PERF_GITLAB_TOKEN", "GITLAB_TOKEN")


def client_from_env(env: Mapping[str, str], *, allow_job_token: bool = False) -> ApiClient:
    """PRIVATE-TOKEN from CI_PERF_GITLAB_TOKEN / GITLAB_TOKEN; for reads, CI_JOB_TOKEN as JOB-TOKEN."""
    token = next((env[v] for v in TOKEN_VARS if env.get(v)), "")
    if token:
        header = {"PRIVATE-TOKEN": token}
    elif allow_job_token and env.get("CI_JOB_TOKEN"):
        token = env["CI_JOB_TOKEN"]
        header = {"JOB-TOKEN": token}
    else:
        raise ConfigError(
            "CI_PERF_GITLAB_TOKEN is not set: store a project access token (api scope) "
            "as a masked CI/CD variable named CI_PERF_GITLAB_TOKEN"
        )
    base = env.get("CI_API_V4_URL") or "https://gitlab.com/api/v4"
    return ApiClient(base, {**header, "User-Agent": "ci-perf"}, secrets=[token])


def _notes_path(env: Mapping[str, str], iid: str) -> str:
    project = quote(require(env, "CI_PROJECT_ID"), safe="")
    return f"/projects/{project}/merge_requests/{iid}/notes"


def find_note(client: ApiClient, notes_path: str, marker: str) -> dict[str, Any] | None:
    for note in client.paginate(notes_path, {"per_page": 100}):
        if not note.get("system") and marker in (note.get("body") or ""):
            return dict(note)
    return None


def upsert_note(client: ApiClient, notes_path: str, marker: str, body: str) -> PublishStatus:
    """Edit the note carrying `marker` in place, or create it (never twice: see create_or_update)."""
    action, resp = client.create_or_update(
        lambda: find_note(client, notes_path, marker),
        lambda found: client.request("PUT", f"{notes_path}/{found['id']}", json={"body": body}),
        lambda: client.request("POST", notes_path, json={"body": body}, idempotent=False),
    )
    return PublishStatus(True, action, f"note {resp.json().get('id')} {action}")


def previous_note_body(
    env: Mapping[str, str], scenario: str, tool: str, *, client: ApiClient | None = None
) -> str | None:
    iid = env.get("CI_MERGE_REQUEST_IID")
    if not iid:
        return None
    found = find_note(
        client or client_from_env(env, allow_job_token=True), _notes_path(env, iid), lookup_marker(scenario, tool)
    )
    return str(found["body"]) if found else None


def publish_gitlab(
    body: str,
    *,
    scenario: str,
    tool: str,
    report_dir: Path,
    env: Mapping[str, str],
    digest: str = "",
    client: ApiClient | None = None,
    stream: TextIO | None = None,
) -> PublishStatus:
    """Create or edit the sticky MR note; outside a merge request pipeline only comment.md is written."""
    marker = comment_marker(scenario, tool)
    full = compose(body, marker, digest)
    report_dir.mkdir(parents=True, exist_ok=True)
    (report_dir / "comment.md").write_text(full, encoding="utf-8")
    files = (str(report_dir / "comment.md"),)
    iid = env.get("CI_MERGE_REQUEST_IID")
    if not iid:
        return PublishStatus(False, "skipped", "not a merge request pipeline", files=files)
    if client is None and not any(env.get(v) for v in TOKEN_VARS):
        # No token must not fail a job whose gate passed: say so once, keep comment.md.
        why = (
            "CI_PERF_GITLAB_TOKEN is not set: MR note skipped; store a project access token (api scope) "
            "as a masked CI/CD variable named CI_PERF_GITLAB_TOKEN"
        )
        print(f"ci-perf: warning: {why}", file=stream or sys.stderr)
        return PublishStatus(False, "skipped", why, files=files, warned=True)
    api = client or client_from_env(env)
    try:
        status = upsert_note(api, _notes_path(env, iid), marker, full)
    except ApiError as exc:
        denied = exc.status in (401, 403) and exc.retry_after_s is None  # a rate limit says when to retry
        hint = " (the token needs the api scope and Reporter role)" if denied else ""
        print(f"ci-perf: warning: MR note not posted: {exc}{hint}", file=stream or sys.stderr)
        return PublishStatus(False, "failed", f"not posted: {exc}{hint}", files=files, warned=True)
    return PublishStatus(status.posted, status.action, status.detail, files=files)
