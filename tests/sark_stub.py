"""A small in-memory HTTP server that answers like the SARK API (stdlib only).

For fast runner/parser tests that need real HTTP but not PostgreSQL and Redis; the demo target
(ci_perf.demo) is the full stand-in. Run: python tests/sark_stub.py --port 8000 [--api-key K]
[--latency-ms 0] [--rate-limit 0] [--fail-rate 0]
"""

from __future__ import annotations

import argparse
import json
import random
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlparse

SERVERS: dict[str, dict[str, Any]] = {}
LOCK = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as uvicorn does
    opts: argparse.Namespace
    window: ClassVar[list[float]] = [0.0, 0]  # rate limit: [window start, count]

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
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

    def _gate(self) -> bool:
        """Auth, rate limit, injected latency and failures; False when already answered."""
        o = self.opts
        if o.latency_ms:
            time.sleep(o.latency_ms / 1000)
        if self.path.startswith("/health"):
            return True
        if o.api_key and self.headers.get("X-API-Key") != o.api_key:
            self._send(401, {"detail": "Missing or invalid API key"})
            return False
        if o.rate_limit:
            with LOCK:
                now = time.monotonic()
                if now - self.window[0] >= 1.0:
                    self.window[0], self.window[1] = now, 0
                self.window[1] += 1
                over = self.window[1] > o.rate_limit
            if over:
                self._send(429, {"detail": "Rate limit exceeded"}, {"Retry-After": "1"})
                return False
        if o.fail_rate and random.random() < o.fail_rate:
            self._send(500, {"detail": "injected failure"})
            return False
        return True

    def do_GET(self) -> None:
        if not self._gate():
            return
        url = urlparse(self.path)
        if url.path in ("/health", "/health/", "/health/ready", "/health/live"):
            return self._send(200, {"status": "healthy"})
        if url.path == "/api/v1/servers/":
            q = parse_qs(url.query)
            search = (q.get("search") or [""])[0]
            limit = int((q.get("limit") or ["50"])[0])
            with LOCK:
                items = [s for s in SERVERS.values() if search in s["name"]]
            return self._send(200, {"items": items[:limit], "total": len(items)})
        if url.path.startswith("/api/v1/servers/"):
            sid = url.path.rsplit("/", 1)[-1]
            with LOCK:
                server = SERVERS.get(sid)
            return self._send(200, server) if server else self._send(404, {"detail": "Server not found"})
        self._send(404, {"detail": "Not Found"})

    def do_POST(self) -> None:
        body = self._body()  # read it even when answering early, or the kept-alive connection desyncs
        if not self._gate():
            return
        if body is None:
            return self._send(422, {"detail": "invalid JSON"})
        if self.path == "/api/v1/servers/":
            if not body.get("name"):
                return self._send(422, {"detail": "name is required"})
            sid = str(uuid.uuid4())
            with LOCK:
                SERVERS[sid] = {"id": sid, "status": "active", **body}
            return self._send(201, {"server_id": sid, "status": "registered"})
        if self.path == "/api/v1/policy/evaluate":
            decision = "deny" if "delete" in str(body.get("tool", "")) else "allow"
            return self._send(200, {"decision": decision, "reason": "stub", "cache_hit": False})
        if self.path == "/api/auth/api-keys":
            return self._send(201, {"id": str(uuid.uuid4()), "key": "sk_test_" + uuid.uuid4().hex})
        self._send(404, {"detail": "Not Found"})


class Server(ThreadingHTTPServer):
    # socketserver listens with a backlog of 5: dozens of VUs connecting at once overflow it, and each
    # dropped SYN costs its VU a 1 s retransmit (k6 reports it as http_req_blocked).
    request_queue_size = 256


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--api-key", default="")
    p.add_argument("--latency-ms", type=float, default=0.0)
    p.add_argument("--rate-limit", type=int, default=0, help="requests per second before 429")
    p.add_argument("--fail-rate", type=float, default=0.0)
    Handler.opts = p.parse_args()
    server = Server(("127.0.0.1", Handler.opts.port), Handler)
    server.daemon_threads = True
    print(f"sark stub on http://127.0.0.1:{Handler.opts.port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
