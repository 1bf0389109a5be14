"""Parsers: a tool's RunArtifacts -> RunResult, registered by tool name."""

from __future__ import annotations

import importlib
from collections.abc import Callable

from ci_perf.errors import ConfigError
from ci_perf.model import TOOLS, RunMeta, RunResult
from ci_perf.runners.base import RunArtifacts

Parser = Callable[[RunArtifacts, RunMeta], RunResult]
# Beyond these a tool's file is broken, not a run (a window_s of 1e-9 or 1e308 would hang or overflow).
MAX_WINDOWS = 100_000
MAX_WINDOW_S = 86_400.0
PARSERS: dict[str, Parser] = {}


def register(name: str) -> Callable[[Parser], Parser]:
    def deco(fn: Parser) -> Parser:
        PARSERS[name] = fn
        return fn

    return deco


def get_parser(name: str) -> Parser:
    if name not in TOOLS:
        raise ConfigError(f"no parser for tool {name!r}; choose one of: {', '.join(TOOLS)}")
    importlib.import_module(f"ci_perf.parsers.{name}")  # registers it
    return PARSERS[name]
