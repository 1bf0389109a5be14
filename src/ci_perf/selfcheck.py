"""`python -m ci_perf.selfcheck`: is this installation complete? Run by the action's install step, so a
vendored copy that lost a folder (an ignore rule such as `reports/` in the consumer's .gitignore, a
partial copy) stops there with one line, instead of dying after the whole load test.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

# The modules that between them import all of ci-perf's library code, and the files the load tools and
# renderers read (the tool scripts are run by the tools, not imported here; the demo needs its extra).
# Listed, not discovered: a missing folder is exactly what discovery would not notice.
ENTRY_MODULES = (
    "ci_perf.cli", "ci_perf.commands", "ci_perf.pipeline", "ci_perf.reports", "ci_perf.publish",
    "ci_perf.runners.locust", "ci_perf.runners.k6", "ci_perf.parsers.locust", "ci_perf.parsers.k6",
    "ci_perf.services.local", "ci_perf.services.docker", "ci_perf.services.external", "ci_perf.observe",
)  # fmt: skip
DATA = (
    "scenarios/k6_script.js", "scenarios/locustfile.py", "scenarios/locust_plugin.py", "scenarios/answers.py",
    "reports/report.html", "demo/__main__.py", "demo/app.py", "demo/opa.py",
)  # fmt: skip
HINT = "a partial copy of the action, or an ignore rule (e.g. reports/ in .gitignore) that dropped it"


def problems() -> list[str]:
    import ci_perf

    root = Path(ci_perf.__file__).parent
    found: list[str] = []
    for name in ENTRY_MODULES:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            found.append(f"{name} cannot be imported ({exc})")
    found += [f"{name} is missing from {root}" for name in DATA if not (root / name).is_file()]
    return found


def main() -> int:
    found = problems()
    if found:
        print(f"ci-perf: the installation is incomplete: {found[0]}; likely {HINT}", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
