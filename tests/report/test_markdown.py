"""Benchmarks replace their own section of docs/results.md and leave the rest alone."""

from pathlib import Path

from dtif.report.markdown import replace_section


def test_replace_section_replaces_only_its_own_section(tmp_path: Path) -> None:
    page = tmp_path / "results.md"
    page.write_text("# Results\n\nintro\n\n## Speed\n\nold\n\n## Speed: analysis\n\nkept\n")
    replace_section(page, "## Speed", "new table")
    assert page.read_text() == (
        "# Results\n\nintro\n\n## Speed\n\nnew table\n\n## Speed: analysis\n\nkept\n"
    )


def test_replace_section_appends_and_creates(tmp_path: Path) -> None:
    page = tmp_path / "results.md"
    replace_section(page, "## A", "one")
    replace_section(page, "## B", "two")
    replace_section(page, "## A", "three")
    assert page.read_text() == "# Results\n\n## A\n\nthree\n\n## B\n\ntwo\n\n"
