"""The GitLab MR-note publisher against a local server answering as GitLab's REST API documents."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ci_perf.errors import ConfigError
from ci_perf.publish import gitlab as gl
from ci_perf.publish.api import ApiClient
from fake_api import FakeApi, Recorded, Reply, answer_lost, fake_api, link_next

TOKEN = "glpat-secretToken123456"
NOTES = "/api/v4/projects/group%2Fsark/merge_requests/5/notes"
MARKER = "<!-- ci-perf:smoke_test:k6 -->"


@pytest.fixture
def api() -> Iterator[FakeApi]:
    with fake_api() as fake:
        yield fake


def _env(api: FakeApi, **extra: str) -> dict[str, str]:
    return {
        "CI_PERF_GITLAB_TOKEN": TOKEN,
        "CI_API_V4_URL": f"{api.url}/api/v4",
        "CI_PROJECT_ID": "group/sark",
        "CI_MERGE_REQUEST_IID": "5",
        **extra,
    }


def _client(env: dict[str, str], waits: list[float]) -> ApiClient:
    client = gl.client_from_env(env)
    client.sleep = waits.append
    client.backoff_s = 0.01
    return client


def _publish(env: dict[str, str], tmp_path: Path, waits: list[float], err: io.StringIO, body: str = "ok") -> Any:
    return gl.publish_gitlab(
        body, scenario="smoke_test", tool="k6", report_dir=tmp_path, env=env, client=_client(env, waits), stream=err
    )


class NoteStore:
    def __init__(self, api: FakeApi) -> None:
        self.api = api
        self.notes: list[dict[str, Any]] = [{"id": i, "body": f"note {i}", "system": False} for i in range(1, 4)]
        self.notes.append({"id": 4, "body": f"changed the description {MARKER}", "system": True})

    def list(self, rec: Recorded) -> Reply:
        per_page = 2  # the server decides the page size; Link and X-Next-Page say what follows
        page = int(rec.query.get("page", 1))
        items = self.notes[(page - 1) * per_page : page * per_page]
        more = len(self.notes) > page * per_page
        headers = {"X-Next-Page": str(page + 1) if more else ""}
        if more:
            headers.update(link_next(f"{self.api.url}{NOTES}?page={page + 1}&per_page=100"))
        return Reply(200, items, headers=headers)

    def create(self, rec: Recorded) -> Reply:
        note = {"id": 77, "body": rec.body["body"], "system": False}
        self.notes.append(note)
        return Reply(201, note)

    def update(self, rec: Recorded) -> Reply:
        self.notes[-1]["body"] = rec.body["body"]
        return Reply(200, self.notes[-1])


def test_first_publish_creates_second_updates_through_pagination(api: FakeApi, tmp_path: Path) -> None:
    store = NoteStore(api)
    api.add("GET", NOTES, store.list)
    api.add("POST", NOTES, store.create)
    api.add("PUT", f"{NOTES}/77", store.update)
    env, waits, err = _env(api), [], io.StringIO()
    first = _publish(env, tmp_path, waits, err)
    assert (first.posted, first.action) == (True, "created")
    assert api.calls() == [
        ("GET", NOTES, {"per_page": "100"}),
        ("GET", NOTES, {"page": "2", "per_page": "100"}),
        ("POST", NOTES, {}),
    ]
    assert api.requests[-1].body == {"body": f"{MARKER}\nok"}
    api.requests.clear()
    second = _publish(env, tmp_path, waits, err, body="slower")
    assert (second.posted, second.action) == (True, "updated")
    assert api.calls() == [
        ("GET", NOTES, {"per_page": "100"}),
        ("GET", NOTES, {"page": "2", "per_page": "100"}),
        ("GET", NOTES, {"page": "3", "per_page": "100"}),
        ("PUT", f"{NOTES}/77", {}),
    ]
    assert api.requests[-1].body == {"body": f"{MARKER}\nslower"}
    assert all(r.headers["private-token"] == TOKEN and "authorization" not in r.headers for r in api.requests)
    assert waits == [] and err.getvalue() == ""


def test_forbidden_warns_and_does_not_raise(api: FakeApi, tmp_path: Path) -> None:
    api.add("GET", NOTES, Reply(200, []))
    api.add("POST", NOTES, Reply(403, {"message": "403 Forbidden"}))
    err = io.StringIO()
    status = _publish(_env(api), tmp_path, [], err)
    assert (status.posted, status.action) == (False, "failed")
    assert err.getvalue().startswith("ci-perf: warning: MR note not posted: POST ")
    assert (tmp_path / "comment.md").read_text() == f"{MARKER}\nok"
    assert TOKEN not in err.getvalue() + status.detail


def test_server_errors_and_rate_limits_are_retried(api: FakeApi, tmp_path: Path) -> None:
    api.add("GET", NOTES, Reply(500, {"message": "500 Internal Server Error"}), Reply(200, []))
    api.add("POST", NOTES, Reply(429, {"message": "Retry later"}, headers={"Retry-After": "1"}), Reply(201, {"id": 1}))
    waits: list[float] = []
    status = _publish(_env(api), tmp_path, waits, io.StringIO())
    assert status.posted and waits == [0.01, 1.0]


def test_outside_a_merge_request_only_the_file_is_written(api: FakeApi, tmp_path: Path) -> None:
    env = _env(api)
    del env["CI_MERGE_REQUEST_IID"]
    status = _publish(env, tmp_path, [], io.StringIO())
    assert api.requests == [] and status.action == "skipped"
    assert (tmp_path / "comment.md").is_file()


def test_missing_token_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^CI_PERF_GITLAB_TOKEN is not set"):
        gl.client_from_env({})
    err = io.StringIO()
    status = gl.publish_gitlab(
        "x", scenario="s", tool="k6", report_dir=tmp_path, env={"CI_MERGE_REQUEST_IID": "1"}, stream=err
    )
    assert (status.posted, status.action) == (False, "skipped") and (tmp_path / "comment.md").is_file()
    assert err.getvalue().count("\n") == 1 and "warning: CI_PERF_GITLAB_TOKEN is not set" in err.getvalue()
    assert gl.client_from_env({"GITLAB_TOKEN": "t" * 8}).headers["PRIVATE-TOKEN"] == "t" * 8
    assert gl.client_from_env({"CI_JOB_TOKEN": "j" * 8}, allow_job_token=True).headers["JOB-TOKEN"] == "j" * 8


def test_a_create_answered_with_a_5xx_after_gitlab_made_it_is_found_again_not_duplicated(
    api: FakeApi, tmp_path: Path
) -> None:
    store = NoteStore(api)
    api.add("GET", NOTES, store.list)
    api.add("POST", NOTES, answer_lost(store.create, Reply(500, {"message": "500 Internal Server Error"})))
    api.add("PUT", f"{NOTES}/77", store.update)
    waits: list[float] = []
    status = _publish(_env(api), tmp_path, waits, io.StringIO())
    body = {"body": f"{MARKER}\nok"}
    listing = [
        ("GET", NOTES, {"per_page": "100"}, None),
        ("GET", NOTES, {"page": "2", "per_page": "100"}, None),
    ]
    assert [(r.method, r.path, r.query, r.body) for r in api.requests] == [
        *listing,
        ("POST", NOTES, {}, body),
        *listing,
        ("GET", NOTES, {"page": "3", "per_page": "100"}, None),  # the new note is on page 3
        ("PUT", f"{NOTES}/77", {}, body),
    ]
    assert (status.posted, status.action) == (True, "updated") and waits == [0.01]
    assert [n["id"] for n in store.notes if MARKER in n["body"] and not n["system"]] == [77]


def test_a_rate_limit_longer_than_the_budget_says_when_to_retry(api: FakeApi, tmp_path: Path) -> None:
    api.add("GET", NOTES, Reply(200, []))
    api.add("POST", NOTES, Reply(429, {"message": "Retry later"}, headers={"Retry-After": "3600"}))
    err = io.StringIO()
    status = _publish(_env(api), tmp_path, [], err)
    assert (status.posted, status.action) == (False, "failed")
    assert "answered 429 Too Many Requests: rate limited, retry after 3600 s (Retry later)" in err.getvalue()
    assert "api scope" not in err.getvalue() + status.detail
    assert api.calls() == [("GET", NOTES, {"per_page": "100"}), ("POST", NOTES, {})]


def test_a_refused_note_shows_gitlabs_reasons(api: FakeApi, tmp_path: Path) -> None:
    api.add("GET", NOTES, Reply(200, []))
    api.add("POST", NOTES, Reply(400, {"message": {"note": ["is too long (maximum is 1000000 characters)"]}}))
    err = io.StringIO()
    status = _publish(_env(api), tmp_path, [], err)
    assert "answered 400 Bad Request: note is too long (maximum is 1000000 characters)" in status.detail
    assert api.calls() == [("GET", NOTES, {"per_page": "100"}), ("POST", NOTES, {})]


def test_republishing_a_folder_embeds_the_digest_once(
    api: FakeApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """publish_gitlab leaves comment.md (with the digest) in the folder; publishing the folder again
    must post one digest, not two."""
    from ci_perf import pipeline
    from ci_perf.cli import main
    from report_fixtures import outcome_for

    report = tmp_path / "saved"
    pipeline.write_outputs(outcome_for("locust_failures"), report, [])
    for key, value in _env(api).items():
        monkeypatch.setenv(key, value)
    store = NoteStore(api)
    api.add("GET", NOTES, store.list)
    api.add("POST", NOTES, store.create)
    api.add("PUT", f"{NOTES}/77", store.update)
    assert main(["publish", str(report / "results.json"), "--publish", "gitlab"]) == 0
    assert main(["publish", str(report / "results.json"), "--publish", "gitlab"]) == 0
    sent = [(r.method, r.path, r.body["body"]) for r in api.requests if r.body]
    assert [s[:2] for s in sent] == [("POST", NOTES), ("PUT", f"{NOTES}/77")]
    assert sent[0][2] == sent[1][2] and sent[0][2].count("<!-- ci-perf-digest:") == 1
    assert (report / "comment.md").read_text().count("<!-- ci-perf-digest:") == 1


def test_publish_outcome_without_token_warns_once(
    api: FakeApi, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """What `ci-perf run` prints in a merge-request pipeline with no token: one line, no API call."""
    import synth
    from ci_perf.config import Settings
    from ci_perf.model import Evaluation, Outcome
    from ci_perf.publish import publish_outcome

    env = _env(api)
    del env["CI_PERF_GITLAB_TOKEN"]
    status = publish_outcome("gitlab", Outcome(synth.run(1), Evaluation()), Settings(report_dir=tmp_path), {}, env)
    captured = capsys.readouterr()
    lines = [line for line in (captured.out + captured.err).splitlines() if "CI_PERF_GITLAB_TOKEN" in line]
    assert len(lines) == 1 and lines[0].startswith("ci-perf: warning: CI_PERF_GITLAB_TOKEN is not set"), lines
    assert status.action == "skipped" and api.requests == [] and (tmp_path / "comment.md").is_file()
