"""docs/robustness.md: every row names a test, and every test it names exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MATRIX = ROOT / "docs" / "robustness.md"
REFERENCE = re.compile(r"(tests/[\w/]+\.py)::(\w+)")


def test_every_row_names_a_test_that_exists() -> None:
    text = MATRIX.read_text()
    rows = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line]
    rows = [row for row in rows if not row.startswith("| Bad input")]
    assert len(rows) >= 30
    for row in rows:
        assert REFERENCE.search(row.rsplit("|", 2)[1]), f"row without a test: {row}"
    missing = []
    for file, name in set(REFERENCE.findall(text)):
        path = ROOT / file
        if not path.is_file() or not re.search(rf"^def {name}\(", path.read_text(), re.M):
            missing.append(f"{file}::{name}")
    assert not missing, f"docs/robustness.md names tests that do not exist: {sorted(missing)}"
