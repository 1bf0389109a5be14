"""A small in-memory HTTP server that answers like the SARK API (contract C3; stdlib + PyJWT).

For fast runner/parser/script tests that need real HTTP but not PostgreSQL and Redis; the demo target
(ci_perf.demo) is the full stand-in. Run:

    python tests/sark_stub.py --port 8000 [--auth api-key|jwt|none] [--api-key K] [--jwt-secret S]
        [--csrf] [--latency-ms 0] [--rate-limit 0] [--fail-rate 0] [--deny-all]
        [--fail-registrations] [--drop-key KEY] [--record FILE] [--echo]

--deny-all answers every policy evaluation 200 "deny" (SARK failing closed with its policy engine
down); --fail-registrations answers every registration 500 (the same outage, seen by registrations);
--drop-key leaves KEY out of every JSON answer; --record appends one JSON line per request (method,
path, query, headers, cookies, body) to FILE, for the tests that compare what the tools send.
--echo answers like an API that echoes what it was sent (the secret-masking test): a policy evaluation
gets 200 {"decision": <every request header>, ...}, every other API request a 500 or 401 whose short
body is one of the request's header or cookie values, in turn, so that each lands in a failure text.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import threading
import time
import uuid
from datetime import UTC, datetime
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlparse

SERVERS: dict[str, dict[str, Any]] = {}  # id -> stored registration, in registration order
LOCK = threading.Lock()
DESTRUCTIVE = re.compile(r"delete|drop|destroy|truncate|shutdown|wipe|exec|kill", re.I)
SECRET_KEY = re.compile(r"password|secret|token|credential|private_key", re.I)
WRITERS = ("admin", "developer")
# Headers every client sends: --echo's failure bodies skip them, so that the auth values come round often.
PLAIN_HEADERS = {"host", "user-agent", "accept", "accept-encoding", "connection", "content-length", "content-type"}


def decide(role: str, body: dict[str, Any]) -> tuple[str, str]:
    """C3's stand-in policy rules."""
    action, tool = str(body.get("action") or ""), str(body.get("tool") or "")
    if action == "tool:invoke":
        if DESTRUCTIVE.search(tool):
            return "deny", "destructive tool"
        if any(SECRET_KEY.search(str(k)) for k in (body.get("parameters") or {})):
            return "deny", "secret parameter"
        if tool == "critical" or _tool_sensitivity(body) == "critical":
            return "deny", "critical tool"
        return ("allow", "allowed") if role in WRITERS else ("deny", "role")
    if action == "server:register":
        if (body.get("parameters") or {}).get("sensitivity_level") == "critical":
            return "deny", "critical server"
        return ("allow", "allowed") if role in WRITERS else ("deny", "role")
    if action in ("server:read", "server:list"):
        return "allow", "read"
    if action in ("server:update", "server:delete"):
        return ("allow", "admin") if role == "admin" else ("deny", "admin only")
    return "deny", "unknown action"


def _tool_sensitivity(body: dict[str, Any]) -> str:
    with LOCK:
        server = SERVERS.get(str(body.get("server_id") or ""))
    for t in (server or {}).get("tools", ()):
        if isinstance(t, dict) and t.get("name") == body.get("tool"):
            return str(t.get("sensitivity_level") or "")
    return ""


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as uvicorn does
    opts: argparse.Namespace
    window: ClassVar[list[float]] = [0.0, 0]  # rate limit: [window start, count]
    record_lock = threading.Lock()
    echoed: ClassVar[list[int]] = [0]  # --echo: which header the next failure body carries

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        if self.opts.drop_key and isinstance(body, dict):
            body = {k: v for k, v in body.items() if k != self.opts.drop_key}
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> Any:
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        try:
            return json.loads(raw or b"{}")
        except ValueError:
            return None

    def _cookies(self) -> dict[str, str]:
        jar: SimpleCookie = SimpleCookie()
        jar.load(self.headers.get("Cookie") or "")
        return {k: m.value for k, m in jar.items()}

    def _record(self, body: Any) -> None:
        if not self.opts.record:
            return
        url = urlparse(self.path)
        line = json.dumps(
            {
                "t": time.time(),
                "method": self.command,
                "path": url.path,
                "query": parse_qs(url.query),
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "cookies": self._cookies(),
                "body": body,
            }
        )
        with self.record_lock, open(self.opts.record, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")

    def _echo(self) -> None:
        """--echo: the request's own headers and cookies back, in a 2xx body or a short failure body."""
        headers = dict(self.headers.items())
        if self.path == "/api/v1/policy/evaluate":
            body = {"decision": headers, "reason": self._cookies(), "filtered_parameters": None,
                    "audit_id": str(uuid.uuid4()), "cache_hit": False}  # fmt: skip
            return self._send(200, body)
        items = [(k, v) for k, v in headers.items() if k.lower() not in PLAIN_HEADERS]
        items += self._cookies().items()
        with LOCK:
            n = self.echoed[0]
            self.echoed[0] += 1
        name, value = items[n % len(items)]
        self._send(500 if n % 2 else 401, {name: value})

    def _role(self) -> str | None:
        """The caller's role; None when answered 401."""
        o = self.opts
        if o.auth == "api-key":
            if self.headers.get("X-API-Key") != o.api_key:
                self._send(401, {"detail": "Missing or invalid API key"})
                return None
            return "developer"
        if o.auth == "jwt":
            import jwt

            auth = self.headers.get("Authorization") or ""
            try:
                claims = jwt.decode(auth.removeprefix("Bearer "), o.jwt_secret, algorithms=["HS256"])
                if not auth.startswith("Bearer ") or claims.get("type") != "access":
                    raise jwt.InvalidTokenError("not an access token")
                uuid.UUID(str(claims["sub"]))
            except (jwt.InvalidTokenError, KeyError, ValueError):
                self._send(401, {"detail": "Could not validate credentials"})
                return None
            return str(claims.get("role") or "")
        return "developer"

    def _gate(self, write: bool) -> str | None:
        """Auth, CSRF, rate limit, injected latency and failures; the role, or None when answered."""
        o = self.opts
        if o.latency_ms:
            time.sleep(o.latency_ms / 1000)
        if urlparse(self.path).path.startswith("/health"):
            return "health"
        role = self._role()
        if role is None:
            return None
        if write and o.csrf:
            token = self.headers.get("X-CSRF-Token") or ""
            if len(token) < 32 or self._cookies().get("csrf_token") != token:
                self._send(403, {"detail": "CSRF token missing or invalid"})
                return None
        if o.rate_limit:
            with LOCK:
                now = time.monotonic()
                if now - self.window[0] >= 1.0:
                    self.window[0], self.window[1] = now, 0
                self.window[1] += 1
                over = self.window[1] > o.rate_limit
            if over:
                self._send(429, {"detail": "Rate limit exceeded"}, {"Retry-After": "1"})
                return None
        if o.fail_rate and random.random() < o.fail_rate:
            self._send(500, {"detail": "injected failure"})
            return None
        return role

    def do_GET(self) -> None:
        self._record(None)
        if self._gate(write=False) is None:
            return
        url = urlparse(self.path)
        if self.opts.echo and not url.path.startswith("/health"):
            return self._echo()
        if url.path in ("/health", "/health/", "/health/live"):
            return self._send(200, {"status": "healthy", "version": "stub"})
        if url.path == "/health/ready":
            return self._send(200, {"ready": True, "status": "ready"})
        if url.path == "/health/detailed":
            deps = {d: {"healthy": True} for d in ("postgres", "timescale", "redis", "opa")}
            return self._send(200, {"status": "healthy", "dependencies": deps})
        if url.path == "/api/v1/servers/":
            return self._send(200, list_page(parse_qs(url.query)))
        if url.path.startswith("/api/v1/servers/"):
            sid = url.path.rsplit("/", 1)[-1]
            with LOCK:
                server = SERVERS.get(sid)
            return self._send(200, server) if server else self._send(404, {"detail": "Server not found"})
        self._send(404, {"detail": "Not Found"})

    def do_POST(self) -> None:
        body = self._body()  # read it even when answering early, or the kept-alive connection desyncs
        self._record(body)
        role = self._gate(write=True)
        if role is None:
            return
        if self.opts.echo:
            return self._echo()
        if not isinstance(body, dict):
            return self._send(422, {"detail": "invalid JSON"})
        if self.path == "/api/v1/servers/":
            return self._register(role, body)
        if self.path == "/api/v1/policy/evaluate":
            try:
                uuid.UUID(str(body.get("user_id")))
            except ValueError:
                return self._send(422, {"detail": "user_id must be a UUID"})
            decision, reason = ("deny", "Policy evaluation error: stub") if self.opts.deny_all else decide(role, body)
            return self._send(
                200,
                {
                    "decision": decision,
                    "reason": reason,
                    "filtered_parameters": None,
                    "audit_id": str(uuid.uuid4()),
                    "cache_hit": False,
                },
            )
        self._send(404, {"detail": "Not Found"})

    def _register(self, role: str, body: dict[str, Any]) -> None:
        if (
            not body.get("name")
            or body.get("transport") not in ("http", "stdio", "sse")
            or not isinstance(body.get("tools"), list)
        ):
            return self._send(422, {"detail": "name, transport and tools are required"})
        if self.opts.fail_registrations:
            return self._send(500, {"detail": "Server registration failed"})
        if role not in WRITERS or body.get("sensitivity_level") == "critical":
            return self._send(403, {"detail": "Policy denied server registration"})
        sid = str(uuid.uuid4())
        meta = body.get("metadata") or {}
        with LOCK:
            SERVERS[sid] = {
                "id": sid,
                "name": body["name"],
                "description": body.get("description"),
                "transport": body["transport"],
                "endpoint": body.get("endpoint"),
                "status": "registered",
                "sensitivity_level": body.get("sensitivity_level") or "medium",
                "tools": body["tools"],
                "metadata": meta,
                "created_at": datetime.now(UTC).isoformat(),
            }
        self._send(201, {"server_id": sid, "status": "registered", "consul_id": None})


LIST_FIELDS = ("id", "name", "transport", "status", "sensitivity_level", "created_at")


def list_page(q: dict[str, list[str]]) -> dict[str, Any]:
    """Cursor paging and SARK's filters; the cursor is the position after the last item sent."""
    one = {k: v[0] for k, v in q.items()}
    limit = max(1, min(int(one.get("limit") or 50), 200))
    with LOCK:
        items = list(SERVERS.values())
    if one.get("sort_order") == "desc":
        items.reverse()
    if "status" in one:
        items = [s for s in items if s["status"] == one["status"]]
    if "sensitivity" in one:
        allowed = set(one["sensitivity"].split(","))
        items = [s for s in items if s["sensitivity_level"] in allowed]
    if "tags" in one:
        wanted = set(one["tags"].split(","))
        check = all if one.get("match_all_tags") == "true" else any
        items = [s for s in items if check(t in (s["metadata"].get("tags") or ()) for t in wanted)]
    for key in ("team_id", "owner_id"):
        if key in one:
            items = [s for s in items if s["metadata"].get(key) == one[key]]
    if "search" in one:
        items = [s for s in items if one["search"] in s["name"]]
    start = int(one.get("cursor") or 0)
    page = items[start : start + limit]
    more = start + limit < len(items)
    return {
        "items": [{k: s[k] for k in LIST_FIELDS} for s in page],
        "next_cursor": str(start + limit) if more else None,
        "has_more": more,
        "total": len(items) if one.get("include_total") == "true" else None,
    }


class Server(ThreadingHTTPServer):
    # socketserver listens with a backlog of 5: dozens of VUs connecting at once overflow it, and each
    # dropped SYN costs its VU a 1 s retransmit (k6 reports it as http_req_blocked).
    request_queue_size = 256


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--auth", choices=("api-key", "jwt", "none"), default="")
    p.add_argument("--api-key", default="")
    p.add_argument("--jwt-secret", default="")
    p.add_argument("--csrf", action="store_true", help="writes need X-CSRF-Token equal to cookie csrf_token")
    p.add_argument("--latency-ms", type=float, default=0.0)
    p.add_argument("--rate-limit", type=int, default=0, help="requests per second before 429")
    p.add_argument("--fail-rate", type=float, default=0.0)
    p.add_argument("--deny-all", action="store_true", help="every policy evaluation answers deny")
    p.add_argument("--fail-registrations", action="store_true", help="every registration answers 500")
    p.add_argument("--drop-key", default="", help="leave this key out of every JSON answer")
    p.add_argument("--record", default="", help="append every request as a JSON line to this file")
    p.add_argument("--echo", action="store_true", help="answer with the request's own headers and cookies")
    opts = p.parse_args()
    if not opts.auth:  # the old command line: --api-key K meant X-API-Key auth
        opts.auth = "api-key" if opts.api_key else "none"
    Handler.opts = opts
    server = Server(("127.0.0.1", opts.port), Handler)
    server.daemon_threads = True
    print(f"sark stub on http://127.0.0.1:{opts.port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
