"""ci-perf.yml's shape in one table: every key, its type and its range.

The file is checked against it before any value is used (one line naming the key and the expected
type), and the published JSON Schema is generated from it (`python -m ci_perf.config_schema >
docs/ci-perf.schema.json`; tests keep the file equal to the table and both validators in agreement).
The value parsers (config._coerce, parse_thresholds, parse_services, parse_jwt) check what a JSON
Schema cannot say: a duration's range when written as text, a threshold's unit, duplicate databases.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ci_perf.errors import ConfigError
from ci_perf.scenarios.catalog import SCENARIOS
from ci_perf.services.base import BACKEND_NAMES
from ci_perf.services.services_spec import NAME as SERVICE_NAME
from ci_perf.thresholds import BUILTIN, DEFAULT_GROUPS, ENDPOINT_METRICS
from ci_perf.tokens import ALGORITHMS

# "auto" (the action's default): containers where a Docker engine answers, else local processes.
BACKEND_CHOICES: tuple[str, ...] = (*BACKEND_NAMES, "auto")
SCHEMA_ID = "https://github.com/sark/perf-action/blob/main/docs/ci-perf.schema.json"

# Sane limits, the same for the file, the environment and the command line.
MAX_DURATION_S = 24 * 3600  # a load test, a health wait or a token lifetime longer than a day is a typo
MAX_USERS = 100_000
MAX_SPAWN_RATE = 100_000.0  # users per second
MAX_PROCESSES = 1024  # --processes, --workers, --expect-workers
MAX_WINDOW_S = 3600.0
MAX_MIN_EFFECT = 10.0  # 1000%
MAX_ROUNDS = 1000  # same-runner A/B rounds (ci_perf.ab checks even and at least 10)
DURATION = r"^\s*(?=[0-9])([0-9]+[hH])?([0-9]+[mM])?([0-9]+[sS]?)?\s*$"
FRACTION = r"^\s*([0-9]+(\.[0-9]*)?|\.[0-9]+)\s*%?\s*$"
SHARD = r"^\s*[0-9]+\s*/\s*[0-9]+\s*$"
NAME = f"^{SERVICE_NAME.pattern}$"  # databases, services


def _kind_of(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return "true/false" if value is not None else "empty"
    return "a number" if isinstance(value, int | float) else "text" if isinstance(value, str) else shown(value)


def shown(value: Any) -> str:
    """A wrong value as a message may show it: scalars as written, containers by their kind only."""
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class Kind:
    expected: str

    def schema(self) -> dict[str, Any]:
        raise NotImplementedError

    def check(self, value: Any, path: str) -> None:
        raise NotImplementedError

    def fail(self, value: Any, path: str) -> ConfigError:
        return ConfigError(f"{path or 'the file'} is {shown(value)}, expected {self.expected}")


@dataclass(frozen=True)
class Scalar(Kind):
    expected: str
    json: dict[str, Any]
    accepts: Callable[[Any], bool]
    secret: bool = False  # never shown in a message

    def schema(self) -> dict[str, Any]:
        return self.json

    def fail(self, value: Any, path: str) -> ConfigError:
        if self.secret:
            return ConfigError(f"{path} is {_kind_of(value)}, expected {self.expected}")
        return super().fail(value, path)

    def check(self, value: Any, path: str) -> None:
        if not self.accepts(value):
            raise self.fail(value, path)


@dataclass(frozen=True)
class AnyOf(Kind):
    expected: str
    kinds: tuple[Kind, ...]

    def schema(self) -> dict[str, Any]:
        return {"anyOf": [k.schema() for k in self.kinds]}

    def check(self, value: Any, path: str) -> None:
        for kind in self.kinds:  # the first whose container type fits explains a deeper problem itself
            if _container_fits(kind, value):
                kind.check(value, path)
                return
        raise self.fail(value, path)


@dataclass(frozen=True)
class Obj(Kind):
    """A mapping with known keys; `aliases`: settings also spelled with '-' for '_' (spawn-rate)."""

    fields: dict[str, Kind]
    expected: str = "a mapping (key: value)"
    aliases: bool = True  # settings: also written with '-' for '_'
    required: tuple[str, ...] = ()
    nullable: bool = True  # an empty value (`users:`) means not set

    def schema(self) -> dict[str, Any]:
        props = {}
        for name, kind in self.fields.items():
            props[name] = _or_null(kind.schema()) if self.nullable else kind.schema()
            if self.aliases and "_" in name:
                props[name.replace("_", "-")] = props[name]
        out: dict[str, Any] = {"type": "object", "properties": props, "additionalProperties": False}
        return {**out, "required": list(self.required)} if self.required else out

    def check(self, value: Any, path: str) -> None:
        if not isinstance(value, Mapping):
            raise self.fail(value, path)
        for key, item in value.items():
            name = key.replace("-", "_") if isinstance(key, str) and self.aliases else key
            where = f"{path}.{key}" if path else str(key)
            if name not in self.fields:
                known = ", ".join(self.fields)
                raise ConfigError(
                    f"unknown setting {where!r}; known here: {known} (see README's ci-perf.yml reference)"
                )
            if not (item is None and self.nullable):
                self.fields[name].check(item, where)
        missing = [k for k in self.required if k not in value]
        if missing:
            raise ConfigError(f"{path} lacks {missing[0]!r}; expected {self.expected}")


def _or_null(schema: dict[str, Any]) -> dict[str, Any]:
    if isinstance(schema.get("type"), str):
        return {**schema, "type": ["null", schema["type"]]}
    if isinstance(schema.get("type"), list):
        return {**schema, "type": ["null", *schema["type"]]}
    if "enum" in schema:
        return {**schema, "enum": [None, *schema["enum"]]}
    return {"anyOf": [{"type": "null"}, schema]}


@dataclass(frozen=True)
class MapOf(Kind):
    """A mapping of the user's names (services, endpoints, env vars) to values of one kind."""

    values: Kind
    expected: str = "a mapping (key: value)"
    names: Kind | None = None  # what the keys must be, when more than any string

    def schema(self) -> dict[str, Any]:
        out = {"type": "object", "additionalProperties": self.values.schema()}
        return {**out, "propertyNames": self.names.schema()} if self.names else out

    def check(self, value: Any, path: str) -> None:
        if not isinstance(value, Mapping):
            raise self.fail(value, path)
        for key, item in value.items():
            where = f"{path}.{key}"
            if not isinstance(key, str):
                raise ConfigError(f"{path} has the key {shown(key)}; keys here are names (text)")
            if self.names:
                self.names.check(key, f"{path} key {key!r}")
            self.values.check(item, where)


@dataclass(frozen=True)
class ListOf(Kind):
    item: Kind
    expected: str = "a list"

    def schema(self) -> dict[str, Any]:
        return {"type": "array", "items": self.item.schema()}

    def check(self, value: Any, path: str) -> None:
        if not isinstance(value, list):
            raise self.fail(value, path)
        for i, item in enumerate(value):
            self.item.check(item, f"{path}[{i}]")


_DEFS: dict[str, Kind] = {}  # named kinds: $defs of the JSON Schema


@dataclass(frozen=True)
class Named(Kind):
    """A kind used in many places: one entry under $defs, referred to by name."""

    name: str
    kind: Kind
    expected: str = ""

    def __post_init__(self) -> None:
        _DEFS[self.name] = self.kind

    def schema(self) -> dict[str, Any]:
        return {"$ref": f"#/$defs/{self.name}"}

    def check(self, value: Any, path: str) -> None:
        self.kind.check(value, path)


def _container_fits(kind: Kind, value: Any) -> bool:
    if isinstance(kind, Obj | MapOf):
        return isinstance(value, Mapping)
    if isinstance(kind, ListOf):
        return isinstance(value, list)
    if isinstance(kind, AnyOf):
        return any(_container_fits(k, value) for k in kind.kinds)
    if isinstance(kind, Named):
        return _container_fits(kind.kind, value)
    return kind.accepts(value) if isinstance(kind, Scalar) else False


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _finite(v: Any) -> bool:
    return _is_number(v) and math.isfinite(v)


def _whole(v: Any) -> bool:
    return _finite(v) and float(v).is_integer()


def whole(low: int, high: int, what: str = "a whole number") -> Scalar:
    return Scalar(
        f"{what} from {low} to {high}",
        {"type": "integer", "minimum": low, "maximum": high},
        lambda v: _whole(v) and low <= v <= high,
    )


def positive(high: float, what: str = "a number") -> Scalar:
    return Scalar(
        f"{what} above 0 and at most {high:g}",
        {"type": "number", "exclusiveMinimum": 0, "maximum": high},
        lambda v: _finite(v) and 0 < v <= high,
    )


def pattern(regex: str, expected: str) -> Scalar:
    return Scalar(
        expected, {"type": "string", "pattern": regex}, lambda v: isinstance(v, str) and bool(re.search(regex, v))
    )


def one_of(*values: str) -> Scalar:
    return Scalar(f"one of: {', '.join(values)}", {"enum": list(values)}, lambda v: isinstance(v, str) and v in values)


TEXT = Scalar("text (a string; quote it)", {"type": "string"}, lambda v: isinstance(v, str))
SECRET = Scalar("text (a string; quote it)", {"type": "string"}, lambda v: isinstance(v, str), secret=True)
FLAG = Scalar("true or false", {"type": "boolean"}, lambda v: isinstance(v, bool))
SCALAR = Scalar(
    "text, a number or true/false",
    {"type": ["string", "number", "boolean"]},
    lambda v: isinstance(v, str | int | float),
)
DURATION_KIND = Named(
    "duration",
    AnyOf(
        "a duration such as 30s, 5m or 1h30m (1s to 24h; a plain number is seconds)",
        (whole(1, MAX_DURATION_S, "seconds"), pattern(DURATION, "a duration")),
    ),
)
FRACTION_KIND = AnyOf(
    f"a fraction such as 10% or 0.1 (0 to {MAX_MIN_EFFECT:g})",
    (
        Scalar(
            "",
            {"type": "number", "minimum": 0, "maximum": MAX_MIN_EFFECT},
            lambda v: _finite(v) and 0 <= v <= MAX_MIN_EFFECT,
        ),
        pattern(FRACTION, "a fraction"),
    ),
)
NAME_KIND = pattern(NAME, "a name of lowercase letters, digits and _ (starting with a letter)")

DATABASE = AnyOf(
    "a database name or {name: ..., user: ..., password: ...}",
    (
        NAME_KIND,
        Obj(
            {"name": NAME_KIND, "user": NAME_KIND, "password": SECRET},
            aliases=False,
            nullable=False,
            required=("name",),
            expected="{name: ..., user: ..., password: ...}",
        ),
    ),
)
SERVICE = Obj(
    {
        "command": TEXT,
        "image": TEXT,
        "args": ListOf(SCALAR, "a list, e.g. args: [run, --server]"),
        "port": whole(0, 65535, "a port number"),
        "env": MapOf(SCALAR),
        "health": TEXT,
    },
    expected="a mapping with command (local) and/or image (docker)",
    aliases=False,
    nullable=False,
)
JWT = AnyOf(
    "true, false or a mapping such as {ttl: 15m, role: developer}",
    (
        FLAG,
        Obj(
            {
                "secret_env": TEXT,
                "algorithm": one_of(*ALGORITHMS),
                "ttl": DURATION_KIND,
                "identities": whole(0, MAX_USERS),
                "role": TEXT,
                "email": TEXT,
                "claims": MapOf(Scalar("any value", {}, lambda v: True)),
            },
            aliases=False,
            nullable=False,
        ),
    ),
)
LEVEL = AnyOf(
    'a value such as "100ms", "1%" or "1000/s"',
    (
        Scalar("", {"type": "string"}, lambda v: isinstance(v, str)),
        Scalar("", {"type": "number", "minimum": 0}, lambda v: _finite(v) and v >= 0),
    ),
)
THRESHOLD = Named(
    "threshold",
    AnyOf(
        "{target: ..., critical: ...} or off",
        (
            one_of("off"),
            Scalar("", {"const": False}, lambda v: v is False),
            Obj(
                {"target": LEVEL, "critical": LEVEL},
                aliases=False,
                nullable=False,
                expected="{target: ..., critical: ...} or off",
            ),
        ),
    ),
)
THRESHOLDS = Named(
    "thresholds",
    Obj(
        {
            **dict.fromkeys(BUILTIN, THRESHOLD),
            "endpoints": MapOf(Obj(dict.fromkeys(ENDPOINT_METRICS, THRESHOLD), aliases=False, nullable=False)),
            "groups": Obj(
                dict.fromkeys(DEFAULT_GROUPS, AnyOf("a pattern or a list of patterns", (TEXT, ListOf(TEXT)))),
                aliases=False,
                nullable=False,
            ),
        },
        aliases=False,
        nullable=False,
    ),
)

# Every setting, as it may stand at the top level (and, but `scenario`, in a scenario's section).
SETTINGS: dict[str, Kind] = {
    "scenario": one_of(*SCENARIOS),
    "tool": one_of("locust", "k6"),
    "backend": one_of(*BACKEND_CHOICES),
    "host": TEXT,
    "users": whole(1, MAX_USERS),
    "spawn_rate": positive(MAX_SPAWN_RATE, "users per second"),
    "duration": DURATION_KIND,
    "duration_s": DURATION_KIND,
    "report_dir": TEXT,
    "script": TEXT,
    "processes": whole(1, MAX_PROCESSES),
    "workers": whole(1, MAX_PROCESSES),
    "master": FLAG,
    "expect_workers": whole(1, MAX_PROCESSES),
    "master_port": whole(1, 65535, "a port number"),
    "rounds": whole(1, MAX_ROUNDS),
    "shard": pattern(SHARD, "i/N, e.g. 1/4"),
    "histogram": FLAG,
    "window": positive(MAX_WINDOW_S, "seconds"),
    "window_s": positive(MAX_WINDOW_S, "seconds"),
    "health_path": TEXT,
    "health_timeout": DURATION_KIND,
    "health_timeout_s": DURATION_KIND,
    "api_key": SECRET,
    "db_image": TEXT,
    "redis_image": TEXT,
    "api_image": TEXT,
    "docker_network": one_of("host", "bridge"),
    "api_build_context": TEXT,
    "api_command": TEXT,
    "api_env": MapOf(SCALAR),
    "migrate_command": TEXT,
    "seed_command": TEXT,
    "preset": one_of("sark", "none"),
    "databases": Named("databases", ListOf(DATABASE, "a list, e.g. databases: [sark_audit]")),
    "services": Named("services", MapOf(SERVICE, "a mapping of NAME: {command|image, ...}", NAME_KIND)),
    "jwt": Named("jwt", JWT),
    "csrf": FLAG,
    "baseline": TEXT,
    "fail_on_regression": FLAG,
    "min_effect": FRACTION_KIND,
    "publish": one_of("auto", "github", "gitlab", "files", "none"),
    "comment": FLAG,
}
STACK_KEYS = (
    "db_image",
    "redis_image",
    "api_image",
    "docker_network",
    "api_build_context",
    "api_command",
    "api_env",
    "migrate_command",
    "seed_command",
    "databases",
    "services",
)

SECTION = Named(
    "scenario_section",
    Obj(
        {**{k: v for k, v in SETTINGS.items() if k != "scenario"}, "thresholds": THRESHOLDS},
        expected="a mapping of settings for this scenario (users: 2, thresholds: {...})",
    ),
)
FILE = Obj(
    {
        **SETTINGS,
        "health": Obj({"path": TEXT, "timeout": DURATION_KIND}, expected="{path: /health/, timeout: 120s}"),
        "stack": Obj({k: SETTINGS[k] for k in STACK_KEYS}, expected="a mapping of stack settings (db_image: ...)"),
        "baseline": AnyOf(
            "file:PATH, github-artifact, gitlab-artifact, comment or {source: ..., fail_on_regression: ...}",
            (TEXT, Obj({"source": TEXT, "fail_on_regression": FLAG, "min_effect": FRACTION_KIND})),
        ),
        "auth": Obj(
            {"jwt": SETTINGS["jwt"], "csrf": FLAG},
            expected="{jwt: {...}, csrf: true|false} (secrets come from the env)",
        ),
        "thresholds": THRESHOLDS,
        "scenarios": Obj(dict.fromkeys(SCENARIOS, SECTION), aliases=False, expected="a mapping of scenario: {...}"),
    },
    expected="a mapping of settings (key: value)",
)


def json_schema() -> dict[str, Any]:
    """The JSON Schema of ci-perf.yml (draft 2020-12), as published in docs/ci-perf.schema.json."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "ci-perf.yml",
        "description": "Settings of ci-perf (README: Configuration). Generated by python -m ci_perf.config_schema.",
        **FILE.schema(),
        "$defs": {name: kind.schema() for name, kind in sorted(_DEFS.items())},
    }


def check_document(data: Any, origin: str) -> None:
    """The whole file's shape and types, every scenario's section included: ConfigError naming the key."""
    try:
        FILE.check(data, "")
    except ConfigError as exc:
        raise ConfigError(f"{origin}: {exc}") from None


if __name__ == "__main__":
    print(json.dumps(json_schema(), indent=2))
