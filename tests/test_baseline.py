"""Baseline sources: files, GitHub and GitLab artifacts (local fake API), and the comment digest."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

import synth
from ci_perf import baseline as bl
from ci_perf.digest import decode_digest as read_digest
from ci_perf.digest import encode_digest as digest_of
from ci_perf.errors import ConfigError, ResultError
from ci_perf.model import Evaluation, Outcome, RunResult
from ci_perf.publish import github as gh
from ci_perf.publish import gitlab as gl
from fake_api import FakeApi, Reply, fake_api

GH_TOKEN = "ghs_baselineSecret987654"
GL_TOKEN = "glpat-baselineSecret987"
REPO = "octo/sark"


@pytest.fixture
def api() -> Iterator[FakeApi]:
    with fake_api() as fake:
        yield fake


def _outcome_json(result: RunResult) -> bytes:
    return json.dumps(Outcome(result, Evaluation()).to_dict()).encode()


def _zip(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _gh_env(api: FakeApi) -> dict[str, str]:
    return {
        "GITHUB_TOKEN": GH_TOKEN,
        "GITHUB_API_URL": api.url,
        "GITHUB_REPOSITORY": REPO,
        "GITHUB_BASE_REF": "main",
        "GITHUB_RUN_ID": "999",
        "GITHUB_WORKFLOW_REF": f"{REPO}/.github/workflows/perf.yml@refs/pull/7/merge",
    }


def test_github_artifact_of_the_latest_successful_base_run(api: FakeApi) -> None:
    result = synth.run(3)
    runs = f"/repos/{REPO}/actions/workflows/perf.yml/runs"
    api.add("GET", runs, Reply(200, {"total_count": 2, "workflow_runs": [{"id": 999}, {"id": 555}]}))
    api.add(
        "GET",
        f"/repos/{REPO}/actions/runs/555/artifacts",
        Reply(
            200,
            {
                "total_count": 1,
                "artifacts": [
                    {
                        "id": 42,
                        "name": "ci-perf-results",
                        "expired": False,
                        "archive_download_url": f"{api.url}/repos/{REPO}/actions/artifacts/42/zip",
                    }
                ],
            },
        ),
    )
    # GitHub answers the download with a redirect to blob storage on another host
    api.add(
        "GET",
        f"/repos/{REPO}/actions/artifacts/42/zip",
        Reply(302, headers={"Location": f"http://localhost:{api.port}/blob/42.zip?sig=x"}),
    )
    api.add("GET", "/blob/42.zip", Reply(200, body=_zip({"ci-perf-report/results.json": _outcome_json(result)})))
    client = gh.client_from_env(_gh_env(api))
    fetched = bl.fetch_baseline("github-artifact", env=_gh_env(api), client=client)
    assert fetched.result == result
    assert fetched.source == "github-artifact:ci-perf-results@main (run 555)"
    assert api.calls() == [
        ("GET", runs, {"branch": "main", "status": "success", "per_page": "5"}),
        ("GET", f"/repos/{REPO}/actions/runs/555/artifacts", {"name": "ci-perf-results"}),
        ("GET", f"/repos/{REPO}/actions/artifacts/42/zip", {}),
        ("GET", "/blob/42.zip", {"sig": "x"}),
    ]
    for rec in api.requests[:3]:
        assert rec.headers["authorization"] == f"Bearer {GH_TOKEN}"
        assert rec.headers["x-github-api-version"] == "2022-11-28"
    assert "authorization" not in api.requests[3].headers  # the token never goes to blob storage


def test_github_without_artifact_or_token(api: FakeApi) -> None:
    api.add("GET", f"/repos/{REPO}/actions/workflows/perf.yml/runs", Reply(200, {"workflow_runs": [{"id": 1}]}))
    api.add(
        "GET",
        f"/repos/{REPO}/actions/runs/1/artifacts",
        Reply(200, {"artifacts": [{"id": 2, "name": "ci-perf-results", "expired": True, "archive_download_url": "x"}]}),
    )
    fetched = bl.fetch_baseline("github-artifact", env=_gh_env(api))
    assert fetched.result is None and "no successful run on main" in fetched.reason
    with pytest.raises(ConfigError, match=r"^GITHUB_TOKEN is not set"):
        bl.fetch_baseline("github-artifact", env={"GITHUB_REPOSITORY": REPO})


def test_github_bad_credentials_are_a_reason_with_the_token_masked(api: FakeApi) -> None:
    api.add(
        "GET", f"/repos/{REPO}/actions/workflows/perf.yml/runs", Reply(401, {"message": f"Bad credentials: {GH_TOKEN}"})
    )
    fetched = bl.fetch_baseline("github-artifact", env=_gh_env(api))
    assert fetched.result is None and "401" in fetched.reason
    assert GH_TOKEN not in fetched.reason and "***" in fetched.reason


def test_gitlab_raw_artifact_of_the_target_branch(api: FakeApi) -> None:
    result = synth.run(4)
    path = "/api/v4/projects/group%2Fsark/jobs/artifacts/main/raw/reports/results.json"
    found = Reply(200, body=_outcome_json(result))
    gone = Reply(404, {"message": "404 Not Found"})
    api.add("GET", path, lambda rec: found if rec.query.get("job") == "perf" else gone)
    env = {
        "CI_PERF_GITLAB_TOKEN": GL_TOKEN,
        "CI_API_V4_URL": f"{api.url}/api/v4",
        "CI_PROJECT_ID": "group/sark",
        "CI_MERGE_REQUEST_TARGET_BRANCH_NAME": "main",
        "CI_JOB_NAME": "perf",
    }
    fetched = bl.fetch_baseline("gitlab-artifact", env=env)
    assert fetched.result == result and fetched.source == "gitlab-artifact:perf@main"
    assert api.calls() == [("GET", path, {"job": "perf"})]
    assert api.requests[0].headers["private-token"] == GL_TOKEN
    missing = bl.fetch_baseline("gitlab-artifact:other", env=env)
    assert missing.result is None and missing.reason == "no reports/results.json from job 'other' on main"


def test_gitlab_job_token_is_enough_for_reading(api: FakeApi) -> None:
    path = "/api/v4/projects/7/jobs/artifacts/develop/raw/out/results.json"
    api.add("GET", path, Reply(200, body=json.dumps(synth.run(1).to_dict()).encode()))
    env = {
        "CI_JOB_TOKEN": "job-token-abc",
        "CI_API_V4_URL": f"{api.url}/api/v4",
        "CI_PROJECT_ID": "7",
        "CI_DEFAULT_BRANCH": "develop",
    }
    fetched = bl.from_gitlab_artifact(env, job="perf", path="out/results.json")
    assert fetched.result is not None and api.requests[0].headers["job-token"] == "job-token-abc"


def test_file_sources_save_and_show(tmp_path: Path) -> None:
    result = synth.run(5, with_histogram=True)
    (tmp_path / "results.json").write_bytes(_outcome_json(result))
    assert bl.fetch_baseline(f"file:{tmp_path / 'results.json'}", env={}).result == result
    saved = bl.save_baseline(Outcome(result, Evaluation()), tmp_path / "b" / "baseline.json")
    assert bl.fetch_baseline(str(saved), env={}).result == result  # a bare existing path works too
    shown = bl.show_baseline(saved)
    assert shown.splitlines()[0].startswith(f"{saved}: smoke_test with locust 2.47.0, 10 users, 60s")
    assert "GET /api/v1/servers/" in shown
    assert bl.fetch_baseline("file:nope.json", env={}).reason == "nope.json does not exist"
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ResultError, match=r"bad\.json"):
        bl.fetch_baseline(f"file:{tmp_path / 'bad.json'}", env={})
    with pytest.raises(ConfigError, match="unknown baseline"):
        bl.fetch_baseline("s3://bucket", env={})


def test_digest_round_trip_and_size() -> None:
    result = synth.run(6, with_histogram=True)
    digest = digest_of(result)
    assert digest.startswith("<!-- ci-perf-digest:") and digest.endswith(" -->") and "--" not in digest[20:-4]
    assert len(digest) < 6000  # 3 endpoints x 12 windows
    decoded = read_digest(f"## report\n\n{digest}\n")
    slim = replace(
        result,
        total=replace(result.total, histogram=None),
        endpoints=tuple(replace(e, histogram=None) for e in result.endpoints),
    )
    assert decoded == slim
    assert digest_of(result) == digest  # deterministic (gzip mtime=0)
    assert read_digest("no digest here") is None
    assert read_digest("<!-- ci-perf-digest:AAAA -->") is None


def test_digest_drops_endpoint_windows_then_endpoints_when_too_big() -> None:
    result = synth.run(7, n_windows=200)
    small = read_digest(digest_of(result, max_chars=4000))
    assert small is not None and small.total.windows == result.total.windows
    assert all(not e.windows for e in small.endpoints)
    tiny = read_digest(digest_of(result, max_chars=10))
    assert tiny is not None and tiny.endpoints == ()


def test_comment_source_reads_the_previous_sticky_comment(api: FakeApi) -> None:
    result = synth.run(8)
    marker = gh.comment_marker("smoke_test", "locust")
    api.add(
        "GET",
        f"/repos/{REPO}/issues/7/comments",
        Reply(200, [{"id": 1, "body": "unrelated"}, {"id": 2, "body": f"{marker}\nreport\n{digest_of(result)}"}]),
    )
    env = {**_gh_env(api), "GITHUB_REF": "refs/pull/7/merge"}
    fetched = bl.fetch_baseline("comment", env=env, scenario="smoke_test", tool="locust")
    assert fetched.result is not None and fetched.result.meta == result.meta
    assert fetched.source == "comment (previous push)"


def test_comment_source_on_gitlab(api: FakeApi) -> None:
    notes = "/api/v4/projects/9/merge_requests/3/notes"
    api.add("GET", notes, Reply(200, [{"id": 1, "body": "<!-- ci-perf:smoke_test:k6 -->\nno digest", "system": False}]))
    env = {
        "GITLAB_CI": "true",
        "GITLAB_TOKEN": GL_TOKEN,
        "CI_API_V4_URL": f"{api.url}/api/v4",
        "CI_PROJECT_ID": "9",
        "CI_MERGE_REQUEST_IID": "3",
    }
    fetched = bl.fetch_baseline("comment", env=env, scenario="smoke_test", tool="k6")
    assert fetched.result is None and fetched.reason == "no previous comment with a digest"
    assert gl.previous_note_body({}, "s", "k6") is None
