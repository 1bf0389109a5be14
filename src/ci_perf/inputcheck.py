"""The action's checks around the install (scripts/action-run):

- `python -m ci_perf.inputcheck`, before the install, on the runner's bare Python (stdlib only, run from
  the action's src folder): the CI_PERF_* inputs through ci-perf's own config code, so a bad input is a
  GitHub `::error::` annotation in a moment instead of after the install;
- `python -m ci_perf.inputcheck --missing-services`, after it: the apt packages to install, those the run
  needs and lacks (PostgreSQL, Redis) when the backend it resolves to is local and the action's
  install-services input (CI_PERF_INSTALL_SERVICES) is true; nothing for docker or external.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

from ci_perf.errors import EXIT_OK, EXIT_USAGE, ConfigError
from ci_perf.workflow_commands import Annotation, annotation_line


def error_annotation(exc: ConfigError, env: Mapping[str, str]) -> str | None:
    """The `::error::` line for a bad setting when running in GitHub Actions (or act), else None."""
    if env.get("GITHUB_ACTIONS") != "true":
        return None
    return annotation_line(Annotation("error", str(exc), "ci-perf"))


def install_services(env: Mapping[str, str]) -> bool:
    from ci_perf.config import _flag

    return _flag("install-services", env.get("CI_PERF_INSTALL_SERVICES", "true"))


def missing_services(env: Mapping[str, str]) -> list[str]:
    if not install_services(env):
        return []
    from ci_perf.services.needs import missing_packages  # the same answer the GitLab template gets

    return missing_packages(env)


def main(argv: list[str]) -> int:
    from ci_perf.config import check_environment

    if argv == ["--missing-services"]:
        print(" ".join(missing_services(os.environ)))
        return EXIT_OK
    try:
        check_environment(os.environ)
        install_services(os.environ)
    except ConfigError as exc:
        annotation = error_annotation(exc, os.environ)
        if annotation:
            print(annotation, flush=True)
        print(f"ci-perf: error: {exc}", file=sys.stderr, flush=True)
        return EXIT_USAGE
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
