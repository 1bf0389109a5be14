"""The bundled demo API as an image for the docker backend, when neither api-image nor api-build-context
is given: DEMO_IMAGE when it is there (a previous run, scripts/build-test-images), else built by
services/docker.py from dockerfiles/demo-api.Dockerfile with this repository's sources as the context.
An image ci-perf built carries a digest of those sources (SOURCES_LABEL): built from other sources (an
upgraded or edited action on a runner that keeps its images), it is built again.

Where the sources are: the action's folder (CI_PERF_ACTION_PATH, set by action.yml), else the checkout
this package runs from (an editable install). The base image is the Dockerfile's public Python image
unless CI_PERF_DEMO_BASE_IMAGE names another (an image made offline, as the tests here do).
"""

from __future__ import annotations

import hashlib
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
SOURCES_LABEL = "ci-perf.demo-sources"


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


def sources_digest(folder: Path) -> str:
    """What the image is built from: the context's files, by relative path and content."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(f"{path.relative_to(folder).as_posix()}\0".encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:16]


def stale(labels: Mapping[str, str], env: Mapping[str, str]) -> bool:
    """Built by ci-perf from other sources than those here? Images made elsewhere are never stale."""
    if SOURCES_LABEL not in labels or source_root(env) is None:
        return False
    with build_context(env, "") as (_, mine):
        return labels[SOURCES_LABEL] != mine[SOURCES_LABEL]


@contextmanager
def build_context(env: Mapping[str, str], image: str) -> Iterator[tuple[Path, dict[str, str]]]:
    """A throwaway folder with just what the Dockerfile copies (no .git, venvs or reports to upload),
    and the labels that record its sources."""
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
        yield ctx, {SOURCES_LABEL: sources_digest(ctx)}
