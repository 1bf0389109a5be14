"""The bundled demo API as an image for the docker backend, when neither api-image nor api-build-context
is given: DEMO_IMAGE when it is there (a previous run, scripts/build-test-images), else built by
services/docker.py from dockerfiles/demo-api.Dockerfile with this repository's sources as the context.

Where the sources are: the action's folder (CI_PERF_ACTION_PATH, set by action.yml), else the checkout
this package runs from (an editable install). The base image is the Dockerfile's public Python image
unless CI_PERF_DEMO_BASE_IMAGE names another (an image made offline, as the tests here do).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from ci_perf.errors import ConfigError

DOCKERFILE = Path("dockerfiles") / "demo-api.Dockerfile"
SOURCES = ("pyproject.toml", "src")
# pip settings handed to the build as build arguments (the Dockerfile declares them).
PIP_ARGS = ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL")


def source_root(env: Mapping[str, str]) -> Path | None:
    here = Path(__file__).resolve().parents[3]  # src/ci_perf/services/ -> the checkout, if this is one
    for root in (Path(env["CI_PERF_ACTION_PATH"]) if env.get("CI_PERF_ACTION_PATH") else None, here):
        if root and all((root / p).exists() for p in (*SOURCES, DOCKERFILE)):
            return root
    return None


def build_args(env: Mapping[str, str]) -> dict[str, str]:
    args = {name: env[name] for name in PIP_ARGS if env.get(name)}
    if env.get("CI_PERF_DEMO_BASE_IMAGE"):
        args["BASE"] = env["CI_PERF_DEMO_BASE_IMAGE"]
    return args


@contextmanager
def build_context(env: Mapping[str, str], image: str) -> Iterator[Path]:
    """A throwaway folder with just what the Dockerfile copies (no .git, venvs or reports to upload)."""
    root = source_root(env)
    if root is None:
        raise ConfigError(
            f"the demo API image {image!r} is not here and there are no ci-perf sources to build it from "
            f"({DOCKERFILE} with pyproject.toml and src/); pass --api-image or --api-build-context"
        )
    with tempfile.TemporaryDirectory(prefix="ci-perf-demo-") as tmp:
        ctx = Path(tmp)
        shutil.copy2(root / "pyproject.toml", ctx)
        shutil.copytree(root / "src", ctx / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        shutil.copy2(root / DOCKERFILE, ctx / "Dockerfile")
        readme = root / "README.md"
        if readme.is_file():
            shutil.copy2(readme, ctx)
        else:  # pyproject names README.md as the readme: the build fails without one
            (ctx / "README.md").write_text("ci-perf\n", encoding="utf-8")
        yield ctx
