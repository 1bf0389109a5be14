"""The demo API image's build inputs (services/demo_image.py), without an engine: where the sources are,
what goes into the context, the build arguments, and when an image ci-perf built is built again. The
build itself runs in tests/test_e2e_act_container.py (default inputs)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ci_perf.errors import ConfigError
from ci_perf.services import demo_image

ROOT = Path(__file__).resolve().parent.parent


def action_copy(tmp_path: Path) -> Path:
    root = tmp_path / "action"
    shutil.copytree(ROOT / "src", root / "src", ignore=shutil.ignore_patterns("*.egg-info"))
    (root / "src" / "ci_perf" / "__pycache__").mkdir(exist_ok=True)
    (root / "src" / "ci_perf" / "__pycache__" / "junk.pyc").write_bytes(b"junk")
    (root / "dockerfiles").mkdir()
    shutil.copy2(ROOT / demo_image.DOCKERFILE, root / demo_image.DOCKERFILE)
    shutil.copy2(ROOT / "pyproject.toml", root / "pyproject.toml")
    (root / ".venv").mkdir()
    return root


def test_the_context_holds_what_the_dockerfile_copies_and_nothing_else(tmp_path: Path) -> None:
    env = {"CI_PERF_ACTION_PATH": str(action_copy(tmp_path))}
    with demo_image.build_context(env, "demo:1") as (ctx, labels):
        names = {p.name for p in ctx.iterdir()}
        assert names == {"Dockerfile", "pyproject.toml", "README.md", "src"}
        assert (ctx / "src" / "ci_perf" / "demo" / "app.py").is_file()
        assert not list(ctx.rglob("__pycache__")) and not list(ctx.rglob("*.egg-info"))
        assert (ctx / "Dockerfile").read_text() == (ROOT / demo_image.DOCKERFILE).read_text()
        assert labels == {demo_image.SOURCES_LABEL: demo_image.sources_digest(ctx)}
    assert not ctx.exists()


def test_without_sources_one_line_naming_the_way_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(demo_image, "__file__", str(tmp_path / "a" / "b" / "c" / "demo_image.py"))
    context = demo_image.build_context({"CI_PERF_ACTION_PATH": str(tmp_path)}, "demo:1")
    with pytest.raises(ConfigError, match=r"demo API image 'demo:1' is not here .* pass --api-image"), context:
        pass


def test_build_args_carry_the_base_and_pip_index_only_when_set() -> None:
    assert demo_image.build_args({}) == {}
    env = {"CI_PERF_DEMO_BASE_IMAGE": "local/py:1", "PIP_INDEX_URL": "http://127.0.0.1:3141/simple", "HOME": "/x"}
    assert demo_image.build_args(env) == {"BASE": "local/py:1", "PIP_INDEX_URL": "http://127.0.0.1:3141/simple"}
    dockerfile = (ROOT / demo_image.DOCKERFILE).read_text()
    for arg in ("BASE", *demo_image.PIP_ARGS):
        assert f"ARG {arg}=" in dockerfile


def test_an_image_built_from_other_sources_is_stale_one_made_elsewhere_never(tmp_path: Path) -> None:
    root = action_copy(tmp_path)
    env = {"CI_PERF_ACTION_PATH": str(root)}
    with demo_image.build_context(env, "") as (_, labels):
        pass
    assert not demo_image.stale(labels, env)
    assert not demo_image.stale({"ci-perf.service": "api"}, env)  # scripts/build-test-images' stand-in
    (root / "src" / "ci_perf" / "demo" / "app.py").write_text("# edited\n", encoding="utf-8")
    assert demo_image.stale(labels, env)
