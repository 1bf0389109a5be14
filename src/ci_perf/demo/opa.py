"""An OPA-compatible policy service for the demo: `python -m ci_perf.demo.opa --host H --port P`.

It speaks the part of OPA's REST API SARK uses: `POST /v1/data/<path>` with `{"input": ...}` answers
`{"result": {"allow", "audit_reason", "filtered_parameters", "audit_id"}}` (the fields SARK's OPA client
reads) for any path, decided by ci_perf.demo.rules; `GET /health` answers 200 `{}`. A bare ASGI app on
uvicorn: it sits on the hot path of every uncached policy decision, so it does no routing or validation
beyond that. Logs go to stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from ci_perf.demo.rules import decide

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

log = logging.getLogger("ci_perf.demo.opa")
MAX_BODY = 1 << 20


def answer(body: bytes) -> tuple[int, dict[str, Any]]:
    """The status and JSON document for one `POST /v1/data/...` body."""
    try:
        doc = json.loads(body or b"{}")
    except ValueError:
        return 400, {"code": "invalid_parameter", "message": "body is not valid JSON"}
    if not isinstance(doc, dict):
        return 400, {"code": "invalid_parameter", "message": "body must be an object"}
    allow, reason = decide(doc.get("input"))
    params = (doc.get("input") or {}).get("context", {}) if isinstance(doc.get("input"), dict) else {}
    filtered = params.get("parameters") if allow and isinstance(params, dict) else None
    return 200, {"result": {"allow": allow, "audit_reason": reason, "filtered_parameters": filtered,
                            "audit_id": str(uuid.uuid4())}}  # fmt: skip


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    if scope["type"] != "http":
        return
    method, path = scope["method"], scope["path"]
    if method == "GET" and path in ("/health", "/health/"):
        await _reply(send, 200, {})
    elif method == "POST" and path.startswith("/v1/data"):
        body = await _body(receive)
        status, doc = (413, {"code": "invalid_parameter", "message": "body too large"}) if body is None \
            else answer(body)  # fmt: skip
        await _reply(send, status, doc)
    else:
        await _reply(send, 404, {"code": "resource_not_found", "message": f"{method} {path} is not served here"})


async def _body(receive: Receive) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            return None
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


async def _reply(send: Send, status: int, doc: dict[str, Any]) -> None:
    body = json.dumps(doc).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ci_perf.demo.opa", description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8181)
    p.add_argument("--log-level", default="info")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    import uvicorn

    log.info("policy stand-in on %s:%d (POST /v1/data/<path>, GET /health)", args.host, args.port)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, access_log=False, lifespan="on")
    return 0


if __name__ == "__main__":
    sys.exit(main())
