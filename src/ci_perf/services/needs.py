"""`python -m ci_perf.services.needs`: the Debian packages this run's stack needs and the machine lacks,
on one line; nothing when none are missing or the stack is not the local backend's. The GitLab template
installs them with apt-get before `ci-perf run` (CI_PERF_INSTALL_SERVICES turns that off).

The settings are the run's own (CI_PERF_* and ci-perf.yml, `config.build_settings`), so the backend is
decided where `ci-perf run` decides it. A bad setting prints nothing here: `ci-perf run` names it.
"""

from __future__ import annotations

from collections.abc import Mapping

from ci_perf.config import build_settings
from ci_perf.errors import ConfigError


def missing_packages(env: Mapping[str, str] | None = None) -> list[str]:
    try:
        backend = build_settings({}, env).resolved_backend
    except ConfigError:
        return []
    if backend != "local":
        return []
    from ci_perf.services.local import missing_packages as local_missing

    return local_missing()


if __name__ == "__main__":
    print(" ".join(missing_packages()))
