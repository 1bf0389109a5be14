"""Regenerate the report golden files: `python tests/golden/regen_reports.py`.

Review the diff before committing: every changed byte is a change users will see.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from report_fixtures import CASES, GOLDEN, rendered


def main() -> None:
    for case in CASES:
        folder = GOLDEN / case
        folder.mkdir(parents=True, exist_ok=True)
        for name, content in rendered(case).items():
            (folder / name).write_text(content, encoding="utf-8", newline="")
            print(f"wrote {folder / name}")


if __name__ == "__main__":
    main()
