"""The local backend finds PostgreSQL of any major and names the install command when a part is missing."""

from __future__ import annotations

from pathlib import Path

import pytest

from ci_perf.errors import ConfigError
from ci_perf.services import local, procs


def fake_major(root: Path, major: str, tools: tuple[str, ...] = local.PG_TOOLS) -> Path:
    bindir = root / major / "bin"
    bindir.mkdir(parents=True)
    for tool in tools:
        (bindir / tool).write_text("#!/bin/sh\n")
    return bindir


@pytest.fixture
def no_pg_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI_PERF_PG_BIN", raising=False)
    monkeypatch.setattr(local.shutil, "which", lambda name: None)


def test_newest_complete_major_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_pg_elsewhere: None) -> None:
    fake_major(tmp_path, "9.6")
    fake_major(tmp_path, "14")
    newest = fake_major(tmp_path, "16")
    fake_major(tmp_path, "17", tools=("psql",))  # a client-only install is no server
    monkeypatch.setattr(local, "DEBIAN_PG_ROOT", tmp_path)
    assert local.find_pg_bindir() == newest


def test_missing_postgres_names_the_install_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_pg_elsewhere: None
) -> None:
    monkeypatch.setattr(local, "DEBIAN_PG_ROOT", tmp_path / "none")
    with pytest.raises(ConfigError) as err:
        local.pg_bindir()
    assert "apt-get install -y postgresql" in str(err.value) and "\n" not in str(err.value)


def test_pg_bin_override_must_hold_the_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI_PERF_PG_BIN", str(fake_major(tmp_path, "15", tools=("psql",))))
    with pytest.raises(ConfigError, match="has no initdb, postgres, pg_isready"):
        local.pg_bindir()


def test_install_hint_uses_sudo_only_when_not_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(local.os, "geteuid", lambda: 1001)
    assert local.apt_install("redis-server") == "sudo apt-get install -y redis-server"
    monkeypatch.setattr(local.os, "geteuid", lambda: 0)
    assert local.apt_install("redis-server") == "apt-get install -y redis-server"


def test_state_folder_is_per_user(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI_PERF_STATE_DIR", raising=False)
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    monkeypatch.setattr(procs.os, "geteuid", lambda: 1234)
    assert procs.state_dir() == Path("/tmp/ci-perf-runs-1234")


def test_down_all_sees_only_the_callers_state_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mine = tmp_path / "mine.json"
    mine.write_text("{}")
    monkeypatch.setattr(procs.os, "geteuid", lambda: mine.stat().st_uid + 1)  # as if another user called
    assert procs.own_state_files(tmp_path) == []
    monkeypatch.setattr(procs.os, "geteuid", lambda: mine.stat().st_uid)
    assert procs.own_state_files(tmp_path) == [mine]


def test_needs_names_the_missing_packages_of_the_local_backend_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_pg_elsewhere: None
) -> None:
    from ci_perf.services.needs import missing_packages

    monkeypatch.chdir(tmp_path)  # no ci-perf.yml here
    monkeypatch.setattr(local, "DEBIAN_PG_ROOT", tmp_path / "none")
    assert missing_packages({}) == ["postgresql", "redis-server"]  # the default: local backend, the demo
    assert missing_packages({"CI_PERF_BACKEND": "docker"}) == []
    assert missing_packages({"CI_PERF_HOST": "http://127.0.0.1:8000"}) == []  # external
    assert missing_packages({"CI_PERF_USERS": "many"}) == []  # `ci-perf run` names a bad setting, not this
    (tmp_path / "ci-perf.yml").write_text("backend: external\nhost: http://127.0.0.1:8000\n")
    assert missing_packages({}) == []
    fake_major(tmp_path, "16")
    monkeypatch.setattr(local, "DEBIAN_PG_ROOT", tmp_path)
    assert missing_packages({"CI_PERF_BACKEND": "local"}) == ["redis-server"]


def test_a_runs_owner_is_live_only_as_the_same_process_in_the_same_namespace() -> None:
    """`down` leaves a run alone while its ci-perf lives: same pid and start time (a reused pid is not it),
    and a pid from another pid namespace or boot, which cannot be checked here, counts as live."""
    me = procs.owner()
    assert procs.live_owner(me) == f"its ci-perf (pid {me['pid']}) is still running"
    assert procs.live_owner({**me, "started": "1"}) == ""  # the pid now names another process
    assert "another pid namespace" in procs.live_owner({**me, "ns": "other-boot/pid:[1]"})
    assert procs.live_owner(None) == "" and procs.live_owner({}) == ""  # written before owners were recorded
