"""The stack's coordinates reach the API by name (placeholders, the sark preset's env, the audit database,
a declared service beside the API) on the local and the docker backend; a service that never becomes
healthy is exit 3 with its log; an unknown placeholder is exit 2 before anything starts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from ci_perf import pipeline
from ci_perf.config import Settings
from ci_perf.services.base import get_backend
from ci_perf.services.docker_spec import DEMO_IMAGE
from ci_perf.services.services_spec import ServiceSpec
from env_recorder import command, recorded, sha
from stack_helpers import HAVE_SERVICES, SKIP_REASON
from test_docker_backend import assert_nothing_left, engine  # noqa: F401 (a fixture)

OPA = ServiceSpec("opa", command="exec python -m http.server {port} --bind {host}", image=DEMO_IMAGE,
                  args=("python", "-m", "http.server", "{port}", "--bind", "{host}"), health="/")  # fmt: skip
EXTRA_ENV = {"X_AUDIT_URL": "{sark_audit_url}", "X_API_PORT": "{api_port}", "X_OPA_PORT": "{opa_port}"}


@pytest.fixture(autouse=True)
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CI_PERF_STATE_DIR", str(tmp_path / "state"))
    return tmp_path / "state"


def bring_up_and_record(settings: Settings) -> tuple[dict[str, str], str, str, Any, str]:
    plan = pipeline.jwt_plan(settings, {})
    assert plan is not None
    config = pipeline.stack_config(settings, "", jwt_secret=plan[1])
    stack = get_backend(config)
    info = stack.up()
    try:
        assert set(info.pids or info.containers) >= {"api", "opa"}  # the system sampler sees the service
        log = (config.log_dir / "api.log").read_text() if settings.resolved_backend == "local" else ""
        if not log:  # docker: the container's output
            import docker

            client = docker.from_env()
            log = client.containers.get(info.containers["api"]).logs().decode()
            client.close()
    finally:
        stack.down()
    assert (config.log_dir / "opa.log").exists()
    env, audit, opa = recorded(log)
    return env, audit, opa, info, plan[1]


def assert_sark_wiring(env: dict[str, str], audit: str, opa: str, info: Any, secret: str, db_host: str,
                       db_port: int, opa_host: str) -> None:  # fmt: skip
    assert (env["POSTGRES_HOST"], env["POSTGRES_PORT"], env["POSTGRES_DB"]) == (db_host, str(db_port), "sark")
    assert (env["TIMESCALE_HOST"], env["TIMESCALE_PORT"], env["TIMESCALE_DB"]) == (db_host, str(db_port), "sark_audit")
    assert env["POSTGRES_PASSWORD"] == env["TIMESCALE_PASSWORD"] == sha("sark")
    assert env["SECRET_KEY"] == env["JWT_SECRET_KEY"] == sha(secret)
    assert env["REDIS_HOST"] == db_host and env["RATE_LIMIT_ENABLED"] == "false"
    assert env["OPA_URL"] == f"http://{opa_host}:{env['X_OPA_PORT']}"
    assert env["X_AUDIT_URL"] == f"postgresql://sark:sark@{db_host}:{db_port}/sark_audit"
    assert audit == "sark_audit" and opa == "200"  # the audit database exists; the service answered the API
    assert env["DATABASE_URL"].endswith(f"@{db_host}:{db_port}/sark")  # the generic names too


@pytest.mark.integration
@pytest.mark.skipif(not HAVE_SERVICES, reason=SKIP_REASON)
def test_local_backend_hands_the_api_its_coordinates_by_name(tmp_path: Path) -> None:
    settings = Settings(backend="local", preset="sark", api_command=command(), api_env=EXTRA_ENV,
                        services={"opa": OPA}, report_dir=tmp_path / "r", health_timeout_s=60)  # fmt: skip
    env, audit, opa, info, secret = bring_up_and_record(settings)
    db_port = urlsplit(info.database_url).port
    assert db_port and env["X_API_PORT"] == str(urlsplit(info.base_url).port)
    assert_sark_wiring(env, audit, opa, info, secret, "127.0.0.1", db_port, "127.0.0.1")


@pytest.mark.docker
@pytest.mark.parametrize("network", ["host", "bridge"])
def test_docker_backend_hands_the_api_its_coordinates_by_name(tmp_path: Path, network: str, engine: Any) -> None:  # noqa: F811
    settings = Settings(backend="docker", preset="sark", api_image=DEMO_IMAGE, api_command=command(),
                        db_image="ci-perf-test/timescaledb:pg15", redis_image="ci-perf-test/redis:7",
                        docker_network=network, api_env=EXTRA_ENV, services={"opa": OPA},
                        report_dir=tmp_path / "r", health_timeout_s=90)  # fmt: skip
    env, audit, opa, info, secret = bring_up_and_record(settings)
    if network == "host":
        db_port = urlsplit(info.database_url).port
        assert db_port is not None
        assert_sark_wiring(env, audit, opa, info, secret, "127.0.0.1", db_port, "127.0.0.1")
    else:
        run = info.run_id
        assert env["REDIS_HOST"] == f"ci-perf-{run}-redis"
        env["REDIS_HOST"] = f"ci-perf-{run}-db"  # the helper checks one host for every part
        assert_sark_wiring(env, audit, opa, info, secret, f"ci-perf-{run}-db", 5432, f"ci-perf-{run}-opa")
    assert_nothing_left(engine, info.run_id)


def ci_perf(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ci_perf", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=180)  # fmt: skip


@pytest.mark.integration
@pytest.mark.skipif(not HAVE_SERVICES, reason=SKIP_REASON)
def test_a_service_that_never_becomes_healthy_is_exit_3_with_its_log(tmp_path: Path, state_dir: Path) -> None:
    (tmp_path / "ci-perf.yml").write_text(
        "stack:\n  services:\n    policy:\n      command: 'echo policy-never-ready-marker; exec sleep 120'\n"
        "      health: tcp\n"
    )
    done = ci_perf("run", "--preset", "none", "--backend", "local", "--health-timeout", "4s", "-o", "r", cwd=tmp_path)
    assert done.returncode == 3, done.stderr
    assert "service policy (127.0.0.1:" in done.stderr and "did not become healthy within 4s" in done.stderr
    assert "policy-never-ready-marker" in done.stderr and "Traceback" not in done.stderr
    assert "policy-never-ready-marker" in (tmp_path / "r" / "logs" / "policy.log").read_text()
    assert not list(state_dir.glob("*.json"))  # every process stopped, every temp folder removed


def test_an_unknown_placeholder_is_exit_2_in_one_line_before_anything_starts(tmp_path: Path) -> None:
    done = ci_perf("run", "--backend", "local", "--api-env", "OPA_URL={opa_ur}", "-o", "r", cwd=tmp_path)
    assert done.returncode == 2
    line = done.stderr.strip()
    assert "\n" not in line and "unknown placeholder {opa_ur} in api_env.OPA_URL" in line and "{opa_url}" in line
    assert not (tmp_path / "r" / "logs").exists()
