"""scikit-learn's 8x8 handwritten digits, split into fixed train and test sets."""

from __future__ import annotations

import importlib
from typing import Literal

import numpy as np

from dtif.errors import DatasetError

NUM_TRAIN = 1500
SPLIT_SEED = 0
MAX_VALUE = 16.0


def load_digits_split(split: Literal["train", "test"]) -> tuple[np.ndarray, np.ndarray]:
    """Load one split of scikit-learn's digits (1797 images of 8x8, values 0..16).

    The split is fixed: the samples are permuted with ``numpy.random.default_rng(0)``; the
    first 1500 form the train split, the remaining 297 the test split.

    Args:
        split: ``"train"`` or ``"test"``.

    Returns:
        ``(images, labels)``: ``float32 [N, 1, 8, 8]`` in ``[0, 1]`` and ``int64 [N]``.

    Raises:
        DatasetError: scikit-learn is not installed.
    """
    try:
        sk_datasets = importlib.import_module("sklearn.datasets")
    except ImportError as e:
        raise DatasetError(
            "the digits dataset needs scikit-learn: pip install scikit-learn "
            "(or pip install dtif[digits])"
        ) from e
    bunch = sk_datasets.load_digits()
    images = np.asarray(bunch.images, dtype=np.float32).reshape(-1, 1, 8, 8) / MAX_VALUE
    labels = np.asarray(bunch.target, dtype=np.int64)
    order = np.random.default_rng(SPLIT_SEED).permutation(labels.shape[0])
    chosen = order[:NUM_TRAIN] if split == "train" else order[NUM_TRAIN:]
    return images[chosen], labels[chosen]
