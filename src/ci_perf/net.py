"""Loopback helpers: every port ci-perf picks is on 127.0.0.1 (the network rule of CI machines)."""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path

from ci_perf.errors import ServiceError


def free_port() -> int:
    """A port free on 127.0.0.1 right now (the OS picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- who holds a port (Linux /proc): a health check that answers proves nothing if the answer is not ours ---


def listening_inodes(port: int) -> set[int]:
    """The sockets listening on TCP `port` (any local address) in this network namespace, by inode."""
    found: set[int] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            f = row.split()  # sl local_address rem_address st ... inode
            if len(f) > 9 and f[3] == "0A" and int(f[1].rsplit(":", 1)[1], 16) == port:
                found.add(int(f[9]))
    return found


def socket_inodes(pid: int) -> set[int] | None:
    """The sockets a process holds; None when we may not look (another user's process, without root)."""
    try:
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return None
    links = []
    for fd in fds:
        try:
            links.append(os.readlink(fd))
        except PermissionError:
            # Listing is a file-permission check, reading a link a ptrace one: root in a container without
            # CAP_SYS_PTRACE lists another user's fds but may not read them. Not visible, not "none".
            return None
        except OSError:  # closed meanwhile (the listing's own fd among them)
            pass
    return inodes_in(" ".join(links))


def inodes_in(text: str) -> set[int]:
    """The socket inodes in `ls -l /proc/*/fd` or readlink output."""
    return {int(m) for m in _SOCKET.findall(text)}


_SOCKET = re.compile(r"socket:\[(\d+)\]")


def holders(inodes: set[int]) -> str:
    """Who holds these sockets, as far as we may look: 'pid 123 (nginx)', or '' when hidden from us."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (socket_inodes(int(entry.name)) or set()) & inodes:
            try:
                name = (entry / "comm").read_text().strip()
            except OSError:
                name = "?"
            found.append(f"pid {entry.name} ({name})")
    return ", ".join(found[:3])


def ensure_port_free(port: int, what: str, fix: str) -> None:
    """A port ci-perf is about to give a service must be free: otherwise the health check (and the load)
    would reach whatever holds it. The machine's state, so an infrastructure error (exit 3)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers do: TIME_WAIT is not "in use"
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            held = holders(listening_inodes(port))
            raise ServiceError(
                f"{what}: port {port} on 127.0.0.1 is already in use{f' by {held}' if held else ''}; "
                f"stop what holds it, or {fix}"
            ) from None
