"""Settings for one run: ci-perf.yml -> frozen dataclass.

Precedence: command line > environment (CI_PERF_*) > ci-perf.yml > defaults. The file may also hold
per-scenario sections (`scenarios: {smoke_test: {users: 2, thresholds: {...}}}`) that sit between
the file's top level and the environment.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, get_args

import yaml

from ci_perf.errors import ConfigError
from ci_perf.model import TOOLS, Tool
from ci_perf.services.base import BACKEND_NAMES, BackendName
from ci_perf.services.services_spec import DatabaseSpec, ServiceSpec, parse_databases, parse_services
from ci_perf.tokens import JwtConfig, parse_jwt

DEFAULT_CONFIG_FILE = "ci-perf.yml"


@dataclass(frozen=True)
class Settings:
    scenario: str = "smoke_test"
    tool: Tool = "locust"
    backend: BackendName | None = None  # None: external when host is set, else local
    host: str = ""
    users: int | None = None
    spawn_rate: float | None = None
    duration_s: int | None = None
    report_dir: Path = Path("reports")
    script: Path | None = None
    processes: int | None = None  # Locust processes here; None: one per core (runners/locust.py)
    workers: int | None = None  # Locust: a master plus N worker processes here
    master: bool = False  # Locust: run only the master and wait for remote workers
    expect_workers: int | None = None  # with master: how many workers to wait for (default 1)
    master_port: int = 5557  # with master: the port workers connect to (file/env only)
    shard: str = ""  # k6: "i/N", execution segment i of N
    histogram: bool = False  # k6: per-request output for exact, mergeable latency histograms
    window_s: float | None = None
    health_path: str = "/health/"
    health_timeout_s: float = 120.0
    api_key: str = ""
    db_image: str = "timescale/timescaledb:latest-pg15"
    redis_image: str = "redis:7-alpine"
    api_image: str = ""
    docker_network: str = "host"  # host | bridge (ports published on 127.0.0.1)
    api_build_context: str = ""
    api_command: str = ""
    api_env: dict[str, str] = field(default_factory=dict)
    migrate_command: str = ""
    seed_command: str = ""
    preset: str = ""  # sark | none; empty: sark with the bundled demo API, else none (ci_perf.presets)
    databases: tuple[DatabaseSpec, ...] = ()  # stack.databases: extra databases on the same server
    services: dict[str, ServiceSpec] = field(default_factory=dict)  # stack.services
    jwt: JwtConfig | None = None  # auth.jwt: ci-perf mints the tokens
    csrf: bool | None = None  # auth.csrf: generate a CSRF token (None: as the preset says)
    baseline: str = ""  # file:PATH | github-artifact | gitlab-artifact | comment | ref:REF | same-job | image:REF
    rounds: int = 10  # same-runner A/B (ref:, same-job, image:): rounds in all, even, at least 6
    fail_on_regression: bool = False
    min_effect: float = 0.10
    publish: str = "auto"  # auto | github | gitlab | files | none
    comment: bool = True  # the sticky PR/MR comment; summary, outputs and annotations are written regardless
    thresholds: dict[str, Any] = field(default_factory=dict)  # file top level
    scenario_thresholds: dict[str, Any] = field(default_factory=dict)  # file, this scenario

    @property
    def resolved_backend(self) -> BackendName:
        return self.backend or ("external" if self.host else "local")

    @property
    def demo_api(self) -> bool:
        """The bundled demo target is the API under test (a stack we start, no API of the user's)."""
        return self.resolved_backend != "external" and not (
            self.api_command or self.api_image or self.api_build_context
        )


_FIELDS = {f.name: f for f in fields(Settings)}
_PATH_FIELDS = {"report_dir", "script"}
# Keys in ci-perf.yml that are nested sections rather than settings.
_SECTIONS = {"scenarios", "health", "stack", "baseline", "auth"}
_AUTH_KEYS = {"jwt", "csrf"}


def parse_duration(value: Any, what: str = "duration") -> int:
    """'30s', '5m', '1h30m', '90' (seconds) -> seconds."""
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return int(value)
    text = str(value).strip().lower()
    parts = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s?)?", text)
    if not text or not parts or not any(parts.groups()):
        raise ConfigError(f"{what} {value!r} is not a duration; write it like 30s, 5m or 1h30m")
    h, m, s = (int(g) if g else 0 for g in parts.groups())
    seconds = h * 3600 + m * 60 + s
    if seconds <= 0:
        raise ConfigError(f"{what} {value!r} must be longer than 0s")
    return seconds


def parse_fraction(value: Any, what: str) -> float:
    """'10%' or 0.1 -> 0.1"""
    text = str(value).strip()
    try:
        return float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise ConfigError(f"{what} {value!r} is not a fraction; write it like 10% or 0.1") from None


def parse_shard(value: Any) -> tuple[int, int]:
    """'2/4' -> (2, 4): shard 2 of 4, counted from 1 (as GitLab's CI_NODE_INDEX/CI_NODE_TOTAL)."""
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(value))
    if not m or not 1 <= int(m[1]) <= int(m[2]):
        raise ConfigError(f"shard {value!r} must look like i/N with 1 <= i <= N, e.g. 1/4")
    return int(m[1]), int(m[2])


def load_file(path: Path | None) -> dict[str, Any]:
    """Read ci-perf.yml; a missing default file is fine, a missing named file is not."""
    explicit = path is not None
    path = path or Path(DEFAULT_CONFIG_FILE)
    if not path.exists():
        if explicit:
            raise ConfigError(f"config file {path} does not exist; check --config or CI_PERF_CONFIG")
        return {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path} is not valid YAML{where}; fix the syntax there") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must be a mapping of settings (key: value), not {type(data).__name__}")
    return data


def _flatten_file(data: Mapping[str, Any], scenario: str) -> dict[str, Any]:
    """File sections -> flat Settings keys; the scenario's own section wins over the top level."""
    flat = {k.replace("-", "_"): v for k, v in data.items() if k not in _SECTIONS}
    health = data.get("health") or {}
    flat.update({f"health_{k}": v for k, v in health.items()})
    flat.update({k.replace("-", "_"): v for k, v in (data.get("stack") or {}).items()})
    auth = data.get("auth") or {}
    if not isinstance(auth, Mapping) or set(auth) - _AUTH_KEYS:
        raise ConfigError("auth in ci-perf.yml takes jwt: {...} and csrf: true|false (secrets come from the env)")
    flat.update(auth)
    baseline = data.get("baseline")
    if isinstance(baseline, Mapping):
        flat.update({("baseline" if k == "source" else k): v for k, v in baseline.items()})
    elif baseline:
        flat["baseline"] = baseline
    scenarios = data.get("scenarios") or {}
    section = dict(scenarios.get(scenario) or {})
    flat["scenario_thresholds"] = section.pop("thresholds", {}) or {}
    flat.update({k.replace("-", "_"): v for k, v in section.items()})
    return flat


def _from_env(env: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    names = [n for n in _FIELDS if n not in {"thresholds", "scenario_thresholds"}] + list(_ALIASES)
    for name in names:
        value = env.get(f"CI_PERF_{name.upper()}")
        if value not in (None, ""):
            out[name] = value
    if "api_env" in out:  # one KEY=VALUE per line
        out["api_env"] = _env_lines(str(out["api_env"]))
    # The runner hands the scenario to the tools as JSON in CI_PERF_SCENARIO: never read that back.
    if str(out.get("scenario", "")).lstrip().startswith("{"):
        out.pop("scenario")
    return out


def _coerce(name: str, value: Any) -> Any:
    """Turn file/env/CLI values into the field's type, with one-line errors."""
    if value is None:
        return None
    if name in ("duration_s", "duration"):
        return parse_duration(value)
    if name in ("health_timeout_s", "health_timeout"):
        return float(parse_duration(value, "health timeout"))
    if name == "min_effect":
        return parse_fraction(value, "min_effect")
    if name in _PATH_FIELDS:
        return Path(str(value))
    if name == "shard":
        index, total = parse_shard(value)
        return f"{index}/{total}"
    if name == "databases":
        return parse_databases(value)
    if name == "services":
        return parse_services(yaml.safe_load(value) if isinstance(value, str) else value)
    if name == "jwt":
        return parse_jwt(value)
    if name == "preset":
        from ci_perf.presets import check_name

        return check_name(str(value).strip().lower())
    if name in ("fail_on_regression", "comment", "master", "histogram", "csrf"):
        return _flag(name, value)
    if name in ("users", "processes", "workers", "expect_workers", "master_port", "rounds"):
        return _number(int, name, value)
    if name in ("spawn_rate", "window_s"):
        return _number(float, name, value)
    if name == "tool" and value not in TOOLS:
        raise ConfigError(f"unknown tool {value!r}; choose one of: {', '.join(TOOLS)}")
    if name == "docker_network" and value not in ("host", "bridge"):
        raise ConfigError(f"unknown docker network mode {value!r}; choose host or bridge")
    if name == "backend" and value not in get_args(BackendName):
        raise ConfigError(f"unknown backend {value!r}; choose one of: {', '.join(BACKEND_NAMES)}")
    if name in ("api_env", "thresholds", "scenario_thresholds"):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{name} must be a mapping (key: value)")
        return {str(k): (v if name != "api_env" else str(v)) for k, v in value.items()}
    return str(value) if not isinstance(value, str) else value


_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off", "")


def _flag(name: str, value: Any) -> bool:
    """true/false (yes/no, on/off, 1/0); anything else is a mistake, not a silent false."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE or text in _FALSE:
        return text in _TRUE
    raise ConfigError(f"{name} {value!r} is not true or false")


def _number(kind: type[int] | type[float], name: str, value: Any) -> int | float:
    expected = "a whole number" if kind is int else "a number"
    if isinstance(value, bool) or (kind is int and isinstance(value, float) and not value.is_integer()):
        raise ConfigError(f"{name} {value!r} is not {expected}")
    try:
        number = kind(str(value).strip()) if isinstance(value, str) else kind(value)
    except (TypeError, ValueError, OverflowError):
        raise ConfigError(f"{name} {value!r} is not {expected}") from None
    if not math.isfinite(number):
        raise ConfigError(f"{name} {value!r} is not a finite number")
    if number <= 0:
        raise ConfigError(f"{name} must be greater than 0, got {value!r}")
    return number


_ALIASES = {"duration": "duration_s", "health_timeout": "health_timeout_s", "window": "window_s"}


def _env_lines(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in (ln.strip() for ln in text.splitlines()):
        if not line or line.startswith("#"):
            continue
        key, found, value = line.partition("=")
        if not found or not key.strip():
            raise ConfigError(f"CI_PERF_API_ENV line {line!r} must look like KEY=VALUE")
        out[key.strip()] = value
    return out


def _normalise(layer: Mapping[str, Any], origin: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in layer.items():
        name = _ALIASES.get(key, key)
        if name not in _FIELDS:
            raise ConfigError(f"unknown setting {key!r} in {origin}; see README's ci-perf.yml reference")
        out[name] = _coerce(name, value)
    return out


def build_settings(
    cli: Mapping[str, Any], env: Mapping[str, str] | None = None, config_file: Path | None = None
) -> Settings:
    """Merge defaults < file < env < command line into Settings."""
    env = os.environ if env is None else env
    config_file = config_file or (Path(env["CI_PERF_CONFIG"]) if env.get("CI_PERF_CONFIG") else None)
    cli_set = {k: v for k, v in cli.items() if v is not None}
    env_set = _normalise(_from_env(env), "the environment")
    scenario = str(cli_set.get("scenario") or env_set.get("scenario") or "")
    data = load_file(config_file)
    if not scenario:
        scenario = str(data.get("scenario") or Settings.scenario)
    layers = [_normalise(_flatten_file(data, scenario), str(config_file or DEFAULT_CONFIG_FILE)), env_set,
              _normalise(cli_set, "the command line")]  # fmt: skip
    merged = {k: v for layer in layers for k, v in layer.items()}
    # api_env adds up: the file's, then CI_PERF_API_ENV, then --api-env; the later wins per key.
    merged["api_env"] = {k: v for layer in layers for k, v in (layer.get("api_env") or {}).items()}
    merged["scenario"] = scenario
    return Settings(**merged)
