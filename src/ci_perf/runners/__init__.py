"""Load-tool runners, registered by name (as pre-commit registers its languages)."""

from __future__ import annotations

from ci_perf.runners.base import RUNNERS, Progress, RunArtifacts, RunSpec, get_runner

__all__ = ["RUNNERS", "Progress", "RunArtifacts", "RunSpec", "get_runner"]
