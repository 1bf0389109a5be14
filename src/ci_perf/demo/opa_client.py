"""A small keep-alive HTTP/1.1 client for the policy service (the demo has no HTTP client dependency).

It asks the way SARK's OPA client asks: `POST {OPA_URL}{OPA_POLICY_PATH}` with `{"input": ...}`, one
timeout for the whole exchange (SARK's default is 1 s). Connections are reused; a broken one is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

MAX_IDLE = 64


class PolicyServiceError(Exception):
    """The policy service could not be asked or gave no usable answer (the caller fails closed)."""


@dataclass
class _Conn:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()


class OpaClient:
    def __init__(self, base_url: str, timeout_s: float) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"OPA_URL={base_url!r}: the demo speaks plain http://host:port")
        self.host, self.port = parts.hostname, parts.port or 80
        self.prefix = parts.path.rstrip("/")
        self.timeout_s = timeout_s
        self._idle: list[_Conn] = []

    async def post(self, path: str, doc: dict[str, Any]) -> Any:
        """POST a JSON document; returns the decoded JSON answer of a 2xx reply."""
        body = json.dumps(doc).encode()
        status, data = await self._exchange("POST", path, body)
        if not 200 <= status < 300:
            raise PolicyServiceError(f"policy service answered HTTP {status}")
        try:
            return json.loads(data)
        except ValueError:
            raise PolicyServiceError("policy service answered with something that is not JSON") from None

    async def healthy(self) -> bool:
        try:
            status, _ = await self._exchange("GET", "/health", b"")
        except PolicyServiceError:
            return False
        return status == 200

    async def close(self) -> None:
        while self._idle:
            self._idle.pop().close()

    async def _exchange(self, method: str, path: str, body: bytes) -> tuple[int, bytes]:
        try:
            async with asyncio.timeout(self.timeout_s):
                return await self._exchange_once(method, path, body)
        except TimeoutError:
            raise PolicyServiceError(f"policy service did not answer within {self.timeout_s:g} s") from None
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            raise PolicyServiceError(f"policy service unreachable ({type(exc).__name__}: {exc})") from None

    async def _exchange_once(self, method: str, path: str, body: bytes) -> tuple[int, bytes]:
        reused = bool(self._idle)
        conn = self._idle.pop() if reused else await self._connect()
        try:
            result, keep = await self._request(conn, method, path, body)
        except (OSError, asyncio.IncompleteReadError):
            conn.close()
            if not reused:
                raise
            conn = await self._connect()  # an idle connection the server had closed: one fresh try
            try:
                result, keep = await self._request(conn, method, path, body)
            except BaseException:
                conn.close()
                raise
        except BaseException:
            conn.close()
            raise
        if keep and len(self._idle) < MAX_IDLE:
            self._idle.append(conn)
        else:
            conn.close()
        return result

    async def _connect(self) -> _Conn:
        reader, writer = await asyncio.open_connection(self.host, self.port)
        return _Conn(reader, writer)

    async def _request(self, conn: _Conn, method: str, path: str, body: bytes) -> tuple[tuple[int, bytes], bool]:
        head = (f"{method} {self.prefix}{path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")  # fmt: skip
        conn.writer.write(head.encode() + body)
        await conn.writer.drain()
        status_line = await conn.reader.readuntil(b"\r\n")
        parts = status_line.split(None, 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/"):
            raise ValueError(f"not an HTTP answer: {status_line[:40]!r}")
        status = int(parts[1])
        headers: dict[str, str] = {}
        while (line := await conn.reader.readuntil(b"\r\n")) != b"\r\n":
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        if headers.get("transfer-encoding", "").lower() == "chunked":
            data = await _read_chunked(conn.reader)
        else:
            data = await conn.reader.readexactly(int(headers.get("content-length", "0")))
        keep = headers.get("connection", "").lower() != "close"
        return (status, data), keep


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    out = bytearray()
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
        if size == 0:
            while await reader.readuntil(b"\r\n") != b"\r\n":
                pass  # trailers
            return bytes(out)
        out += await reader.readexactly(size)
        await reader.readexactly(2)
