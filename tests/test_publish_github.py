"""The GitHub publisher against a local server answering as GitHub's REST API documents."""

from __future__ import annotations

import io
import json
import re
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from ci_perf.errors import ConfigError
from ci_perf.publish import github as gh
from ci_perf.publish.api import ApiClient
from fake_api import FakeApi, Recorded, Reply, answer_lost, fake_api, link_next

TOKEN = "ghs_secretToken1234567890"
REPO = "octo/sark"
COMMENTS = f"/repos/{REPO}/issues/7/comments"
MARKER = "<!-- ci-perf:smoke_test:locust -->"


@pytest.fixture
def api() -> Iterator[FakeApi]:
    with fake_api() as fake:
        yield fake


def _env(api: FakeApi, tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        "GITHUB_TOKEN": TOKEN,
        "GITHUB_API_URL": api.url,
        "GITHUB_REPOSITORY": REPO,
        "GITHUB_REF": "refs/pull/7/merge",
        "GITHUB_STEP_SUMMARY": str(tmp_path / "step-summary.md"),
        "GITHUB_OUTPUT": str(tmp_path / "output.txt"),
        **extra,
    }


def _client(env: dict[str, str], waits: list[float]) -> ApiClient:
    client = gh.client_from_env(env)
    client.sleep = waits.append  # record, don't sleep
    client.backoff_s = 0.01
    return client


def _publish(
    env: dict[str, str], tmp_path: Path, waits: list[float], out: io.StringIO, body: str = "## Results\nall good"
) -> Any:
    return gh.publish_github(
        body,
        scenario="smoke_test",
        tool="locust",
        report_dir=tmp_path / "report",
        env=env,
        outputs={"status": "pass"},
        digest="<!-- ci-perf-digest:QUJD -->",
        client=_client(env, waits),
        stream=out,
    )


class CommentStore:
    """Issue comments as GitHub paginates them: per_page items a page, Link rel=next."""

    def __init__(self, api: FakeApi, others: int) -> None:
        self.api = api
        self.comments = [{"id": i, "body": f"looks good {i}", "user": {"login": "dev"}} for i in range(1, others + 1)]

    def list(self, rec: Recorded) -> Reply:
        per_page, page = int(rec.query.get("per_page", 30)), int(rec.query.get("page", 1))
        items = self.comments[(page - 1) * per_page : page * per_page]
        more = len(self.comments) > page * per_page
        headers = link_next(f"{self.api.url}{COMMENTS}?per_page={per_page}&page={page + 1}") if more else {}
        return Reply(200, items, headers=headers)

    def create(self, rec: Recorded) -> Reply:
        comment = {"id": 9001, "body": rec.body["body"], "html_url": "https://github.com/octo/sark/pull/7#c9001"}
        self.comments.append(comment)
        return Reply(201, comment)

    def edit(self, rec: Recorded) -> Reply:
        self.comments[-1]["body"] = rec.body["body"]
        return Reply(200, self.comments[-1])


def _check_headers(rec: Recorded) -> None:
    assert rec.headers["authorization"] == f"Bearer {TOKEN}"
    assert rec.headers["accept"] == "application/vnd.github+json"
    assert rec.headers["x-github-api-version"] == "2022-11-28"


def test_first_publish_creates_second_edits_the_comment_found_on_page_two(api: FakeApi, tmp_path: Path) -> None:
    store = CommentStore(api, others=150)
    api.add("GET", COMMENTS, store.list)
    api.add("POST", COMMENTS, store.create)
    api.add("PATCH", f"/repos/{REPO}/issues/comments/9001", store.edit)
    env, waits, out = _env(api, tmp_path), [], io.StringIO()

    first = _publish(env, tmp_path, waits, out)
    assert (first.posted, first.action) == (True, "created")
    assert api.calls() == [
        ("GET", COMMENTS, {"per_page": "100"}),
        ("GET", COMMENTS, {"per_page": "100", "page": "2"}),
        ("POST", COMMENTS, {}),
    ]
    expected_body = f"{MARKER}\n## Results\nall good\n<!-- ci-perf-digest:QUJD -->"
    assert api.requests[-1].body == {"body": expected_body}

    api.requests.clear()
    second = _publish(env, tmp_path, waits, out, body="## Results\nslower")
    assert (second.posted, second.action) == (True, "updated")
    assert api.calls() == [
        ("GET", COMMENTS, {"per_page": "100"}),
        ("GET", COMMENTS, {"per_page": "100", "page": "2"}),
        ("PATCH", f"/repos/{REPO}/issues/comments/9001", {}),
    ]
    assert api.requests[-1].body == {"body": f"{MARKER}\n## Results\nslower\n<!-- ci-perf-digest:QUJD -->"}
    for rec in api.requests:
        _check_headers(rec)
    assert len(store.comments) == 151 and waits == []
    assert "## Results" in (tmp_path / "step-summary.md").read_text()
    assert (tmp_path / "output.txt").read_text() == "status=pass\nstatus=pass\n"


def test_forbidden_falls_back_to_summary_and_files_without_raising(api: FakeApi, tmp_path: Path) -> None:
    api.add("GET", COMMENTS, Reply(200, []))
    api.add("POST", COMMENTS, Reply(403, {"message": "Resource not accessible by integration"}))
    env, waits, out = _env(api, tmp_path), [], io.StringIO()
    status = _publish(env, tmp_path, waits, out)
    assert (status.posted, status.action) == (False, "failed")
    assert "403" in status.detail and "fork PR" in status.detail
    assert out.getvalue().startswith("::warning title=ci-perf::PR comment not posted: POST ")
    assert "Resource not accessible by integration" in out.getvalue()
    report = tmp_path / "report"
    assert (report / "comment.md").read_text().startswith(MARKER)
    assert json.loads((report / "publish-request.json").read_text()) == {
        "pr_number": 7,
        "scenario": "smoke_test",
        "tool": "locust",
    }
    assert "all good" in (tmp_path / "step-summary.md").read_text()
    assert [r.method for r in api.requests] == ["GET", "POST"]  # a permission 403 is not retried
    assert TOKEN not in out.getvalue() + status.detail


def test_server_errors_are_retried_then_succeed(api: FakeApi, tmp_path: Path) -> None:
    api.add("GET", COMMENTS, Reply(502, {"message": "Server Error"}), Reply(503, body=b""), Reply(200, []))
    api.add("POST", COMMENTS, Reply(500, {"message": "boom"}), Reply(201, {"id": 1, "html_url": "u"}))
    waits: list[float] = []
    status = _publish(_env(api, tmp_path), tmp_path, waits, io.StringIO())
    assert status.posted and status.url == "u"
    # the failed create is not blindly repeated: the comments are listed again first
    assert [r.method for r in api.requests] == ["GET", "GET", "GET", "POST", "GET", "POST"]
    assert waits == [0.01, 0.02, 0.01]  # exponential backoff, reset per request


@pytest.mark.parametrize("lost", [Reply(502, {"message": "Server Error"}), None], ids=["502", "dropped"])
def test_a_create_whose_answer_is_lost_after_github_made_it_is_found_again_not_duplicated(
    api: FakeApi, tmp_path: Path, lost: Reply | None
) -> None:
    store = CommentStore(api, others=2)
    api.add("GET", COMMENTS, store.list)
    api.add("POST", COMMENTS, answer_lost(store.create, lost))
    api.add("PATCH", f"/repos/{REPO}/issues/comments/9001", store.edit)
    waits: list[float] = []
    status = _publish(_env(api, tmp_path), tmp_path, waits, io.StringIO())
    body = {"body": f"{MARKER}\n## Results\nall good\n<!-- ci-perf-digest:QUJD -->"}
    assert [(r.method, r.path, r.query, r.body) for r in api.requests] == [
        ("GET", COMMENTS, {"per_page": "100"}, None),
        ("POST", COMMENTS, {}, body),
        ("GET", COMMENTS, {"per_page": "100"}, None),
        ("PATCH", f"/repos/{REPO}/issues/comments/9001", {}, body),
    ]
    assert (status.posted, status.action) == (True, "updated") and waits == [0.01]
    assert [c["id"] for c in store.comments if MARKER in c["body"]] == [9001]


SECONDARY = "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."


@pytest.mark.parametrize(
    ("reply", "said", "waited"),
    [
        (Reply(403, {"message": SECONDARY}, headers={"Retry-After": "3600"}), "3600", []),
        (Reply(429, {"message": SECONDARY}, headers={"retry-after": "900"}), "900", []),
        (Reply(403, {"message": SECONDARY}), "240", [60.0, 120.0]),  # no header: 1 min, doubling
        (
            Reply(403, {"message": "API rate limit exceeded for installation ID 1."},
                  headers={"x-ratelimit-remaining": "0", "x-ratelimit-reset": "+600"}),  # 600 s from now
            "(599|600)",
            [],
        ),
    ],
)  # fmt: skip
def test_a_rate_limit_longer_than_the_budget_says_when_to_retry_not_fork_pr(
    api: FakeApi, tmp_path: Path, reply: Reply, said: str, waited: list[float]
) -> None:
    reset = reply.headers.get("x-ratelimit-reset", "")
    if reset.startswith("+"):  # epoch seconds, as GitHub sends it, counted from now
        reply = replace(reply, headers={**reply.headers, "x-ratelimit-reset": str(int(time.time()) + int(reset))})
    api.add("GET", COMMENTS, Reply(200, []))
    api.add("POST", COMMENTS, reply)
    out, waits = io.StringIO(), []
    status = _publish(_env(api, tmp_path), tmp_path, waits, out)
    assert (status.posted, status.action) == (False, "failed")
    assert re.search(rf"::warning title=ci-perf::PR comment not posted: POST .* rate limited, retry after {said} s",
                     out.getvalue())  # fmt: skip
    assert "fork PR" not in out.getvalue() + status.detail
    assert api.calls() == [("GET", COMMENTS, {"per_page": "100"})] + [("POST", COMMENTS, {})] * (len(waited) + 1)
    assert waits == waited


def test_a_422_shows_what_github_found_invalid(api: FakeApi, tmp_path: Path) -> None:
    invalid = {
        "message": "Validation Failed",
        "errors": [
            {"resource": "IssueComment", "code": "custom", "field": "body",
             "message": "body is too long (maximum is 65536 characters)"},
            {"resource": "IssueComment", "field": "body", "code": "missing_field"},
            "body contains an unsupported character",
        ],
        "documentation_url": "https://docs.github.com/rest/issues/comments#create-an-issue-comment",
        "status": "422",
    }  # fmt: skip
    api.add("GET", COMMENTS, Reply(200, []))
    api.add("POST", COMMENTS, Reply(422, invalid))
    out = io.StringIO()
    status = _publish(_env(api, tmp_path), tmp_path, [], out)
    expected = (
        "answered 422 Unprocessable Entity: Validation Failed; body is too long (maximum is 65536 characters); "
        "IssueComment body missing_field; body contains an unsupported character"
    )
    assert expected in status.detail and expected in out.getvalue()
    assert api.calls() == [("GET", COMMENTS, {"per_page": "100"}), ("POST", COMMENTS, {})]  # not retried


def test_rate_limits_wait_as_github_says(api: FakeApi, tmp_path: Path) -> None:
    secondary = Reply(403, {"message": "You have exceeded a secondary rate limit"}, headers={"Retry-After": "2"})
    primary = Reply(
        429,
        {"message": "API rate limit exceeded"},
        headers={"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(time.time()) + 30)},
    )
    api.add("GET", COMMENTS, secondary, Reply(200, []))
    api.add("POST", COMMENTS, primary, Reply(201, {"id": 1}))
    waits: list[float] = []
    status = _publish(_env(api, tmp_path), tmp_path, waits, io.StringIO())
    assert status.posted
    assert waits[0] == 2.0 and 25 <= waits[1] <= 30


def test_rate_limit_longer_than_max_wait_gives_up_without_raising(api: FakeApi, tmp_path: Path) -> None:
    api.add("GET", COMMENTS, Reply(429, {"message": "slow down"}, headers={"Retry-After": "3600"}))
    out = io.StringIO()
    status = _publish(_env(api, tmp_path), tmp_path, [], out)
    assert not status.posted and "429" in status.detail and len(api.requests) == 1


def test_act_makes_no_request_and_writes_files(api: FakeApi, tmp_path: Path) -> None:
    env = _env(api, tmp_path, ACT="true")
    del env["GITHUB_STEP_SUMMARY"]
    status = _publish(env, tmp_path, [], io.StringIO())
    assert api.requests == []
    assert (status.posted, status.action) == (False, "skipped") and "ACT=true" in status.detail
    assert (tmp_path / "report" / "comment.md").read_text().startswith(MARKER)
    assert "all good" in (tmp_path / "report" / "summary.md").read_text()


def test_comment_off_still_writes_summary_and_outputs_but_calls_no_api(api: FakeApi, tmp_path: Path) -> None:
    env = _env(api, tmp_path)
    status = gh.publish_github(
        "all good",
        scenario="smoke_test",
        tool="locust",
        report_dir=tmp_path / "report",
        env=env,
        outputs={"status": "pass"},
        comment=False,
        stream=io.StringIO(),
    )
    assert api.requests == [] and (status.posted, status.action) == (False, "skipped")
    assert "all good" in Path(env["GITHUB_STEP_SUMMARY"]).read_text()
    assert "status=pass" in Path(env["GITHUB_OUTPUT"]).read_text()


def test_not_a_pull_request_posts_nothing(api: FakeApi, tmp_path: Path) -> None:
    env = _env(api, tmp_path, GITHUB_REF="refs/heads/main")
    status = _publish(env, tmp_path, [], io.StringIO())
    assert api.requests == [] and status.detail == "not a pull request"


def test_missing_token_is_one_line_naming_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^GITHUB_TOKEN is not set") as err:
        gh.client_from_env({})
    assert "\n" not in str(err.value)


def test_publishing_without_a_token_warns_once_skips_the_comment_and_keeps_the_files(tmp_path: Path) -> None:
    out = io.StringIO()
    status = gh.publish_github(
        "all good", scenario="s", tool="k6", report_dir=tmp_path, env={"GITHUB_REF": "refs/pull/3/merge"}, stream=out
    )
    assert (status.posted, status.action) == (False, "skipped") and "GITHUB_TOKEN" in status.detail
    lines = out.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].startswith("::warning") and "GITHUB_TOKEN is not set" in lines[0]
    assert "all good" in (tmp_path / "comment.md").read_text() and (tmp_path / "summary.md").is_file()


def test_publish_outcome_without_a_token_warns_once(
    api: FakeApi, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """What `ci-perf run` prints in a pull request with no token: the annotation, not also a status line."""
    import synth
    from ci_perf.config import Settings
    from ci_perf.model import Evaluation, Outcome
    from ci_perf.publish import publish_outcome

    env = _env(api, tmp_path)
    del env["GITHUB_TOKEN"]
    status = publish_outcome("github", Outcome(synth.run(1), Evaluation()), Settings(report_dir=tmp_path), {}, env)
    captured = capsys.readouterr()
    lines = [line for line in (captured.out + captured.err).splitlines() if "GITHUB_TOKEN" in line]
    assert len(lines) == 1 and lines[0].startswith("::warning"), lines
    assert status.action == "skipped" and api.requests == [] and (tmp_path / "comment.md").is_file()


def test_pr_number_from_event_then_ref(tmp_path: Path) -> None:
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"pull_request": {"number": 42}}))
    assert gh.pr_number({"GITHUB_EVENT_PATH": str(event), "GITHUB_REF": "refs/pull/7/merge"}) == 42
    assert gh.pr_number({"GITHUB_REF": "refs/pull/7/merge"}) == 7
    assert gh.pr_number({"GITHUB_REF": "refs/heads/main"}) is None


def test_workflow_commands_escape_and_outputs_use_heredoc(tmp_path: Path) -> None:
    line = gh.annotation_line(gh.Annotation("error", "p95 50%\r\nup", "a:b,c"))
    assert line == "::error title=a%3Ab%2Cc::p95 50%25%0D%0Aup"
    assert gh.add_mask_line("s3cr3t\nx") == "::add-mask::s3cr3t%0Ax"
    out = tmp_path / "out"
    gh.write_outputs({"single": "v", "multi": "a\nb"}, {"GITHUB_OUTPUT": str(out)})
    lines = out.read_text().splitlines()
    assert lines[0] == "single=v"
    assert lines[1].startswith("multi<<ghadelimiter_") and lines[2:4] == ["a", "b"]
    assert lines[4] == lines[1].split("<<")[1]


def test_long_body_is_truncated_keeping_marker_and_digest() -> None:
    full = gh.compose("x" * 70_000, MARKER, "<!-- ci-perf-digest:QUJD -->")
    assert len(full) <= gh.MAX_BODY
    assert full.startswith(MARKER) and full.endswith("<!-- ci-perf-digest:QUJD -->")
    assert "truncated" in full


def test_publish_pending_checks_the_head_commit(api: FakeApi, tmp_path: Path) -> None:
    report = tmp_path / "report"
    report.mkdir()
    (report / "comment.md").write_text(f"{MARKER}\nbody")
    (report / "publish-request.json").write_text(
        json.dumps({"pr_number": 7, "scenario": "smoke_test", "tool": "locust"})
    )
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"workflow_run": {"head_sha": "abc"}}))
    env = _env(api, tmp_path, GITHUB_EVENT_PATH=str(event), GITHUB_REF="refs/heads/main")
    api.add("GET", f"/repos/{REPO}/pulls/7", Reply(200, {"head": {"sha": "other"}}))
    status = gh.publish_pending(report, env, client=_client(env, []))
    assert not status.posted and "not the triggering run" in status.detail
    api.add("GET", f"/repos/{REPO}/pulls/7", Reply(200, {"head": {"sha": "abc"}}))
    api.add("GET", COMMENTS, Reply(200, []))
    api.add("POST", COMMENTS, Reply(201, {"id": 5}))
    status = gh.publish_pending(report, env, client=_client(env, []), stream=io.StringIO())
    assert status.posted and api.requests[-1].body == {"body": f"{MARKER}\nbody"}


def test_publish_outcome_writes_outputs_and_annotations(
    api: FakeApi, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import synth
    from ci_perf.compare import compare
    from ci_perf.config import Settings
    from ci_perf.model import Evaluation, Outcome
    from ci_perf.publish import publish_outcome

    result = synth.run(1, shift=0.5)
    outcome = Outcome(result, Evaluation(), compare(result, synth.run(2), "file:b.json"))
    report = tmp_path / "report"
    report.mkdir()
    (report / "summary.md").write_text("## rendered\n")
    written = {"summary.md": report / "summary.md", "results.json": report / "results.json"}
    api.add("GET", COMMENTS, Reply(200, []))
    api.add("POST", COMMENTS, Reply(201, {"id": 3}))
    env = _env(api, tmp_path)
    status = publish_outcome("github", outcome, Settings(report_dir=report), written, env)
    assert status.posted and api.requests[-1].body["body"].startswith(f"{MARKER}\n## rendered\n\n<!-- ci-perf-digest:")
    outputs = dict(line.split("=", 1) for line in (tmp_path / "output.txt").read_text().splitlines())
    assert outputs["regressions"] == str(len(outcome.comparison.regressions)) != "0"  # type: ignore[union-attr]
    assert outputs["summary"] == str(report / "summary.md") and outputs["status"] == "warn"  # regressions, not gating
    assert "::warning title=ci-perf regression::p95 of All requests +" in capsys.readouterr().out
    assert TOKEN not in (tmp_path / "output.txt").read_text()


def test_republishing_a_folder_embeds_the_digest_once(
    api: FakeApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first publish is refused and leaves comment.md (with its digest) for a later publisher;
    `ci-perf publish` on that folder then posts it with one digest, not two."""
    from ci_perf import pipeline
    from ci_perf.cli import main
    from report_fixtures import outcome_for

    report = tmp_path / "saved"
    pipeline.write_outputs(outcome_for("locust_failures"), report, [])
    for key, value in _env(api, tmp_path).items():
        monkeypatch.setenv(key, value)
    marker = "<!-- ci-perf:smoke_test:locust -->"
    api.add("GET", COMMENTS, Reply(200, []))
    api.add("POST", COMMENTS, Reply(403, {"message": "Resource not accessible by integration"}), Reply(201, {"id": 1}))
    assert main(["comment", str(report / "results.json"), "--publish", "github"]) == 0
    assert main(["publish", str(report / "results.json"), "--publish", "github"]) == 0
    posts = [r.body["body"] for r in api.requests if r.method == "POST"]
    assert [(r.method, r.path) for r in api.requests] == [("GET", COMMENTS), ("POST", COMMENTS)] * 2
    assert len(posts) == 2 and posts[0] == posts[1]
    assert [p.count("<!-- ci-perf-digest:") for p in posts] == [1, 1]
    assert posts[0].startswith(marker) and posts[0].count(marker) == 1
    assert posts[0].endswith(" -->")
