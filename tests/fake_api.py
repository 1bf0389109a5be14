"""A local stand-in for the GitHub and GitLab REST APIs: a stdlib HTTP server in a thread that
answers scripted replies and records every request exactly (method, path, query, headers, JSON body).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str  # as sent, still percent-encoded
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: Any  # parsed JSON, or None

    def auth(self) -> str:
        return self.headers.get("authorization", "")


@dataclass(frozen=True)
class Reply:
    status: int = 200
    json: Any = None
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


Responder = Reply | Callable[[Recorded], Reply]


class DropConnection(Exception):
    """Raised by a responder: the server closes the connection without answering."""


class FakeApi:
    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], list[Responder]] = {}
        self.requests: list[Recorded] = []
        self.url = ""
        self.port = 0

    def add(self, method: str, path: str, *replies: Responder) -> None:
        """Replies are used in order; the last one repeats."""
        self.routes[(method, path)] = list(replies)

    def calls(self) -> list[tuple[str, str, dict[str, str]]]:
        return [(r.method, r.path, r.query) for r in self.requests]

    def answer(self, rec: Recorded) -> Reply:
        self.requests.append(rec)
        queue = self.routes.get((rec.method, rec.path))
        if not queue:
            return Reply(404, {"message": "Not Found"})
        responder = queue.pop(0) if len(queue) > 1 else queue[0]
        return responder(rec) if callable(responder) else responder


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _serve(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        rec = Recorded(
            method=self.command,
            path=parts.path,
            query={k: v[-1] for k, v in parse_qs(parts.query).items()},
            headers={k.lower(): v for k, v in self.headers.items()},
            body=json.loads(raw) if raw else None,
        )
        try:
            reply = self.server.fake.answer(rec)
        except DropConnection:  # no answer at all: the client sees the connection closed
            self.close_connection = True
            return
        data = json.dumps(reply.json).encode() if reply.json is not None else reply.body
        self.send_response(reply.status)
        if reply.json is not None:
            self.send_header("Content-Type", "application/json; charset=utf-8")
        for k, v in reply.headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve


class _Server(ThreadingHTTPServer):
    fake: FakeApi


@contextmanager
def fake_api() -> Iterator[FakeApi]:
    fake = FakeApi()
    server = _Server(("127.0.0.1", 0), _Handler)
    server.fake = fake
    fake.port = server.server_address[1]
    fake.url = f"http://127.0.0.1:{fake.port}"
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()


def link_next(url: str) -> dict[str, str]:
    return {"Link": f'<{url}>; rel="next"'}


def answer_lost(action: Callable[[Recorded], Reply], reply: Reply | None) -> Callable[[Recorded], Reply]:
    """A responder that carries the request out (`action`) and then answers `reply` instead, as an API
    does when it created the thing but its gateway failed (a 5xx after the write); None: no answer at
    all, the connection is closed."""

    def respond(rec: Recorded) -> Reply:
        action(rec)
        if reply is None:
            raise DropConnection()
        return reply

    return respond
