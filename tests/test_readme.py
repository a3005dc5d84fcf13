"""The README's Python API example runs as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def python_api_example() -> str:
    """The first ```python block under the "## Python API" heading."""
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## Python API\n", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"^```python\n(.*?)^```", section, re.S | re.M)
    assert match, "README.md: no ```python block under ## Python API"
    return match.group(1)


def test_python_api_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    code = python_api_example()
    exec(compile(code, str(README), "exec"), {"__name__": "readme_example"})
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == 2  # the two print() calls of the example
