"""ci-perf.yml's types and ranges (issue 14 item 11): the published JSON Schema is the table's, the
schema and ci-perf's own check agree, and every bad file is one line and exit 2 from the real CLI
before anything starts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from ci_perf.config import build_settings
from ci_perf.config_schema import json_schema
from ci_perf.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
SCHEMA_FILE = ROOT / "docs" / "ci-perf.schema.json"


def readme_example() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Configuration") :]
    return section[section.index("```yaml\n") + 8 : section.index("```\n", section.index("```yaml"))]


GOOD = [
    "",
    "users: 5\nduration: 30s\nspawn_rate: 2.5\n",
    "spawn-rate: 1\nduration: 90\nhealth: {path: /healthz, timeout: 2m}\n",
    "stack: {api-image: me/sark:1, api_env: {A: 1, B: 'x', C: false}}\n",
    "baseline: {source: 'file:b.json', fail_on_regression: true, min_effect: 15%}\n",
    "baseline: comment\nmin_effect: 0.2\n",
    "auth: {jwt: {ttl: 10m, identities: 3, role: admin, claims: {org: 1}}, csrf: false}\n",
    "auth: {jwt: true}\n",
    "stack:\n  databases: [sark_audit, {name: extra, user: other, password: pw}]\n"
    "  services: {opa: {image: opa, args: [run, 1], port: 8181, env: {A: 1}, health: /health}}\n",
    "thresholds: {api_p95: {target: 80ms, critical: 150ms}, availability: off, error_rate: false}\n",
    "thresholds:\n  endpoints: {'GET /x': {p95: {target: 50, critical: 80}}}\n  groups: {policy: ['POST /p*']}\n",
    "scenarios:\n  smoke_test: {users: 2, duration: 1h, thresholds: {error_rate: {target: 2%}}}\n  soak_test: {}\n",
    "stack:\nhealth:\nscenarios:\n  smoke_test:\nthresholds:\nusers:\nauth: {jwt: }\n",
    "duration: 24h\nusers: 100000\nwindow: 3600\nmaster_port: 65535\nshard: 1/4\npublish: files\n",
    readme_example(),
]

# Both ci-perf and the JSON Schema refuse these.
BAD = [
    "health: 5\n",
    "stack: [1, 2]\n",
    "scenarios: {smoke_test: 5}\n",
    "scenarios: [smoke_test]\n",
    "scenarios: {nightly: {users: 2}}\n",
    "thresholds: 3\n",
    "thresholds: [api_p95]\n",
    "thresholds: {api_p95: 5}\n",
    "thresholds: {api_p95: {target: 1ms, warn: 2ms}}\n",
    "thresholds: {latency: {target: 1ms}}\n",
    "thresholds: {endpoints: {'GET /x': {p42: {target: 1}}}}\n",
    "auth: {api_key: x}\n",
    "auth: [jwt]\n",
    "auth: {jwt: {ttl: 0}}\n",
    "auth: {jwt: {algorithm: RS256}}\n",
    "baseline: [1]\n",
    "baseline: {source: 5}\n",
    "colour: blue\n",
    "stack: {users: 5}\n",
    "host: [a]\n",
    "api_key: 12345\n",
    "users: 1.5\n",
    "users: 0\n",
    "users: '5'\n",
    "users: 100001\n",
    "users: true\n",
    "spawn_rate: .inf\n",
    "spawn_rate: 0\n",
    "window: -1\n",
    "duration: 0\n",
    "duration: -5\n",
    "duration: 86401\n",
    "duration: 1.5\n",
    "duration: soon\n",
    "duration: ''\n",
    "min_effect: lots\n",
    "min_effect: 11\n",
    "fail_on_regression: maybe\n",
    "comment: 1\n",
    "tool: jmeter\n",
    "backend: cloud\n",
    "publish: slack\n",
    "preset: rails\n",
    "docker_network: overlay\n",
    "master_port: 70000\n",
    "shard: first\n",
    "scenario: nightly\n",
    "stack: {api_env: {A: [1]}}\n",
    "stack: {databases: sark_audit}\n",
    "stack: {databases: [Bad-Name]}\n",
    "stack: {databases: [{user: x}]}\n",
    "stack: {services: [opa]}\n",
    "stack: {services: {opa: 5}}\n",
    "stack: {services: {opa: {image: x, port: 99999}}}\n",
    "stack: {services: {opa: {image: x, args: run}}}\n",
    "stack: {services: {opa: {image: x, colour: red}}}\n",
    "1: 2\n",
]

# ci-perf refuses these; their form is one the JSON Schema accepts (it cannot compute a duration's
# length, a threshold's unit or a service's needs; JSON has no NaN, and YAML's .nan passes every
# comparison a schema makes). Listed so the difference stays known.
PYTHON_ONLY = [
    "spawn_rate: .nan\n",
    "min_effect: .nan\n",
    "duration: 25h\n",
    "duration: 0s\n",
    "health: {timeout: 100000s}\n",
    "min_effect: 2000%\n",
    "shard: 5/4\n",
    "thresholds: {api_p95: {target: 5parsecs}}\n",
    "thresholds: {api_p95: {target: 300ms, critical: 200ms}}\n",
    "scenarios: {soak_test: {thresholds: {error_rate: {target: 200%}}}}\n",
    "auth: {jwt: {ttl: 2s}}\n",
    "stack: {databases: [a, a]}\n",
    "stack: {services: {opa: {port: 1}}}\n",
    "stack: {services: {redis: {image: x}}}\n",
    "thresholds: {groups: {policy: []}}\n",
]


def python_accepts(tmp_path: Path, text: str) -> bool:
    path = tmp_path / "ci-perf.yml"
    path.write_text(text, encoding="utf-8")
    try:
        build_settings({}, env={}, config_file=path)
    except ConfigError as exc:
        assert "\n" not in str(exc)
        return False
    return True


def schema_accepts(text: str) -> bool:
    return jsonschema.Draft202012Validator(json_schema()).is_valid(yaml.safe_load(text) or {})


def test_published_schema_is_the_table() -> None:
    """docs/ci-perf.schema.json is generated: `python -m ci_perf.config_schema > docs/ci-perf.schema.json`."""
    assert json.loads(SCHEMA_FILE.read_text(encoding="utf-8")) == json_schema()
    jsonschema.Draft202012Validator.check_schema(json_schema())


def test_readme_references_the_schema() -> None:
    assert "docs/ci-perf.schema.json" in (ROOT / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("text", GOOD)
def test_good_documents_pass_both(tmp_path: Path, text: str) -> None:
    assert python_accepts(tmp_path, text)
    assert schema_accepts(text)


@pytest.mark.parametrize("text", BAD)
def test_bad_documents_fail_both(tmp_path: Path, text: str) -> None:
    assert not python_accepts(tmp_path, text)
    assert not schema_accepts(text)


@pytest.mark.parametrize("text", PYTHON_ONLY)
def test_ranges_the_schema_cannot_say(tmp_path: Path, text: str) -> None:
    assert not python_accepts(tmp_path, text)
    assert schema_accepts(text)


CLI_CASES: list[tuple[bytes, str]] = [
    (b"health: 5\n", "health is 5, expected {path: /health/, timeout: 120s}"),
    (b"stack: [1, 2]\n", "stack is a list, expected a mapping of stack settings"),
    (b"scenarios: {smoke_test: 5}\n", "scenarios.smoke_test is 5, expected a mapping of settings"),
    (b"thresholds: 3\n", "thresholds is 3, expected a mapping"),
    (b"thresholds: {api_p95: {target: 5parsecs}}\n", "thresholds.api_p95.target: '5parsecs' is not a valid latency"),
    (b"scenarios: {soak_test: {thresholds: {error_rate: 5}}}\n", "scenarios.soak_test.thresholds.error_rate is 5"),
    (b"scenarios: {soak_test: {users: 0}}\n", "scenarios.soak_test.users is 0, expected a whole number from 1"),
    (b"users: 1\xff\xfe\n", "is not UTF-8 text (byte 8); save it as UTF-8"),
    (b"users: [1\n", "is not valid YAML at line 2"),
    (b"- a\n", "must be a mapping of settings"),
    (b"duration: 0\n", "duration is 0, expected a duration such as 30s"),
    (b"duration: -5\n", "duration is -5, expected a duration"),
    (b"duration: 25h\n", "duration '25h' is longer than 24h"),
    (b"health: {timeout: 0s}\n", "health timeout '0s' must be longer than 0s"),
    (b"spawn_rate: .nan\n", "spawn_rate is nan, expected users per second above 0"),
    (b"spawn_rate: .inf\n", "spawn_rate is inf, expected users per second above 0"),
    (b"users: 1.5\n", "users is 1.5, expected a whole number from 1 to 100000"),
    (b"fail_on_regression: maybe\n", "fail_on_regression is 'maybe', expected true or false"),
    (b"api_key: 123456789\n", "api_key is a number, expected text"),
    (b"auth: {jwt: {ttl: 48h}}\n", "auth.jwt.ttl '48h' is longer than 24h"),
    (b"stack: {services: {opa: 5}}\n", "stack.services.opa is 5, expected a mapping with command"),
    (b"baseline: [1]\n", "baseline is a list, expected file:PATH"),
]


@pytest.mark.parametrize(("content", "message"), CLI_CASES, ids=[c[1][:40] for c in CLI_CASES])
def test_bad_file_is_one_line_and_exit_2_before_anything_starts(tmp_path: Path, content: bytes, message: str) -> None:
    (tmp_path / "bad.yml").write_bytes(content)
    done = subprocess.run(
        [sys.executable, "-m", "ci_perf", "run", "--config", "bad.yml", "--backend", "local", "-o", "r"],
        capture_output=True, text=True, cwd=tmp_path, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""  # no "starting the local stack"
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("ci-perf: error: bad.yml"), done.stderr
    assert message in lines[0]
    assert "123456789" not in done.stderr  # a wrong-typed secret is not echoed
    assert not (tmp_path / "r").exists()  # nothing started, not even the report folder
