"""dtif.io. Atomic writes: the old file survives every failure, no temporary file is left
behind, a new file gets the umask's mode. `ensure_writable_dir`: a bad output folder fails
before a long run, not after it."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import IO

import pytest
import torch

import dtif.io
from dtif.errors import OutputError
from dtif.io import atomic_torch_save, atomic_write_bytes, atomic_write_text, ensure_writable_dir


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


UMASK_CHILD = """
import os, stat, sys
from dtif.io import atomic_write_text
os.umask(0o027)
before = os.umask(0o027)  # reading the umask sets it: set it back to the same value
calls = []
real_umask = os.umask
os.umask = lambda mask: calls.append(mask) or real_umask(mask)  # even a set-and-restore counts
atomic_write_text(sys.argv[1] + "/atomic.txt", "x")
os.umask = real_umask
with open(sys.argv[1] + "/plain.txt", "w") as f:
    f.write("x")
after = os.umask(0o027)
mode = stat.S_IMODE(os.stat(sys.argv[1] + "/atomic.txt").st_mode)
plain = stat.S_IMODE(os.stat(sys.argv[1] + "/plain.txt").st_mode)
print(oct(before), oct(after), oct(mode), oct(plain), len(calls))
"""


@pytest.mark.skipif(os.name != "posix", reason="umask and mode bits are POSIX")
def test_atomic_write_text_gives_a_plain_open_mode_and_keeps_the_umask(
    tmp_path: Path,
) -> None:
    """Under umask 0o027 a new file is 0o640, as `open()` gives; the umask stays 0o027.

    In a subprocess: the umask is process-wide, and reading it means setting it.
    """
    proc = subprocess.run(
        [sys.executable, "-c", UMASK_CHILD, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    before, after, mode, plain, calls = proc.stdout.split()
    assert before == after == oct(0o027)  # atomic_write_text did not change the umask
    assert calls == "0"  # nor set it for a moment (another thread would create files under it)
    assert mode == plain == oct(0o640)


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


# ---- ensure_writable_dir ---------------------------------------------------------------------


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
