"""Parsers: a tool's RunArtifacts -> RunResult, registered by tool name."""

from __future__ import annotations

from collections.abc import Callable

from ci_perf.errors import ConfigError
from ci_perf.model import RunMeta, RunResult
from ci_perf.runners.base import RunArtifacts

Parser = Callable[[RunArtifacts, RunMeta], RunResult]
PARSERS: dict[str, Parser] = {}


def register(name: str) -> Callable[[Parser], Parser]:
    def deco(fn: Parser) -> Parser:
        PARSERS[name] = fn
        return fn

    return deco


def get_parser(name: str) -> Parser:
    from ci_perf.parsers import k6, locust  # noqa: F401  (registers them)

    try:
        return PARSERS[name]
    except KeyError:
        raise ConfigError(f"no parser for tool {name!r}") from None
