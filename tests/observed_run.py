"""A short real `ci-perf run` on the local backend (PostgreSQL, Redis, the demo API with its knobs),
for the integration tests of the system sampler and the findings, and for the bench scripts."""

from __future__ import annotations

from pathlib import Path

from ci_perf.config import Settings
from ci_perf.model import Outcome, Tool
from ci_perf.pipeline import load_outcome, run
from ci_perf.tokens import JwtConfig


def observed_run(folder: Path, scenario: str, users: int, duration_s: int, api_env: dict[str, str],
                 spawn_rate: float | None = None, window_s: float = 2.0,
                 tool: Tool = "locust", identities: int = 0) -> tuple[int, Outcome]:  # fmt: skip
    """(exit code, the Outcome read back from results.json) of one run with reports in `folder`;
    `identities` > 0 mints that many JWT identities for all users (0: one per user, the preset's)."""
    settings = Settings(
        scenario=scenario, tool=tool, backend="local", users=users, spawn_rate=spawn_rate or users / 4,
        duration_s=duration_s, report_dir=folder, window_s=window_s, processes=1, health_timeout_s=60.0,
        api_env=api_env, publish="files", jwt=JwtConfig(identities=identities) if identities else None,
    )  # fmt: skip
    code = run(settings, env={})
    return code, load_outcome(folder / "results.json")
