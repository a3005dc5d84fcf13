"""`ensure_writable_dir`: a bad output folder fails before a long run, not after it."""

from __future__ import annotations

import errno
import tempfile
from pathlib import Path

import pytest

from dtif.errors import OutputError
from dtif.io import ensure_writable_dir


def test_creates_missing_folders_and_leaves_nothing_behind(tmp_path: Path) -> None:
    folder = tmp_path / "a" / "b"
    assert ensure_writable_dir(folder) == folder
    assert folder.is_dir() and list(folder.iterdir()) == []


def test_a_file_in_the_way(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputError, match=rf"cannot create output directory {blocker / 'out'}"):
        ensure_writable_dir(blocker / "out")


def test_a_folder_that_takes_no_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def denied(*args: object, **kwargs: object) -> tuple[int, str]:
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", denied)
    with pytest.raises(OutputError, match=r"not writable \(Permission denied\)"):
        ensure_writable_dir(tmp_path)
