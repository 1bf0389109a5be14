"""Settings for one run: ci-perf.yml -> frozen dataclass.

Precedence: command line > environment (CI_PERF_*) > ci-perf.yml > defaults. The file may also hold
per-scenario sections (`scenarios: {smoke_test: {users: 2, thresholds: {...}}}`) that sit between
the file's top level and the environment.
"""

from __future__ import annotations

import functools
import math
import os
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ci_perf.config_schema import (
    BACKEND_CHOICES,
    MAX_DURATION_S,
    MAX_MIN_EFFECT,
    MAX_PROCESSES,
    MAX_ROUNDS,
    MAX_SPAWN_RATE,
    MAX_USERS,
    MAX_WINDOW_S,
    check_document,
)
from ci_perf.errors import ConfigError
from ci_perf.model import TOOLS, Tool
from ci_perf.services.base import BackendName
from ci_perf.services.services_spec import DatabaseSpec, ServiceSpec, parse_databases, parse_services

if TYPE_CHECKING:  # tokens imports PyJWT; ci_perf.inputcheck must run on the stdlib alone
    from ci_perf.tokens import JwtConfig

DEFAULT_CONFIG_FILE = "ci-perf.yml"
BackendChoice = BackendName | Literal["auto"]  # config_schema.BACKEND_CHOICES


@functools.cache
def docker_answers() -> bool:
    """Does a Docker engine answer here (DOCKER_HOST or the default socket)? Asked once per process."""
    try:
        import docker

        client = docker.from_env(timeout=10)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:  # no SDK, no socket, no permission, a timeout: no Docker for us
        return False


@dataclass(frozen=True)
class Settings:
    scenario: str = "smoke_test"
    tool: Tool = "locust"
    backend: BackendChoice | None = None  # None or auto: see resolved_backend
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
    rounds: int = 10  # same-runner A/B (ref:, same-job, image:): rounds in all, even, at least 10
    fail_on_regression: bool = False
    min_effect: float = 0.10
    publish: str = "auto"  # auto | github | gitlab | files | none
    comment: bool = True  # the sticky PR/MR comment; summary, outputs and annotations are written regardless
    thresholds: dict[str, Any] = field(default_factory=dict)  # file top level
    scenario_thresholds: dict[str, Any] = field(default_factory=dict)  # file, this scenario

    @property
    def resolved_backend(self) -> BackendName:
        """The one place the backend is chosen: a named one is used as is; else a host means external;
        else "auto" (the action's default on CI) means docker where a Docker engine answers, and local
        processes otherwise, which is also the CLI's default."""
        if self.backend not in (None, "auto"):
            return self.backend  # type: ignore[return-value]
        if self.host:
            return "external"
        return "docker" if self.backend == "auto" and docker_answers() else "local"

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


def parse_duration(value: Any, what: str = "duration") -> int:
    """'30s', '5m', '1h30m', '90' (seconds) -> seconds, from 1 s to 24 h (config_schema.MAX_DURATION_S)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        if not math.isfinite(value) or not float(value).is_integer():
            raise ConfigError(f"{what} {value!r} is not a whole number of seconds; write it like 30s, 5m or 1h30m")
        seconds = int(value)
    else:
        text = str(value).strip().lower()
        parts = re.fullmatch(r"(?:([0-9]+)h)?(?:([0-9]+)m)?(?:([0-9]+)s?)?", text)
        if not text or not parts or not any(parts.groups()):
            raise ConfigError(f"{what} {value!r} is not a duration; write it like 30s, 5m or 1h30m")
        h, m, s = (int(g) if g else 0 for g in parts.groups())
        seconds = h * 3600 + m * 60 + s
    if seconds <= 0:
        raise ConfigError(f"{what} {value!r} must be longer than 0s")
    if seconds > MAX_DURATION_S:
        raise ConfigError(f"{what} {value!r} is longer than 24h; write a duration from 1s to 24h")
    return seconds


def parse_fraction(value: Any, what: str) -> float:
    """'10%' or 0.1 -> 0.1, from 0 to 10 (1000%)."""
    text = str(value).strip()
    try:
        number = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        number = math.nan
    if isinstance(value, bool) or not 0 <= number <= MAX_MIN_EFFECT:  # NaN fails every comparison
        raise ConfigError(f"{what} {value!r} is not a fraction from 0% to 1000%; write it like 10% or 0.1")
    return number


def parse_shard(value: Any) -> tuple[int, int]:
    """'2/4' -> (2, 4): shard 2 of 4, counted from 1 (as GitLab's CI_NODE_INDEX/CI_NODE_TOTAL)."""
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(value))
    if not m or not 1 <= int(m[1]) <= int(m[2]):
        raise ConfigError(f"shard {value!r} must look like i/N with 1 <= i <= N, e.g. 1/4")
    return int(m[1]), int(m[2])


def load_file(path: Path | None) -> dict[str, Any]:
    """Read ci-perf.yml and check its shape (config_schema); a missing default file is fine, a missing
    named file is not."""
    explicit = path is not None
    path = path or Path(DEFAULT_CONFIG_FILE)
    if not path.exists():
        if explicit:
            raise ConfigError(f"config file {path} does not exist; check --config or CI_PERF_CONFIG")
        return {}
    import yaml  # imported here: ci_perf.inputcheck reads the environment with the stdlib alone

    try:
        data = yaml.safe_load(path.read_bytes().decode("utf-8")) or {}
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read ({exc.strerror or exc}); check --config") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path} is not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path} is not valid YAML{where}; fix the syntax there") from None
    except RecursionError:
        raise ConfigError(f"{path} nests too deeply to be a ci-perf.yml") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must be a mapping of settings (key: value), not {type(data).__name__}")
    check_document(data, str(path))
    return data


def _flatten_file(data: Mapping[str, Any], scenario: str) -> dict[str, Any]:
    """File sections (shapes already checked) -> flat Settings keys; the scenario's section wins."""
    flat = _keys(data, skip=_SECTIONS)
    flat.update({f"health_{k}": v for k, v in _keys(data.get("health") or {}).items()})
    flat.update(_keys(data.get("stack") or {}))
    flat.update(_keys(data.get("auth") or {}))
    baseline = data.get("baseline")
    if isinstance(baseline, Mapping):
        flat.update({("baseline" if k == "source" else k): v for k, v in _keys(baseline).items()})
    elif baseline:
        flat["baseline"] = baseline
    section = _keys((data.get("scenarios") or {}).get(scenario) or {})
    flat["scenario_thresholds"] = section.pop("thresholds", {}) or {}
    flat.update(section)
    return flat


def _keys(section: Mapping[str, Any], skip: Collection[str] = ()) -> dict[str, Any]:
    """spawn-rate and spawn_rate are one setting; an empty value (`users:`) is no setting."""
    return {k.replace("-", "_"): v for k, v in section.items() if k not in skip and v is not None}


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
        import yaml

        return parse_services(yaml.safe_load(value) if isinstance(value, str) else value)
    if name == "jwt":
        from ci_perf.tokens import parse_jwt

        return parse_jwt(value)
    if name == "preset":
        from ci_perf.presets import check_name

        return check_name(str(value).strip().lower())
    if name in ("fail_on_regression", "comment", "master", "histogram", "csrf"):
        return _flag(name, value)
    if name in _LIMITS:
        return _number(name, value)
    if name == "tool" and value not in TOOLS:
        raise ConfigError(f"unknown tool {value!r}; choose one of: {', '.join(TOOLS)}")
    if name == "publish" and value not in _PUBLISH:
        raise ConfigError(f"unknown publish target {value!r}; choose one of: {', '.join(_PUBLISH)}")
    if name == "docker_network" and value not in ("host", "bridge"):
        raise ConfigError(f"unknown docker network mode {value!r}; choose host or bridge")
    if name == "backend" and value not in BACKEND_CHOICES:
        raise ConfigError(f"unknown backend {value!r}; choose one of: {', '.join(BACKEND_CHOICES)}")
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


_PUBLISH = ("auto", "github", "gitlab", "files", "none")
# Numeric settings: (whole?, largest value); every one must be above 0.
_LIMITS: dict[str, tuple[bool, float]] = {
    "users": (True, MAX_USERS),
    "processes": (True, MAX_PROCESSES),
    "workers": (True, MAX_PROCESSES),
    "expect_workers": (True, MAX_PROCESSES),
    "master_port": (True, 65535),
    "rounds": (True, MAX_ROUNDS),
    "spawn_rate": (False, MAX_SPAWN_RATE),
    "window_s": (False, MAX_WINDOW_S),
}


def _number(name: str, value: Any) -> int | float:
    whole, high = _LIMITS[name]
    kind: type[int] | type[float] = int if whole else float
    expected = "a whole number" if whole else "a number"
    if isinstance(value, bool) or (whole and isinstance(value, float) and not value.is_integer()):
        raise ConfigError(f"{name} {value!r} is not {expected}")
    try:
        number = kind(str(value).strip()) if isinstance(value, str) else kind(value)
    except (TypeError, ValueError, OverflowError):
        raise ConfigError(f"{name} {value!r} is not {expected}") from None
    if not math.isfinite(number):
        raise ConfigError(f"{name} {value!r} is not a finite number")
    if not 0 < number <= high:
        raise ConfigError(f"{name} must be greater than 0 and at most {high:g}, got {value!r}")
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


def check_values(data: Mapping[str, Any], origin: str) -> None:
    """Every value of the file, every scenario's section and thresholds included, before anything
    starts: a typo in the nightly scenario's section fails the smoke run too, not the night."""
    from ci_perf.thresholds import parse_thresholds

    sections = data.get("scenarios") or {}
    try:
        for name in ("", *sections):  # "": the top level alone
            _normalise(_flatten_file(data, name), origin)
        parse_thresholds(data.get("thresholds"), None)
        for name, section in sections.items():
            parse_thresholds(data.get("thresholds"), (section or {}).get("thresholds"),
                             scenario_path=f"scenarios.{name}.thresholds")  # fmt: skip
    except ConfigError as exc:
        raise ConfigError(f"{origin}: {exc}") from None


def check_environment(env: Mapping[str, str]) -> None:
    """Validate the CI_PERF_* settings alone (no file, no third-party import): raises ConfigError."""
    _normalise(_from_env(env), "the environment")


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
    origin = str(config_file or DEFAULT_CONFIG_FILE)
    check_values(data, origin)
    if not scenario:
        scenario = str(data.get("scenario") or Settings.scenario)
    layers = [_normalise(_flatten_file(data, scenario), origin), env_set,
              _normalise(cli_set, "the command line")]  # fmt: skip
    merged = {k: v for layer in layers for k, v in layer.items()}
    # api_env adds up: the file's, then CI_PERF_API_ENV, then --api-env; the later wins per key.
    merged["api_env"] = {k: v for layer in layers for k, v in (layer.get("api_env") or {}).items()}
    merged["scenario"] = scenario
    return Settings(**merged)
