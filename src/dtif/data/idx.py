"""Reader for the IDX format of MNIST and Fashion-MNIST (raw or gzipped files).

An IDX file is a big-endian header followed by the raw payload:

- magic number (int32): ``2051`` for images (``ubyte``, 3 dims), ``2049`` for labels
  (``ubyte``, 1 dim);
- one int32 per dimension (``N, H, W`` for images, ``N`` for labels);
- ``prod(dims)`` bytes of ``uint8`` data.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path
from typing import Literal

import numpy as np

from dtif.errors import DatasetError

IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049

_SPLIT_PREFIX: dict[str, str] = {"train": "train", "test": "t10k"}


def idx_file_names(split: Literal["train", "test"]) -> tuple[str, str]:
    """Names of the image and label files of a split, without the ``.gz`` suffix.

    Args:
        split: ``"train"`` or ``"test"``.

    Returns:
        ``(images_name, labels_name)``, e.g.
        ``("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")``.
    """
    prefix = _SPLIT_PREFIX[split]
    return f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"


def find_idx_file(directory: Path, name: str, hint: str) -> Path:
    """Find ``name`` or ``name.gz`` in ``directory``.

    Args:
        directory: folder to search.
        name: file name without the ``.gz`` suffix.
        hint: how to get the data, appended to the error message.

    Returns:
        The path of the gzipped file if it exists, else of the raw file.

    Raises:
        DatasetError: neither file exists; the message names both file names and the folder.
    """
    for candidate in (directory / f"{name}.gz", directory / name):
        if candidate.is_file():
            return candidate
    raise DatasetError(
        f"IDX file not found: expected {name}.gz or {name} in directory {directory}. {hint}"
    )


def _read_bytes(path: Path, hint: str) -> bytes:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except FileNotFoundError as e:
        raise DatasetError(f"IDX file not found: {path}. {hint}") from e
    except (OSError, EOFError, zlib.error) as e:
        raise DatasetError(
            f"cannot read IDX file {path} (corrupt or truncated: {e}). {hint}"
        ) from e


def read_idx(path: Path, magic: int, ndim: int, hint: str) -> np.ndarray:
    """Read one IDX file of ``uint8`` data and check its header against its payload.

    Args:
        path: the file, gzipped if its name ends in ``.gz``.
        magic: expected magic number (``IMAGES_MAGIC`` or ``LABELS_MAGIC``).
        ndim: expected number of dimensions (3 for images, 1 for labels).
        hint: how to get the data, appended to every error message.

    Returns:
        ``uint8`` array of shape ``dims`` from the header (``[N, H, W]`` or ``[N]``).

    Raises:
        DatasetError: the file is missing, unreadable, has the wrong magic number, or its
            payload length differs from the one the header declares.
    """
    raw = _read_bytes(path, hint)
    header_len = 4 + 4 * ndim
    if len(raw) < 4:
        raise DatasetError(
            f"IDX file {path} is truncated: {len(raw)} bytes, shorter than its magic number. {hint}"
        )
    found = int(np.frombuffer(raw, dtype=">i4", count=1)[0])
    if found != magic:
        raise DatasetError(
            f"IDX file {path} has magic number {found}, expected {magic} "
            f"({'images' if magic == IMAGES_MAGIC else 'labels'}); wrong or corrupt file. {hint}"
        )
    if len(raw) < header_len:
        raise DatasetError(
            f"IDX file {path} is truncated: {len(raw)} bytes, shorter than its "
            f"{header_len}-byte header. {hint}"
        )
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">i4", count=ndim, offset=4))
    if any(d < 0 for d in dims):
        raise DatasetError(f"IDX file {path} declares negative dimensions {dims}. {hint}")
    expected = int(np.prod(dims, dtype=np.int64))
    payload = len(raw) - header_len
    if payload != expected:
        what = "truncated" if payload < expected else "longer than its header declares"
        raise DatasetError(
            f"IDX file {path} is {what}: header declares dims {dims} ({expected} bytes of data), "
            f"found {payload} bytes. {hint}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header_len).reshape(dims)


def load_idx_split(
    directory: Path, split: Literal["train", "test"], hint: str
) -> tuple[np.ndarray, np.ndarray]:
    """Load the images and labels of one split from a folder of IDX files.

    Args:
        directory: folder holding ``train-*``/``t10k-*`` IDX files, raw or gzipped.
        split: ``"train"`` or ``"test"``.
        hint: how to get the data, appended to every error message.

    Returns:
        ``(images, labels)``: ``uint8`` arrays ``[N, H, W]`` and ``[N]``.

    Raises:
        DatasetError: a file is missing or corrupt, or the image and label counts differ.
    """
    images_name, labels_name = idx_file_names(split)
    images_path = find_idx_file(directory, images_name, hint)
    labels_path = find_idx_file(directory, labels_name, hint)
    images = read_idx(images_path, IMAGES_MAGIC, 3, hint)
    labels = read_idx(labels_path, LABELS_MAGIC, 1, hint)
    if images.shape[0] != labels.shape[0]:
        raise DatasetError(
            f"IDX files disagree: {images_path} holds {images.shape[0]} images but "
            f"{labels_path} holds {labels.shape[0]} labels. {hint}"
        )
    return images, labels
