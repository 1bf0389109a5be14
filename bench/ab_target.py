"""A git repository whose commits differ only in how slow a tiny API is: the target of same-runner A/B
trials (bench/verdict_trials.py --same-runner) and of tests/test_ab.py.

Each commit holds app.py (GET /health/, GET /work which sleeps the milliseconds in latency_ms) and
latency_ms; `ci-perf run --api-command API_COMMAND` starts it in the tree it runs from. LOCUSTFILE sends
/work without think time, so a few seconds give hundreds of requests.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

APP = '''\
"""A tiny API: /health/ and /work, which sleeps the milliseconds committed in latency_ms."""
import http.server, json, sys, time
from pathlib import Path

DELAY = float(Path("latency_ms").read_text()) / 1000


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path.startswith("/work"):
            time.sleep(DELAY)
        body = json.dumps({"ok": True}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
'''

LOCUSTFILE = """\
from locust import FastHttpUser, constant, task


class Worker(FastHttpUser):
    wait_time = constant(0.01)

    @task
    def work(self):
        self.client.get("/work")
"""

API_COMMAND = f"exec {sys.executable} app.py {{port}}"


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout.strip()


def make_repo(repo: Path, latencies_ms: Sequence[tuple[str, float]]) -> list[str]:
    """One commit per (message, latency) in order; returns the commits' hashes. A commit whose latency
    equals the previous one changes a comment only (an A/A pair of commits)."""
    repo.mkdir(parents=True)
    git(repo, "init", "-q")
    git(repo, "config", "user.email", "ci@example.invalid")
    git(repo, "config", "user.name", "ci")
    (repo / "app.py").write_text(APP)
    commits = []
    for i, (message, latency) in enumerate(latencies_ms):
        (repo / "latency_ms").write_text(f"{latency:g}\n")
        (repo / "NOTES").write_text(f"commit {i}: {message}\n")
        git(repo, "add", ".")
        git(repo, "commit", "-qm", message)
        commits.append(git(repo, "rev-parse", "HEAD"))
    return commits


def write_locustfile(path: Path) -> Path:
    path.write_text(LOCUSTFILE)
    return path
