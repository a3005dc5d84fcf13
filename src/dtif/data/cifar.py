"""Reader for the official "python version" of CIFAR-10 and CIFAR-100.

Each batch file is a pickled dict with ``b"data"`` (``uint8 [N, 3072]``: 1024 red, then
1024 green, then 1024 blue values of a row-major 32x32 image) and ``b"labels"`` (CIFAR-10)
or ``b"fine_labels"`` (CIFAR-100). The files are read from the extracted folder or straight
from the ``.tar.gz`` archive, without extracting it to disk.

Pickles can run arbitrary code, so batches are loaded with an unpickler that only accepts
the numpy globals an array needs.
"""

from __future__ import annotations

import codecs
import importlib
import io
import pickle
import tarfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from dtif.errors import DatasetError

IMAGE_SHAPE = (3, 32, 32)
ROW_LENGTH = 3 * 32 * 32


@dataclass(frozen=True)
class CifarSpec:
    """Layout of one CIFAR variant.

    Attributes:
        folder: name of the extracted folder (also the prefix of the archive members).
        archive: name of the ``.tar.gz`` archive.
        train_members: batch files of the train split.
        test_members: batch files of the test split.
        label_key: key of the labels in each batch dict.
        num_classes: number of classes; labels must lie in ``[0, num_classes)``.
    """

    folder: str
    archive: str
    train_members: tuple[str, ...]
    test_members: tuple[str, ...]
    label_key: bytes
    num_classes: int

    def members(self, split: Literal["train", "test"]) -> tuple[str, ...]:
        """Batch files of ``split``."""
        return self.train_members if split == "train" else self.test_members


CIFAR10 = CifarSpec(
    folder="cifar-10-batches-py",
    archive="cifar-10-python.tar.gz",
    train_members=tuple(f"data_batch_{i}" for i in range(1, 6)),
    test_members=("test_batch",),
    label_key=b"labels",
    num_classes=10,
)
CIFAR100 = CifarSpec(
    folder="cifar-100-python",
    archive="cifar-100-python.tar.gz",
    train_members=("train",),
    test_members=("test",),
    label_key=b"fine_labels",
    num_classes=100,
)


def _numpy_global(candidates: tuple[str, ...], name: str) -> Any:
    for module in candidates:
        try:
            return getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):
            continue
    return None


_RECONSTRUCT = _numpy_global(("numpy._core.multiarray", "numpy.core.multiarray"), "_reconstruct")
_FROMBUFFER = _numpy_global(("numpy._core.numeric", "numpy.core.numeric"), "_frombuffer")

# (module, name) -> object: everything a pickled dict of numpy arrays, lists and bytes needs.
_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy.core.numeric", "_frombuffer"): _FROMBUFFER,
    ("numpy._core.numeric", "_frombuffer"): _FROMBUFFER,
    ("_codecs", "encode"): codecs.encode,
}


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the globals in ``_ALLOWED_GLOBALS``."""

    def find_class(self, module: str, name: str) -> Any:
        found = _ALLOWED_GLOBALS.get((module, name))
        if found is None:
            raise pickle.UnpicklingError(
                f"refusing global {module}.{name}: a CIFAR batch only holds arrays and lists"
            )
        return found


_UNPICKLE_ERRORS = (
    pickle.UnpicklingError,
    EOFError,
    ValueError,
    TypeError,
    AttributeError,
    IndexError,
    KeyError,
    ImportError,
)
_ARCHIVE_ERRORS = (tarfile.TarError, OSError, EOFError, zlib.error)


def download_hint(spec: CifarSpec) -> str:
    """How to get ``spec``'s files and where to put them (appended to errors)."""
    return (
        f"Download the python version from https://www.cs.toronto.edu/~kriz/cifar.html and "
        f"pass its folder with --data-dir or DTIF_DATA: either {spec.archive} or the extracted "
        f"{spec.folder}/ inside it, or {spec.folder}/ itself."
    )


def _parse_batch(raw: bytes, where: str, spec: CifarSpec) -> tuple[np.ndarray, np.ndarray]:
    hint = download_hint(spec)
    try:
        batch = _ArrayUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except _UNPICKLE_ERRORS as e:
        raise DatasetError(
            f"cannot unpickle CIFAR batch {where} (corrupt file: {e}). {hint}"
        ) from e
    if not isinstance(batch, dict) or b"data" not in batch or spec.label_key not in batch:
        keys = sorted(batch) if isinstance(batch, dict) else type(batch).__name__
        raise DatasetError(
            f"CIFAR batch {where} is not a dict with keys b'data' and {spec.label_key!r} "
            f"(found {keys}). {hint}"
        )
    data = np.asarray(batch[b"data"])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != ROW_LENGTH:
        raise DatasetError(
            f"CIFAR batch {where}: b'data' must be uint8 [N, {ROW_LENGTH}], found "
            f"{data.dtype} {list(data.shape)}. {hint}"
        )
    try:
        labels = np.asarray(batch[spec.label_key], dtype=np.int64)
    except (TypeError, ValueError) as e:
        raise DatasetError(f"CIFAR batch {where}: labels are not integers ({e}). {hint}") from e
    if labels.ndim != 1 or labels.shape[0] != data.shape[0]:
        raise DatasetError(
            f"CIFAR batch {where}: {data.shape[0]} images but labels of shape "
            f"{list(labels.shape)}. {hint}"
        )
    if labels.size and (labels.min() < 0 or labels.max() >= spec.num_classes):
        raise DatasetError(
            f"CIFAR batch {where}: labels outside [0, {spec.num_classes}) "
            f"(min {labels.min()}, max {labels.max()}). {hint}"
        )
    return data.reshape(-1, *IMAGE_SHAPE), labels


def _read_folder(folder: Path, members: tuple[str, ...], spec: CifarSpec) -> list[bytes]:
    out = []
    for member in members:
        path = folder / member
        try:
            out.append(path.read_bytes())
        except FileNotFoundError as e:
            raise DatasetError(
                f"CIFAR batch file not found: {path} (expected {', '.join(members)} in "
                f"{folder}). {download_hint(spec)}"
            ) from e
        except OSError as e:
            raise DatasetError(f"cannot read CIFAR batch {path}: {e}. {download_hint(spec)}") from e
    return out


def _read_archive(archive: Path, members: tuple[str, ...], spec: CifarSpec) -> list[bytes]:
    out = []
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in members:
                name = f"{spec.folder}/{member}"
                try:
                    handle = tar.extractfile(name)
                except KeyError as e:
                    raise DatasetError(
                        f"CIFAR archive {archive} has no member {name}; wrong or incomplete "
                        f"archive. {download_hint(spec)}"
                    ) from e
                if handle is None:
                    raise DatasetError(
                        f"CIFAR archive {archive}: member {name} is not a regular file. "
                        f"{download_hint(spec)}"
                    )
                with handle:
                    out.append(handle.read())
    except _ARCHIVE_ERRORS as e:
        raise DatasetError(
            f"cannot read CIFAR archive {archive} (corrupt or truncated: {e}). {download_hint(spec)}"
        ) from e
    return out


def _locate(root: Path, spec: CifarSpec, split: Literal["train", "test"]) -> tuple[Path, bool]:
    """Return ``(path, is_archive)`` of the CIFAR source under ``root``."""
    first = spec.members(split)[0]
    if root.is_file() and root.name.endswith(".tar.gz"):
        return root, True
    if (root / spec.folder).is_dir():
        return root / spec.folder, False
    if root.name == spec.folder or (root / first).is_file():
        return root, False
    if (root / spec.archive).is_file():
        return root / spec.archive, True
    raise DatasetError(
        f"CIFAR data not found in {root}: expected the folder {spec.folder}/ (with "
        f"{', '.join(spec.members(split))}), the archive {spec.archive}, or {root} to be "
        f"{spec.folder}/ itself. {download_hint(spec)}"
    )


def load_cifar(
    root: Path, spec: CifarSpec, split: Literal["train", "test"]
) -> tuple[np.ndarray, np.ndarray]:
    """Load one split of CIFAR-10 or CIFAR-100 (python version).

    Args:
        root: folder holding ``spec.folder``/ or ``spec.archive``, the extracted folder
            itself, or the archive file itself.
        spec: ``CIFAR10`` or ``CIFAR100``.
        split: ``"train"`` or ``"test"``.

    Returns:
        ``(images, labels)``: ``uint8 [N, 3, 32, 32]`` and ``int64 [N]``.

    Raises:
        DatasetError: the data is missing, a member is absent, the archive or a pickle is
            corrupt, or a batch has the wrong shape, label count or label range.
    """
    source, is_archive = _locate(root, spec, split)
    members = spec.members(split)
    read: Callable[[Path, tuple[str, ...], CifarSpec], list[bytes]]
    read = _read_archive if is_archive else _read_folder
    raws = read(source, members, spec)
    parts = [
        _parse_batch(raw, f"{source}:{m}" if is_archive else str(source / m), spec)
        for raw, m in zip(raws, members, strict=True)
    ]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    return images, labels
