"""A minimal, fast SARK look-alike on 127.0.0.1 for the benchmarks: one static JSON answer on every path.

The load benchmarks measure ci-perf and the load tools, so the target must cost almost nothing. nginx
(`return 200 '...'` answers every method, reads and discards request bodies, keeps connections alive)
does ~30,000 req/s on one worker here (ENVIRONMENT.md), far above what Locust or k6 can send. When
nginx is missing it is installed with apt-get (root only); failing that, a small asyncio server with
one process per core stands in (slower, but still well above Locust's rate).

The one body carries every key that the bundled locustfile and k6 script check (status, server_id,
id, items[].id, decision), so every request of every scenario succeeds.

  python bench/fast_target.py --port 8080     # serve until Ctrl-C
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

SERVER_ID = "0b7f6a52-bench-4d3e-9a57-fa57fa57fa57"
BODY = json.dumps(
    {
        "status": "healthy",
        "server_id": SERVER_ID,
        "id": SERVER_ID,
        "name": "bench",
        "items": [{"id": SERVER_ID}],
        "total": 1,
        "decision": "allow",
        "reason": "bench",
    },
    separators=(",", ":"),
)

NGINX_CONF = """daemon off;
master_process on;
worker_processes {workers};
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 8192; multi_accept on; }}
http {{
  access_log off;
  keepalive_timeout 120s;
  keepalive_requests 100000000;
  client_body_buffer_size 256k;
  client_body_temp_path {prefix}/body;
  proxy_temp_path {prefix}/proxy;
  fastcgi_temp_path {prefix}/fastcgi;
  uwsgi_temp_path {prefix}/uwsgi;
  scgi_temp_path {prefix}/scgi;
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    location / {{ default_type application/json; return 200 '{body}'; }}
  }}
}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def find_nginx(install: bool = True) -> str | None:
    """nginx on PATH or in /usr/sbin; installed with apt-get when missing and we are root."""
    for candidate in (shutil.which("nginx"), "/usr/sbin/nginx"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    if not install or os.geteuid() != 0 or not shutil.which("apt-get"):
        return None
    print("fast_target: installing nginx-light with apt-get", file=sys.stderr, flush=True)
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if subprocess.run(["apt-get", "install", "-y", "nginx-light"], env=env, check=False, **quiet).returncode:
        subprocess.run(["apt-get", "update"], env=env, check=False, **quiet)
        subprocess.run(["apt-get", "install", "-y", "nginx-light"], env=env, check=False, **quiet)
    return find_nginx(install=False)


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"fast target exited with code {proc.returncode}")
        with contextlib.suppress(OSError), urllib.request.urlopen(url + "/health/", timeout=1) as resp:
            if resp.status == 200:
                return
        time.sleep(0.05)
    raise RuntimeError(f"fast target at {url} did not answer within {timeout_s:.0f} s")


@contextlib.contextmanager
def serve(port: int = 0, workers: int = 1, kind: str = "auto") -> Iterator[str]:
    """Run the target for the block; yields its base URL. kind: auto | nginx | python."""
    port = port or free_port()
    nginx = find_nginx() if kind in ("auto", "nginx") else None
    if kind == "nginx" and nginx is None:
        raise RuntimeError("nginx is not installed and could not be installed")
    with tempfile.TemporaryDirectory(prefix="ci-perf-fast-target-") as prefix:
        if nginx:
            conf = Path(prefix) / "nginx.conf"
            conf.write_text(NGINX_CONF.format(workers=workers, prefix=prefix, port=port, body=BODY))
            argv = [nginx, "-p", prefix, "-e", f"{prefix}/error.log", "-c", str(conf)]
        else:
            argv = [sys.executable, __file__, "--python-server", "--port", str(port), "--workers", str(workers)]
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, start_new_session=True)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_ready(url, proc)
            yield url
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)  # nginx: fast shutdown of master and workers
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


# --- the stand-in when nginx cannot be had: HTTP/1.1 keep-alive, one fixed answer --------------------

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
    len(BODY),
    BODY.encode(),
)


class _Answer(asyncio.Protocol):
    """Answers each request once its headers and Content-Length body have arrived."""

    def __init__(self) -> None:
        self.buf = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        out = []
        while (end := self.buf.find(b"\r\n\r\n")) >= 0:
            head = self.buf[:end].lower() + b"\r\n"
            at = head.find(b"content-length:")
            length = int(head[at + 15 : head.find(b"\r\n", at)]) if at >= 0 else 0
            if len(self.buf) < end + 4 + length:
                break
            self.buf = self.buf[end + 4 + length :]
            out.append(RESPONSE)
        if out:
            self.transport.write(b"".join(out))


def _python_worker(sock: socket.socket) -> None:
    loop = asyncio.new_event_loop()
    loop.run_until_complete(loop.create_server(_Answer, sock=sock, backlog=4096))
    loop.run_forever()


def python_server(port: int, workers: int) -> None:
    """One listening socket shared by `workers` forked processes (the kernel spreads accepts)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(4096)
    for _ in range(max(workers, 1) - 1):
        if os.fork() == 0:
            _python_worker(sock)
    _python_worker(sock)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--workers", type=int, default=1, help="nginx worker processes (python: processes)")
    p.add_argument("--kind", choices=("auto", "nginx", "python"), default="auto")
    p.add_argument("--python-server", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.python_server:
        python_server(args.port, args.workers)
        return
    # SIGTERM as Ctrl-C: either way the block below ends and nginx is stopped, not orphaned.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    with serve(args.port, args.workers, args.kind) as url:
        print(f"fast target: {url} (Ctrl-C stops it)", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()


if __name__ == "__main__":
    main()
