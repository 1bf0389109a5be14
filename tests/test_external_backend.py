"""The external backend: waits for an API someone else runs (the stdlib stub here), and fails clearly."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from ci_perf.errors import ConfigError, ServiceError
from ci_perf.services.base import StackConfig, get_backend
from conftest import free_port


def _config(host: str, **kw: object) -> StackConfig:
    return StackConfig(backend="external", log_dir=Path("unused"), host=host, **kw)  # type: ignore[arg-type]


def test_external_waits_for_the_stub(sark_stub: str) -> None:
    stack = get_backend(_config(sark_stub + "/", health_timeout_s=10))
    info = stack.up()
    assert info.base_url == sark_stub and info.database_url == ""
    stack.down()
    stack.down()


def test_external_dead_port_names_url_and_error() -> None:
    port = free_port()
    stack = get_backend(_config(f"http://127.0.0.1:{port}", health_timeout_s=1.5))
    start = time.monotonic()
    with pytest.raises(ServiceError) as err:
        stack.up()
    assert time.monotonic() - start < 10
    message = str(err.value)
    assert f"http://127.0.0.1:{port}/health/" in message and "ConnectionError" in message


def test_external_unhealthy_answer_is_reported(sark_stub: str) -> None:
    stack = get_backend(_config(sark_stub, health_path="/health/nope", health_timeout_s=1.5))
    with pytest.raises(ServiceError, match=r"last answer: HTTP 404 .*Not Found"):
        stack.up()


@pytest.mark.parametrize("host", ["", "127.0.0.1:8000"])
def test_external_needs_a_url(host: str) -> None:
    with pytest.raises(ConfigError):
        get_backend(_config(host)).up()
