"""Atomic file writes: a file is either the old version or the complete new one, never half.

Each writer writes a temporary file in the target's directory, flushes and fsyncs it, then
renames it over the target with ``os.replace`` (atomic on POSIX and Windows within one file
system) and fsyncs the directory. If anything fails (disk full, Ctrl-C, an exception while
serialising), the temporary file is removed and the target keeps its previous content.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import torch

from dtif.errors import OutputError

__all__ = ["atomic_torch_save", "atomic_write_bytes", "atomic_write_text", "ensure_writable_dir"]


def _existing_mode(path: Path) -> int | None:
    """The permission bits of an existing target, or None."""
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        return None


def _temp_file(directory: Path, name: str) -> tuple[int, Path]:
    """Create a new temporary file beside the target, with the mode a plain ``open`` gives.

    The file is created with mode 0o666, which the kernel reduces by the process's umask, so
    the umask is applied without reading or changing it.
    """
    for _ in range(100):
        tmp = directory / f".{name}.{secrets.token_hex(6)}.tmp"
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary file name in {directory}")


def _fsync_directory(directory: Path) -> None:
    """Persist the rename (best effort: some file systems cannot open directories)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _atomic_write(path: str | os.PathLike[str], write: Callable[[IO[bytes]], object]) -> Path:
    target = Path(path)
    directory = target.parent
    if not directory.is_dir():
        raise OutputError(
            f"cannot write {target}: directory {directory} does not exist. Create it first or "
            "choose another output directory."
        )
    if target.is_dir():
        raise OutputError(f"cannot write {target}: it is a directory. Choose a file name.")
    try:
        fd, tmp = _temp_file(directory, target.name)
    except OSError as err:
        raise OutputError(
            f"cannot write {target}: directory {directory} is not writable ({err.strerror or err}). "
            "Fix its permissions or choose another output directory."
        ) from err
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        mode = _existing_mode(target)
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException as err:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(err, OSError):
            raise OutputError(
                f"could not write {target}: {err.strerror or err}; the previous file (if any) is "
                "unchanged. Free disk space or choose another output directory, then retry."
            ) from err
        raise
    _fsync_directory(directory)
    return target


def ensure_writable_dir(directory: str | os.PathLike[str]) -> Path:
    """Create ``directory`` (and its parents) if missing, and check that it takes new files.

    Call it before a long run that writes its results at the end, so that a bad output
    directory fails at once rather than after the work.

    Args:
        directory: the output folder.

    Returns:
        ``directory`` as a ``Path``.

    Raises:
        OutputError: the folder cannot be created (a file is in the way, no permission) or
            is not writable.
    """
    folder = Path(directory)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputError(
            f"cannot create output directory {folder} ({err.strerror or err}). Choose another "
            "output directory."
        ) from err
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".dtif-write-check.", suffix=".tmp")
    except OSError as err:
        raise OutputError(
            f"cannot write in {folder}: the directory is not writable ({err.strerror or err}). "
            "Fix its permissions or choose another output directory."
        ) from err
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(probe)
    return folder


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temp file, fsync, rename).

    Args:
        path: target file; its directory must exist.
        data: the new content.

    Returns:
        ``path`` as a ``Path``.

    Raises:
        OutputError: the directory is missing or not writable, or the write failed (e.g. disk
            full); the previous file is unchanged and no temporary file is left behind.
    """
    return _atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: str | os.PathLike[str], text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically; see :func:`atomic_write_bytes`.

    Args:
        path: target file; its directory must exist.
        text: the new content.
        encoding: text encoding.

    Returns:
        ``path`` as a ``Path``.

    Raises:
        OutputError: as :func:`atomic_write_bytes`.
    """
    return atomic_write_bytes(path, text.encode(encoding))


def atomic_torch_save(obj: Any, path: str | os.PathLike[str]) -> Path:
    """``torch.save(obj, path)`` atomically; see :func:`atomic_write_bytes`.

    Args:
        obj: what to save (for dtif files: plain tensors, dicts, lists, str, numbers).
        path: target file; its directory must exist.

    Returns:
        ``path`` as a ``Path``.

    Raises:
        OutputError: as :func:`atomic_write_bytes`.
        Exception: whatever ``torch.save`` raises while serialising ``obj``; the previous
            file is unchanged.
    """
    return _atomic_write(path, lambda f: torch.save(obj, f))
