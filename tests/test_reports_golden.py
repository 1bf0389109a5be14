"""Every judging stage (evaluation, findings, verdict) and every report of the golden cases, byte for
byte. Regenerate: python tests/golden/regen_reports.py"""

from __future__ import annotations

import pytest

from ci_perf.reports import RENDERERS
from report_fixtures import CASES, GOLDEN, STAGES, rendered


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("name", [*STAGES, *sorted(RENDERERS)])
def test_golden(case: str, name: str) -> None:
    with open(GOLDEN / case / name, encoding="utf-8", newline="") as f:
        expected = f.read()
    actual = rendered(case)[name]
    assert actual == expected, f"{case}/{name} changed: run `python tests/golden/regen_reports.py` and review"


def test_renderers_are_deterministic() -> None:
    for case in CASES:
        assert rendered(case) == rendered(case)
