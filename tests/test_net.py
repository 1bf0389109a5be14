"""ci_perf.net: whose socket answers on a port (the local backend's check that the answer is its own)."""

from __future__ import annotations

import os
import socket

import pytest

from ci_perf import net


def test_our_listening_socket_is_found_among_our_own_sockets() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        mine = net.socket_inodes(os.getpid())
        assert mine is not None and net.listening_inodes(port) & mine


def test_fds_we_may_list_but_not_read_are_not_visible_rather_than_none(monkeypatch: pytest.MonkeyPatch) -> None:
    """Root in a container without CAP_SYS_PTRACE lists another user's /proc/PID/fd but gets EACCES on each
    link (seen in the GitLab job image: PostgreSQL runs as postgres). That is "cannot tell", not "holds no
    socket": reading it as the latter failed a healthy run with "something else answers"."""

    def denied(path: object) -> str:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(net.os, "readlink", denied)
    assert net.socket_inodes(os.getpid()) is None
