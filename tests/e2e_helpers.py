"""Shared by the end-to-end tests: finding the CI runners, and a clean environment for them."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Variables of the CI this test suite itself may run in: inherited by act's host-mode steps and by
# gitlab-ci-local's shell jobs, they would make ci-perf believe it runs in that CI and publish there.
_CI_PREFIXES = ("GITHUB_", "GITLAB_", "CI_", "RUNNER_", "ACTIONS_", "ACT")
_CI_NAMES = {"CI", "ACT"}


def require_tool(name: str, hint: str) -> str:
    """The tool's path; skip when missing, unless CI_PERF_REQUIRE_TOOLS=1 (then fail)."""
    here = Path(sys.executable).parent / name
    found = str(here) if here.exists() else shutil.which(name)
    if not found:
        if os.environ.get("CI_PERF_REQUIRE_TOOLS") == "1":
            pytest.fail(f"{name} is not installed (CI_PERF_REQUIRE_TOOLS=1): {hint}")
        pytest.skip(f"{name} is not installed: {hint}")
    return found


def pip_cache_dir() -> str:
    """The real pip cache, so that a run under a temporary XDG_CACHE_HOME still reuses downloads."""
    if os.environ.get("PIP_CACHE_DIR"):
        return os.environ["PIP_CACHE_DIR"]
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return str(Path(base) / "pip")


def clean_env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k.startswith("CI_PERF_") or (k not in _CI_NAMES and not k.startswith(_CI_PREFIXES))
    }
    # The venv running the tests goes first on PATH (act, zizmor), but the jobs build their own venv.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.pop("VIRTUAL_ENV", None)
    env["PIP_CACHE_DIR"] = pip_cache_dir()
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env.update(extra)
    return env


def copy_sources(dest: Path) -> Path:
    """ci-perf's installable sources (no build leftovers), as the action and the template install them."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy2(ROOT / "pyproject.toml", dest / "pyproject.toml")
    readme = ROOT / "README.md"
    if readme.is_file():
        shutil.copy2(readme, dest / "README.md")
    else:
        (dest / "README.md").write_text("ci-perf\n", encoding="utf-8")
    shutil.copytree(ROOT / "src", dest / "src", ignore=shutil.ignore_patterns("*.egg-info", "__pycache__", "*.pyc"))
    return dest


GITLAB_FIXTURE = ROOT / "tests" / "fixtures" / "gitlab-project"


def gitlab_ci_local() -> str:
    """gitlab-ci-local's path (it copies the project with rsync, so that is required too)."""
    gcl = require_tool("gitlab-ci-local", "npm install -g gitlab-ci-local@4.72.0")
    require_tool("rsync", "apt-get install -y rsync")
    return gcl


def make_gitlab_project(dest: Path) -> Path:
    """A git repository like a SARK project's: the fixture's .gitlab-ci.yml, the template it includes
    (gitlab/ci-perf.gitlab-ci.yml) and ci-perf's sources to install (instead of the git URL)."""
    dest.mkdir(parents=True)
    shutil.copy2(GITLAB_FIXTURE / ".gitlab-ci.yml", dest / ".gitlab-ci.yml")
    (dest / "gitlab").mkdir()
    shutil.copy2(ROOT / "gitlab" / "ci-perf.gitlab-ci.yml", dest / "gitlab" / "ci-perf.gitlab-ci.yml")
    copy_sources(dest / "ci-perf-src")
    git = ["git", "-c", "user.email=ci-perf@example.com", "-c", "user.name=ci-perf", "-c", "init.defaultBranch=main"]
    for args in (
        ["init", "-q"],
        ["remote", "add", "origin", "https://gitlab.example.com/sark/demo.git"],
        ["add", "-A"],
        ["commit", "-q", "-m", "project"],
    ):
        subprocess.run([*git, *args], cwd=dest, check=True, capture_output=True)
    return dest


_OUTPUTS = re.compile(r"ci-perf-outputs (.*)$", re.MULTILINE)


def workflow_outputs(log: str) -> dict[str, str]:
    """The action's outputs as self-test.yml prints them: `ci-perf-outputs key=value ...` lines."""
    out: dict[str, str] = {}
    for line in _OUTPUTS.findall(log):
        for pair in line.split():
            key, _, value = pair.partition("=")
            out[key] = value
    return out


def explain_run(tool: str, returncode: int, log: str) -> str:
    tail = "\n".join(log.splitlines()[-80:])
    return f"{tool} exited {returncode}; last lines of its log:\n{tail}"
