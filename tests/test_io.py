"""Atomic writes: the old file survives every failure, no temporary file is left behind."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import IO

import pytest
import torch

import dtif.io
from dtif.errors import OutputError
from dtif.io import atomic_torch_save, atomic_write_bytes, atomic_write_text


def _leftovers(directory: Path, keep: str) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name != keep)


def test_write_and_overwrite(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    assert atomic_write_bytes(target, b"one") == target
    assert target.read_bytes() == b"one"
    atomic_write_bytes(str(target), b"two")
    assert target.read_bytes() == b"two"
    atomic_write_text(tmp_path / "t.txt", "héllo\n")
    assert (tmp_path / "t.txt").read_text(encoding="utf-8") == "héllo\n"
    atomic_torch_save({"x": torch.arange(3)}, tmp_path / "x.pt")
    assert torch.equal(torch.load(tmp_path / "x.pt", weights_only=True)["x"], torch.arange(3))
    assert _leftovers(tmp_path, "out.bin") == ["t.txt", "x.pt"]


def test_new_file_gets_umask_permissions(tmp_path: Path) -> None:
    umask = os.umask(0)
    os.umask(umask)
    atomic_write_bytes(tmp_path / "f", b"x")
    assert (tmp_path / "f").stat().st_mode & 0o777 == 0o666 & ~umask
    (tmp_path / "f").chmod(0o600)
    atomic_write_bytes(tmp_path / "f", b"y")  # an existing file keeps its mode
    assert (tmp_path / "f").stat().st_mode & 0o777 == 0o600


def test_disk_full_keeps_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "results.json"
    target.write_text("old")

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OutputError, match="No space left.*previous file"):
        atomic_write_text(target, "new" * 1000)
    assert target.read_text() == "old"
    assert _leftovers(tmp_path, "results.json") == []


def test_serialisation_error_mid_write_keeps_old_file(tmp_path: Path) -> None:
    target = tmp_path / "checkpoint.pt"
    atomic_torch_save({"w": torch.ones(2)}, target)
    before = target.read_bytes()
    # A tensor is written first, then pickling the lambda fails half-way through the archive.
    with pytest.raises(Exception, match="lambda|pickle|Can't"):
        atomic_torch_save({"w": torch.zeros(1000), "f": lambda: 0}, target)
    assert target.read_bytes() == before
    assert _leftovers(tmp_path, "checkpoint.pt") == []


def test_interrupt_mid_write_keeps_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "a.txt"
    target.write_text("old")
    real_fdopen = os.fdopen

    class Interrupting:
        def __init__(self, f: IO[bytes]) -> None:
            self.f = f

        def __enter__(self) -> Interrupting:
            return self

        def __exit__(self, *exc: object) -> None:
            self.f.close()

        def write(self, data: bytes) -> int:
            self.f.write(data[:2])
            raise KeyboardInterrupt

    monkeypatch.setattr(os, "fdopen", lambda fd, mode: Interrupting(real_fdopen(fd, mode)))
    with pytest.raises(KeyboardInterrupt):
        atomic_write_text(target, "new content")
    assert target.read_text() == "old"
    assert _leftovers(tmp_path, "a.txt") == []


def test_unwritable_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def denied(*args: object) -> tuple[int, Path]:
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(dtif.io, "_temp_file", denied)
    with pytest.raises(OutputError, match=r"not writable \(Permission denied\)"):
        atomic_write_bytes(tmp_path / "x", b"data")
    assert not (tmp_path / "x").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_unwritable_directory_for_real(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(OutputError, match="not writable"):
            atomic_write_bytes(locked / "x", b"data")
    finally:
        locked.chmod(0o700)


def test_missing_directory_and_directory_target(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="does not exist"):
        atomic_write_bytes(tmp_path / "nope" / "x", b"data")
    with pytest.raises(OutputError, match="is a directory"):
        atomic_write_bytes(tmp_path, b"data")
