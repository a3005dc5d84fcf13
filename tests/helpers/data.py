"""Writers of tiny fake dataset files: IDX and CIFAR (python version) files for the data tests,
and a learnable fake Fashion-MNIST for the tests that train, convert and compare."""

from __future__ import annotations

import gzip
import io
import pickle
import tarfile
from pathlib import Path
from typing import Literal

import numpy as np

from dtif.data import CifarSpec
from dtif.data.idx import IMAGES_MAGIC, LABELS_MAGIC, idx_file_names

#: Images per split of the fake Fashion-MNIST.
NUM_TRAIN = 256
NUM_TEST = 64


def idx_bytes(array: np.ndarray, magic: int) -> bytes:
    """Encode an array as an IDX file of ``uint8`` data."""
    header = np.array([magic, *array.shape], dtype=">i4").tobytes()
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def write_file(path: Path, data: bytes, gz: bool) -> Path:
    """Write ``data`` to ``path`` (to ``path.gz``, gzipped, if ``gz``); return the path."""
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    return path


def write_idx(
    directory: Path,
    split: Literal["train", "test"] = "test",
    n: int = 6,
    size: int = 28,
    gz: bool = True,
    seed: int = 0,
    num_labels: int | None = None,
    max_label: int = 10,
) -> tuple[np.ndarray, np.ndarray]:
    """Write one IDX split of random images; return ``(uint8 [N, H, W], uint8 [N])``."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, size, size), dtype=np.uint8)
    labels = rng.integers(0, max_label, size=n if num_labels is None else num_labels)
    labels = labels.astype(np.uint8)
    directory.mkdir(parents=True, exist_ok=True)
    images_name, labels_name = idx_file_names(split)
    write_file(directory / images_name, idx_bytes(images, IMAGES_MAGIC), gz)
    write_file(directory / labels_name, idx_bytes(labels, LABELS_MAGIC), gz)
    return images, labels


def cifar_batch(
    spec: CifarSpec, n: int, seed: int, data: np.ndarray | None = None
) -> tuple[bytes, np.ndarray, np.ndarray]:
    """A pickled CIFAR batch (protocol 2, as the official files) of ``n`` random images."""
    rng = np.random.default_rng(seed)
    if data is None:
        data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
    labels = rng.integers(0, spec.num_classes, size=n).tolist()
    batch = {b"batch_label": b"fake", b"data": data, spec.label_key: labels}
    return pickle.dumps(batch, protocol=2), data, np.asarray(labels, dtype=np.int64)


def write_tar(archive: Path, members: dict[str, bytes]) -> None:
    """Write a ``.tar.gz`` with the given member names and contents."""
    with tarfile.open(archive, "w:gz") as tar:
        for name, raw in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))


def write_cifar(
    root: Path,
    spec: CifarSpec,
    layout: Literal["folder", "self", "tar"],
    split: Literal["train", "test"] = "test",
    n: int = 4,
) -> tuple[np.ndarray, np.ndarray]:
    """Write a fake CIFAR split under ``root``.

    Args:
        root: target folder.
        spec: ``CIFAR10`` or ``CIFAR100``.
        layout: ``"folder"`` (``root/<spec.folder>/``), ``"self"`` (batch files directly in
            ``root``) or ``"tar"`` (``root/<spec.archive>``).
        split: split to write.
        n: images per batch file.

    Returns:
        The expected ``(uint8 [N, 3072], int64 [N])`` over all batch files of the split.
    """
    members, datas, labels = {}, [], []
    for i, member in enumerate(spec.members(split)):
        raw, data, lab = cifar_batch(spec, n, seed=i)
        members[member] = raw
        datas.append(data)
        labels.append(lab)
    root.mkdir(parents=True, exist_ok=True)
    if layout == "tar":
        write_tar(root / spec.archive, {f"{spec.folder}/{m}": r for m, r in members.items()})
    else:
        folder = root / spec.folder if layout == "folder" else root
        folder.mkdir(exist_ok=True)
        for member, raw in members.items():
            (folder / member).write_bytes(raw)
    return np.concatenate(datas), np.concatenate(labels)


def _learnable_images(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Noise plus a bright horizontal band whose row depends on the class: easy to learn."""
    images = rng.integers(0, 96, size=(labels.size, 28, 28), dtype=np.uint8)
    for i, label in enumerate(labels):
        row = 2 + 2 * int(label)
        images[i, row : row + 3, 4:24] = 255
    return images


def write_fake_fashion(
    directory: Path, num_train: int = NUM_TRAIN, num_test: int = NUM_TEST
) -> Path:
    """Write the four (raw) IDX files of a tiny learnable Fashion-MNIST into ``directory``.

    Returns:
        ``directory``, to pass as ``data_dir``.
    """
    rng = np.random.default_rng(0)
    directory.mkdir(parents=True, exist_ok=True)
    splits: tuple[tuple[Literal["train", "test"], int], ...] = (
        ("train", num_train),
        ("test", num_test),
    )
    for split, n in splits:
        labels = (np.arange(n) % 10).astype(np.uint8)
        rng.shuffle(labels)
        images_name, labels_name = idx_file_names(split)
        (directory / images_name).write_bytes(
            idx_bytes(_learnable_images(labels, rng), IMAGES_MAGIC)
        )
        (directory / labels_name).write_bytes(idx_bytes(labels, LABELS_MAGIC))
    return directory
