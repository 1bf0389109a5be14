"""Redis INFO and PING latency over a plain socket (RESP is tiny), so that observing Redis needs no
client library in the CI image."""

from __future__ import annotations

import socket
import time
from urllib.parse import unquote, urlsplit

from ci_perf.observe.model import RedisSample
from ci_perf.observe.resources import MB, Unavailable


def _command(*args: str) -> bytes:
    out = [f"*{len(args)}\r\n".encode()]
    for a in args:
        raw = a.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(raw), raw))
    return b"".join(out)


class RedisConnection:
    def __init__(self, url: str, timeout_s: float = 2.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("redis", "") or not parts.hostname:
            raise Unavailable(f"Redis URL scheme {parts.scheme!r} is not supported by the sampler")
        try:
            self._sock = socket.create_connection((parts.hostname, parts.port or 6379), timeout=timeout_s)
        except OSError as exc:
            raise Unavailable(f"Redis not reachable ({type(exc).__name__})") from None
        self._buf = b""
        if parts.password:
            auth = ([unquote(parts.username)] if parts.username else []) + [unquote(parts.password)]
            self._call("AUTH", *auth)

    def close(self) -> None:
        self._sock.close()

    def _line(self) -> bytes:
        while b"\r\n" not in self._buf:
            chunk = self._sock.recv(65536)
            if not chunk:
                raise Unavailable("Redis closed the connection")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\r\n", 1)
        return line

    def _call(self, *args: str) -> str:
        """One command, one simple/bulk/integer reply as text (errors raise Unavailable)."""
        self._sock.sendall(_command(*args))
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"-":
            raise Unavailable(f"Redis answered {rest.decode(errors='replace')[:80]}")
        if kind != b"$":
            return rest.decode(errors="replace")
        size = int(rest)
        while len(self._buf) < size + 2:
            chunk = self._sock.recv(65536)
            if not chunk:
                raise Unavailable("Redis closed the connection")
            self._buf += chunk
        body, self._buf = self._buf[:size], self._buf[size + 2 :]
        return body.decode(errors="replace")

    def sample(self, t_s: float) -> RedisSample:
        start = time.perf_counter()
        self._call("PING")
        ping_ms = (time.perf_counter() - start) * 1000
        info = parse_info(self._call("INFO"))
        memory = info.get("used_memory")
        return RedisSample(
            t_s=t_s, ops_per_sec=_num(info.get("instantaneous_ops_per_sec")),
            clients=int(info["connected_clients"]) if "connected_clients" in info else None,
            used_memory_mb=round(float(memory) / MB, 2) if memory is not None else None,
            ping_ms=round(ping_ms, 3),
        )  # fmt: skip


def parse_info(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        if line and not line.startswith("#") and ":" in line:
            key, _, value = line.partition(":")
            out[key] = value.strip()
    return out


def _num(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
