"""The composite action, the ready-to-copy workflows and the GitLab template, checked statically.

- action.yml's inputs, the README's inputs table,
  the `ci-perf run` flags and the CI_PERF_* settings agree;
- action.yml's outputs are exactly the step outputs the GitHub publisher writes;
- no `run:` script expands an expression (`${{ }}`): inputs reach scripts only through `env:`;
- every `uses:` is pinned, every checkout drops its credentials, every workflow sets permissions;
- zizmor (offline) and check-jsonschema accept every file. Those two tests skip when the tools are
  missing, unless CI_PERF_REQUIRE_TOOLS=1.
"""

from __future__ import annotations

import inspect
import os
import re
import shutil
import subprocess
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
import yaml

from ci_perf import config
from ci_perf.auth import Auth
from ci_perf.cli import build_parser
from ci_perf.config import Settings
from ci_perf.publish.github import TOKEN_VARS

ROOT = Path(__file__).resolve().parent.parent
ACTION = ROOT / "action.yml"
ACTIONS = [ACTION, ROOT / "publish" / "action.yml"]
WORKFLOWS = sorted((ROOT / "workflows").glob("*.yml")) + sorted((ROOT / ".github" / "workflows").glob("*.yml"))
GITLAB = sorted((ROOT / "gitlab").glob("*.yml"))
INPUTS_DOC = ROOT / "docs" / "action-inputs.md"

# Inputs that are about the action itself, not a `ci-perf run` flag: input -> the variable it sets.
ACTION_ONLY = {
    "github-token": "GITHUB_TOKEN",
    "api-key": "CI_PERF_API_KEY",
    "python": "CI_PERF_PYTHON",
    "install-services": "CI_PERF_INSTALL_SERVICES",
}
RUN_SCRIPT = ROOT / "scripts" / "action-run"  # what the action's one step runs
# Inputs whose `ci-perf run` flag has another name.
FLAG_OF = {"comment": "no-comment"}
# `ci-perf run` options with no input of their own: the action always publishes to GitHub.
NOT_INPUTS = {"help", "publish"}
# Settings ci-perf reads under another name than their field (config._ALIASES).
ALIASES = {"CI_PERF_DURATION": "duration", "CI_PERF_HEALTH_TIMEOUT": "health_timeout"}
EXPR = re.compile(r"\$\{\{")
SHA_PIN = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def action() -> dict[str, Any]:
    return load(ACTION)


def step(data: dict[str, Any], step_id: str) -> dict[str, Any]:
    return next(s for s in data["runs"]["steps"] if s.get("id") == step_id)


def input_env(data: dict[str, Any]) -> dict[str, str]:
    """input name -> the environment variable of the action's steps that carries it."""
    out = {}
    for s in data["runs"]["steps"]:
        for var, value in (s.get("env") or {}).items():
            m = re.fullmatch(r"\$\{\{\s*inputs\.([\w-]+)\s*\}\}", str(value))
            if m:
                out[m.group(1)] = var
    return out


def run_options() -> dict[str, Any]:
    """`ci-perf run`'s long options (without --) -> argparse action."""
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    run = sub.choices["run"]  # type: ignore[attr-defined]
    out = {}
    for act in run._actions:
        for opt in act.option_strings:
            if opt.startswith("--"):
                out[opt[2:]] = act
    return out


def doc_tables() -> tuple[str, dict[str, list[str]], dict[str, list[str]]]:
    """The inputs and outputs tables: README.md's action-inputs section if it has one, else the docs page."""
    readme = ROOT / "README.md"
    source = INPUTS_DOC
    if readme.is_file() and re.search(r"^#+ .*\binputs\b", prose(readme), re.IGNORECASE | re.MULTILINE):
        source = readme
    text = prose(source)
    return str(source.relative_to(ROOT)), _table(text, r"inputs"), _table(text, r"outputs")


def prose(path: Path) -> str:
    """Markdown without its fenced code blocks (whose `# comments` would look like headings)."""
    return re.sub(r"^```.*?^```[^\n]*$", "", path.read_text(encoding="utf-8"), flags=re.MULTILINE | re.DOTALL)


def _table(text: str, heading: str) -> dict[str, list[str]]:
    """First table under the first heading that mentions `heading` (action inputs/outputs, not the
    publish sub-action's): first column's `name` -> the row's cells."""
    lines = text.splitlines()
    start = next(
        (
            i
            for i, line in enumerate(lines)
            if re.match(rf"^#+ .*\b{heading}\b", line, re.IGNORECASE) and "publish" not in line.lower()
        ),
        None,
    )
    assert start is not None, f"no heading about {heading}"
    rows: dict[str, list[str]] = {}
    for line in lines[start + 1 :]:
        if line.startswith("#"):
            break
        if not line.startswith("|"):
            if rows:
                break
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        m = re.fullmatch(r"`([\w-]+)`", cells[0])
        if m:
            rows[m.group(1)] = cells
    return rows


# --- action.yml: inputs, docs, CLI ---------------------------------------------------------------


def test_every_input_is_documented_and_every_documented_input_exists() -> None:
    where, inputs_doc, _ = doc_tables()
    inputs = set(action()["inputs"])
    assert set(inputs_doc) == inputs, f"{where}: documented vs action.yml differ: {set(inputs_doc) ^ inputs}"


def test_documented_defaults_match_action_yml() -> None:
    where, inputs_doc, _ = doc_tables()
    for name, spec in action()["inputs"].items():
        default = str(spec.get("default", ""))
        cell = inputs_doc[name][1]
        assert cell == (f"`{default}`" if default else ""), f"{where}: default of {name}: {cell!r} vs {default!r}"


def test_every_output_is_documented() -> None:
    where, _, outputs_doc = doc_tables()
    assert set(outputs_doc) == set(action()["outputs"]), f"{where}: outputs table differs from action.yml"


def test_every_input_maps_to_a_cli_flag_or_is_action_only() -> None:
    options = run_options()
    for name in action()["inputs"]:
        flag = FLAG_OF.get(name, name)
        assert flag in options or name in ACTION_ONLY, f"input {name!r} is no `ci-perf run` flag"


def test_every_cli_option_has_an_input() -> None:
    inputs = set(action()["inputs"])
    inputs |= {FLAG_OF[name] for name in inputs if name in FLAG_OF}
    missing = [opt for opt in run_options() if opt not in inputs and opt not in NOT_INPUTS]
    assert not missing, f"`ci-perf run` options without an action input: {missing}"


def test_each_input_reaches_ci_perf() -> None:
    """Through a CI_PERF_<FIELD> variable that config.py reads (untouched by the script), or its own use."""
    data = action()
    env = input_env(data)
    script = RUN_SCRIPT.read_text(encoding="utf-8")
    assert step(data, "run")["run"].strip() == 'bash "$CI_PERF_ACTION_PATH/scripts/action-run"'
    settings = {f.name for f in fields(Settings)}
    for name in data["inputs"]:
        assert name in env, f"input {name!r} is passed to no step's env"
        var = env[name]
        if name in ACTION_ONLY:
            assert var == ACTION_ONLY[name], f"{name} should arrive as {ACTION_ONLY[name]}, not {var}"
        elif var == "CI_PERF_CONFIG":
            assert '"CI_PERF_CONFIG"' in inspect.getsource(config), "config.py no longer reads CI_PERF_CONFIG"
        elif var in ALIASES:
            assert ALIASES[var] in config._ALIASES, f"config.py no longer reads {var}"
            assert var not in script, f"the run script handles {var} itself; config.py parses it"
        else:
            assert var not in script, f"the run script handles {var} itself; config.py parses it"
            field = var.removeprefix("CI_PERF_").lower()
            assert var.startswith("CI_PERF_") and field in settings, f"{var} is not a setting config.py reads"


def test_action_only_inputs_are_used() -> None:
    data = action()
    script = RUN_SCRIPT.read_text(encoding="utf-8")
    assert "CI_PERF_PUBLISH=github" in script
    assert "GITHUB_TOKEN" in TOKEN_VARS
    assert Auth.from_env({"CI_PERF_API_KEY": "k"}).api_key == "k"
    assert script.index("::add-mask::$CI_PERF_API_KEY") < script.index("ci_perf.inputcheck")
    assert '"$CI_PERF_PYTHON" -B -S -m ci_perf.inputcheck' in script  # before the install, stdlib only
    assert script.index("ci_perf.inputcheck") < script.index("scripts/action-install")
    assert "--missing-services" in script
    assert data["inputs"]["github-token"]["default"] == "${{ github.token }}"


def test_outputs_are_the_publishers() -> None:
    from ci_perf.publish import outputs_for
    from report_fixtures import outcome_for

    names = ("results.json", "junit.xml", "summary.md", "report.html", "report.md", "comment.md")
    written = {n: Path("reports") / n for n in names}
    published = set(outputs_for(outcome_for("handmade_regression"), written))
    outputs = action()["outputs"]
    assert set(outputs) <= published, f"outputs the publisher does not write: {set(outputs) - published}"
    for name, spec in outputs.items():
        assert spec["value"] == f"${{{{ steps.run.outputs.{name} }}}}"


def test_action_metadata() -> None:
    data = action()
    assert data["runs"]["using"] == "composite"
    assert data["name"] and data["description"] and data["branding"]["icon"] and data["branding"]["color"]
    for spec in data["inputs"].values():
        assert spec.get("description"), spec


def test_action_steps_are_run_steps_only() -> None:
    for path in ACTIONS:
        for s in load(path)["runs"]["steps"]:
            assert "run" in s and "uses" not in s, f"{path.name}: {s.get('name')} is not a run: step"
            assert s.get("shell") == "bash"


# --- scripts never expand expressions -----------------------------------------------------------


def all_run_steps() -> list[tuple[str, str, str]]:
    out = []
    for path in ACTIONS:
        for s in load(path)["runs"]["steps"]:
            out.append((str(path.relative_to(ROOT)), s.get("name", "?"), s.get("run", "")))
    for path in WORKFLOWS:
        for job_id, job in (load(path).get("jobs") or {}).items():
            for s in job.get("steps") or ():
                if "run" in s:
                    out.append((str(path.relative_to(ROOT)), f"{job_id}: {s.get('name', '?')}", s["run"]))
    return out


@pytest.mark.parametrize("where,name,script", all_run_steps(), ids=lambda v: str(v)[:40])
def test_no_expression_in_run(where: str, name: str, script: str) -> None:
    assert not EXPR.search(script), f"{where}: step {name!r} expands ${{{{ }}}} inside run:; pass it via env:"


# --- workflows ------------------------------------------------------------------------------------


def workflow_steps(path: Path) -> list[dict[str, Any]]:
    return [s for job in load(path)["jobs"].values() for s in job.get("steps") or ()]


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_hygiene(path: Path) -> None:
    data = load(path)
    assert "permissions" in data, "set top-level permissions (least privilege)"
    text = path.read_text(encoding="utf-8")
    for s in workflow_steps(path):
        uses = s.get("uses")
        if not uses or uses.startswith("./"):
            continue
        if uses.startswith("sark/perf-action"):
            assert re.fullmatch(r"sark/perf-action(/[\w-]+)?@v\d+", uses), uses
            continue
        assert SHA_PIN.match(uses), f"{uses} is not pinned to a full commit SHA"
        assert re.search(re.escape(uses) + r" # v\d+(\.\d+)*", text), f"{uses} needs a `# vX.Y.Z` comment"
        if uses.startswith("actions/checkout@"):
            assert (s.get("with") or {}).get("persist-credentials") is False, "checkout must not persist credentials"


def test_expected_workflows_exist() -> None:
    names = {p.name for p in WORKFLOWS}
    assert {
        "pr-check.yml",
        "nightly.yml",
        "publish-comment.yml",
        "reusable.yml",
        "seed-example.yml",
        "self-test.yml",
    } <= names


def test_pr_check_uploads_what_the_publisher_downloads() -> None:
    wf = ROOT / "workflows"
    upload = next(s for s in workflow_steps(wf / "pr-check.yml") if "upload-artifact" in s.get("uses", ""))
    download = next(s for s in workflow_steps(wf / "publish-comment.yml") if "download-artifact" in s.get("uses", ""))
    assert upload["with"]["name"] == download["with"]["name"] == "ci-perf-results"
    assert "runner.temp" in download["with"]["path"], "keep untrusted downloads out of the workspace"
    publisher = load(wf / "publish-comment.yml")
    assert publisher["permissions"] == {}
    assert publisher[True]["workflow_run"]["workflows"] == [load(wf / "pr-check.yml")["name"]]


def test_nightly_runs_every_seed_scenario_and_keeps_reports_30_days() -> None:
    from ci_perf.scenarios.catalog import SCENARIOS

    text = (ROOT / "workflows" / "nightly.yml").read_text(encoding="utf-8")
    for name in SCENARIOS:
        assert f'"{name}"' in text, f"nightly matrix lacks {name}"
    steps = workflow_steps(ROOT / "workflows" / "nightly.yml")
    upload = next(s for s in steps if "upload-artifact" in s.get("uses", ""))
    assert upload["with"]["retention-days"] == 30


def test_seed_example_reproduces_the_seed() -> None:
    data = load(ROOT / "workflows" / "seed-example.yml")
    job = data["jobs"]["performance-test"]
    assert job["services"]["postgres"]["image"] == "timescale/timescaledb:latest-pg15"
    assert job["services"]["redis"]["image"] == "redis:7-alpine"
    perf = next(s for s in job["steps"] if s.get("id") == "perf")
    assert perf["with"]["backend"] == "external"
    assert perf["with"]["users"] == "100" and perf["with"]["duration"] == "5m"
    assert any("upload-artifact" in s.get("uses", "") for s in job["steps"])


# --- GitLab template ------------------------------------------------------------------------------


def gitlab_template() -> dict[str, Any]:
    return load(ROOT / "gitlab" / "ci-perf.gitlab-ci.yml")


def test_gitlab_template_variables_cover_the_action_inputs() -> None:
    variables = gitlab_template()[".ci-perf"]["variables"]
    env = input_env(action())
    for name, var in env.items():
        if name in ("github-token", "api-key"):  # GitLab: masked CI/CD variables
            continue
        assert var in variables, f"template lacks {var} (action input {name})"
    assert "CI_PERF_PUBLISH" in variables
    assert "CI_PERF_API_KEY" not in variables, "secrets belong in masked CI/CD variables"


def test_gitlab_template_reports_and_rules() -> None:
    from ci_perf.reports import common

    job = gitlab_template()[".ci-perf"]
    artifacts = job["artifacts"]
    assert artifacts["when"] == "always" and artifacts["expire_in"] == "30 days"
    assert artifacts["paths"] == ["reports/"]
    assert artifacts["reports"] == {
        "junit": f"reports/{common.JUNIT_XML}",
        "load_performance": f"reports/{common.LOAD_PERFORMANCE_JSON}",
        "metrics": f"reports/{common.METRICS_TXT}",
    }
    sources = " ".join(rule["if"] for rule in job["rules"])
    for source in ("merge_request_event", "schedule", "web"):
        assert source in sources
    template = gitlab_template()
    assert {".ci-perf-services", ".ci-perf-docker"} <= set(template)
    aliases = {s["alias"] for s in template[".ci-perf-services"]["services"]}
    assert aliases == {"postgres", "redis"}


def test_gitlab_script_never_interpolates_into_code() -> None:
    """Variables are quoted shell expansions; the template never pastes them into python -c or eval."""
    script = "\n".join(gitlab_template()[".ci-perf"]["script"])
    assert "eval " not in script and "python -c" not in script


# --- the linters ----------------------------------------------------------------------------------


def tool(name: str) -> str:
    here = Path(sys.executable).parent / name
    found = str(here) if here.exists() else shutil.which(name)
    if not found:
        if os.environ.get("CI_PERF_REQUIRE_TOOLS") == "1":
            pytest.fail(f"{name} is not installed (CI_PERF_REQUIRE_TOOLS=1): pip install 'ci-perf[dev]'")
        pytest.skip(f"{name} is not installed")
    return found


def check(argv: list[str]) -> None:
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{' '.join(argv)} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}"


def test_zizmor_offline_is_clean() -> None:
    files = [str(p.relative_to(ROOT)) for p in (*ACTIONS, *WORKFLOWS)]
    check([tool("zizmor"), "--offline", "--config", ".github/zizmor.yml", *files])


@pytest.mark.parametrize(
    "schema,paths",
    [
        ("vendor.github-actions", ACTIONS),
        ("vendor.github-workflows", WORKFLOWS),
        ("vendor.gitlab-ci", [*GITLAB, ROOT / "tests" / "fixtures" / "gitlab-project" / ".gitlab-ci.yml"]),
    ],
    ids=["actions", "workflows", "gitlab"],
)
def test_check_jsonschema(schema: str, paths: list[Path]) -> None:
    check([tool("check-jsonschema"), "--builtin-schema", schema, *map(str, paths)])


def test_check_ci_config_script() -> None:
    tool("zizmor")
    tool("check-jsonschema")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.run(
        ["bash", str(ROOT / "scripts" / "check-ci-config")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
