"""Errors a user can act on. Each becomes one line on stderr and an exit code."""

from __future__ import annotations

# Exit codes: 0 gates passed, 1 a performance gate failed, 2 usage/config, 3 infrastructure.
EXIT_OK = 0
EXIT_GATE_FAILED = 1
EXIT_USAGE = 2
EXIT_INFRA = 3


class CiPerfError(Exception):
    """Base: the message is the whole story for the user (what is wrong and how to fix it)."""

    exit_code = EXIT_INFRA


class ConfigError(CiPerfError):
    """Bad flags, bad ci-perf.yml, unknown scenario, bad threshold expression, missing token."""

    exit_code = EXIT_USAGE


class ResultError(CiPerfError):
    """A result file that cannot be read: names the file and what is wrong with it."""

    exit_code = EXIT_USAGE


class ServiceError(CiPerfError):
    """A service did not come up or did not become healthy (the message carries its last log lines)."""

    exit_code = EXIT_INFRA


class RunnerError(CiPerfError):
    """The load tool is missing, crashed, or wrote no results."""

    exit_code = EXIT_INFRA
