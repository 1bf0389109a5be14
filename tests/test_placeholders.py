"""Stack placeholders (C4): known names, filling, secrets kept off command lines, one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from ci_perf.errors import ConfigError
from ci_perf.services import placeholders as ph
from ci_perf.services.base import StackConfig
from ci_perf.services.docker_spec import api_spec, db_spec, redis_spec, service_spec, stack_values
from ci_perf.services.services_spec import DatabaseSpec, ServiceSpec, parse_databases, parse_services


def config(**kw: object) -> StackConfig:
    return StackConfig(backend="local", log_dir=Path("/nonexistent"), run_id="r1", **kw)  # type: ignore[arg-type]


def test_values_name_every_part_of_the_stack() -> None:
    cfg = config(databases=(DatabaseSpec("sark_audit"),), services=(ServiceSpec("opa", command="x"),),
                 db_password="p@ss", jwt_secret="s3cret")  # fmt: skip
    values = ph.stack_values(cfg, ph.Address("127.0.0.1", 5433), ph.Address("127.0.0.1", 6380),
                             ph.Address("127.0.0.1", 8001), {"opa": ph.Address("127.0.0.1", 8181)})  # fmt: skip
    assert values["database_url"] == "postgresql://sark:p%40ss@127.0.0.1:5433/sark"
    assert values["sark_audit_db"] == "sark_audit"
    assert values["sark_audit_url"] == "postgresql://sark:p%40ss@127.0.0.1:5433/sark_audit"
    assert values["redis_url"] == "redis://127.0.0.1:6380/0" and values["api_port"] == "8001"
    assert values["opa_url"] == "http://127.0.0.1:8181" and values["jwt_secret"] == "s3cret"
    assert set(ph.known_names(cfg)) == {*values, "host", "port"}


def test_unknown_placeholder_is_one_line_naming_it_and_the_known_ones() -> None:
    cfg = config(api_env={"OPA_URL": "{opa_url}"})
    with pytest.raises(ConfigError) as err:
        ph.check(cfg)
    message = str(err.value)
    assert "\n" not in message and "unknown placeholder {opa_url} in api_env.OPA_URL" in message
    assert "{db_host}" in message and "{jwt_secret}" in message


def test_shell_syntax_is_left_alone() -> None:
    values = {"port": "1"}
    assert ph.fill("echo ${HOME} $PATH {port} '{\"a\": 1}'", values) == "echo ${HOME} $PATH 1 '{\"a\": 1}'"


def test_secrets_reach_a_shell_command_through_its_env_not_its_argv() -> None:
    values = {"db_password": "hunter2", "port": "9"}
    text, env = ph.fill_shell("app --pw={db_password} --port {port}", values, {"db_password"})
    assert text == "app --pw=${CI_PERF_SECRET_DB_PASSWORD} --port 9"
    assert env == {"CI_PERF_SECRET_DB_PASSWORD": "hunter2"}


def test_docker_bridge_values_are_container_names_and_secrets_in_args_are_refused() -> None:
    cfg = StackConfig(backend="docker", log_dir=Path("/x"), run_id="r1", docker_network="bridge",
                      databases=(DatabaseSpec("sark_audit"),),
                      services=(ServiceSpec("opa", image="opa:1", args=("run", "--addr", "{host}:{port}"), port=8181),),
                      api_env={"OPA_URL": "{opa_url}", "TIMESCALE_DB": "{sark_audit_db}", "H": "{db_host}"},
                      api_command="serve --secret {jwt_secret} --port {port}", jwt_secret="tok")  # fmt: skip
    db, redis = db_spec(cfg, False), redis_spec(cfg)
    ports = {"opa": (8181, 18181)}
    api = api_spec(cfg, "img", None, db, redis, ports)
    assert api.env["OPA_URL"] == "http://ci-perf-r1-opa:8181" and api.env["H"] == "ci-perf-r1-db"
    assert api.env["TIMESCALE_DB"] == "sark_audit"
    assert api.command == ["sh", "-c", "serve --secret ${CI_PERF_SECRET_JWT_SECRET} --port 8000"]
    assert api.env["CI_PERF_SECRET_JWT_SECRET"] == "tok"
    values = stack_values(cfg, db, redis, api.port, ports)
    opa = service_spec(cfg, cfg.services[0], ports["opa"], values)
    assert opa.command == ["run", "--addr", "0.0.0.0:8181"] and (opa.port, opa.host_port) == (8181, 18181)
    bad = ServiceSpec("opa", image="opa:1", args=("--key={jwt_secret}",))
    with pytest.raises(ConfigError, match=r"args\[0\] puts a secret on a command line"):
        service_spec(cfg, bad, ports["opa"], values)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"db": {"command": "x"}}, "taken by the stack itself"),
        ({"Opa": {"command": "x"}}, "must be lowercase"),
        ({"opa": {}}, "needs a command (local backend) or an image"),
        ({"opa": {"command": "x", "healthz": "/"}}, "unknown key 'healthz'"),
        ({"opa": {"command": "x", "health": "health"}}, "must be an HTTP path"),
        ({"opa": {"image": "x", "args": "run"}}, "args must be a list"),
        ({"opa": {"image": "x", "port": "http"}}, "must be a port number"),
    ],
)
def test_bad_service_declarations_are_one_line(value: object, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_services(value)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_databases_take_names_or_mappings() -> None:
    assert parse_databases(["sark_audit", {"name": "other", "user": "audit"}]) == (
        DatabaseSpec("sark_audit"), DatabaseSpec("other", "audit"))  # fmt: skip
    assert parse_databases("a,b") == (DatabaseSpec("a"), DatabaseSpec("b"))
    with pytest.raises(ConfigError, match="twice"):
        parse_databases(["a", "a"])
    with pytest.raises(ConfigError, match="must be lowercase"):
        parse_databases(["drop table"])
