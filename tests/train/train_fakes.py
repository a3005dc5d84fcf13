"""Tiny learnable fake Fashion-MNIST (IDX files) for the training and checkpoint tests.

A plain module, not ``conftest.py``, so that tests import it under a unique name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np

from dtif.data.idx import IMAGES_MAGIC, LABELS_MAGIC, idx_file_names

NUM_TRAIN = 256
NUM_TEST = 64


def _idx_bytes(array: np.ndarray, magic: int) -> bytes:
    header = np.array([magic, *array.shape], dtype=">i4").tobytes()
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def _images(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Noise plus a bright horizontal band whose row depends on the class: easy to learn."""
    images = rng.integers(0, 96, size=(labels.size, 28, 28), dtype=np.uint8)
    for i, label in enumerate(labels):
        row = 2 + 2 * int(label)
        images[i, row : row + 3, 4:24] = 255
    return images


def write_fake_fashion(
    directory: Path, num_train: int = NUM_TRAIN, num_test: int = NUM_TEST
) -> Path:
    """Write the four (raw) IDX files of a tiny Fashion-MNIST into ``directory``.

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
        (directory / images_name).write_bytes(_idx_bytes(_images(labels, rng), IMAGES_MAGIC))
        (directory / labels_name).write_bytes(_idx_bytes(labels, LABELS_MAGIC))
    return directory
