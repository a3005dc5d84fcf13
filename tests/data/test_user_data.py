"""load_splits on the user's own data: image folders (grey, RGB, resized) and .npz layouts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from dtif.data import load_splits
from dtif.data.transform import channel_stats, per_channel
from dtif.errors import InputError
from tests.helpers.user_data import NUM_CLASSES, SIZE, write_folder, write_npz

pytest.importorskip("PIL")


def test_grey_folder_normalised_with_train_statistics(tmp_path: Path) -> None:
    train, test = load_splits("folder", write_folder(tmp_path / "d"))
    assert train.images.shape == (60, 1, SIZE, SIZE) and test.images.shape == (30, 1, SIZE, SIZE)
    assert train.info.num_classes == NUM_CLASSES and train.info.in_channels == 1
    assert abs(float(train.images.mean())) < 1e-4 and abs(float(train.images.std()) - 1) < 0.01
    assert set(train.labels.tolist()) == set(range(NUM_CLASSES))
    assert test.info is train.info


def test_rgb_folder_resized_with_given_stats(tmp_path: Path) -> None:
    data = write_folder(tmp_path / "d", rgb=True)
    train, test = load_splits("folder", data, image_size=8, mean=(0.5,), std=(0.25,))
    assert train.images.shape == (60, 3, 8, 8) and test.images.shape[1:] == (3, 8, 8)
    assert train.info.mean == (0.5, 0.5, 0.5) and train.info.std == (0.25, 0.25, 0.25)
    assert float(train.images.min()) >= -2.0 - 1e-6  # (0 - 0.5) / 0.25


@pytest.mark.parametrize("layout", ["NHW", "NCHW", "NHWC", "float"])
def test_npz_layouts(layout: str, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = {
        "NHW": rng.integers(0, 256, (20, 6, 6), dtype=np.uint8),
        "NCHW": rng.integers(0, 256, (20, 3, 6, 6), dtype=np.uint8),
        "NHWC": rng.integers(0, 256, (20, 6, 6, 3), dtype=np.uint8),
        "float": rng.random((20, 1, 6, 6)).astype(np.float32),
    }[layout]
    y = np.arange(20) % 4
    file = write_npz(tmp_path / "d.npz", x_train=x, y_train=y, x_test=x[:8], y_test=y[:8])
    train, test = load_splits("npz", file, image_size=4)
    channels = 3 if layout in ("NCHW", "NHWC") else 1
    assert train.images.shape == (20, channels, 4, 4) and test.images.shape == (8, channels, 4, 4)
    assert train.info.num_classes == 4
    assert torch.isfinite(train.images).all()


def test_channel_stats_and_per_channel() -> None:
    images = np.stack([np.zeros((2, 3, 3)), np.ones((2, 3, 3))]).astype(np.float32)
    images[:, 1] = 0.5  # a constant channel gets std 1
    mean, std = channel_stats(images)
    assert mean == pytest.approx((0.5, 0.5)) and std == pytest.approx((0.5, 1.0))
    assert per_channel([0.1], 3, "mean") == (0.1, 0.1, 0.1)
    with pytest.raises(InputError, match="--std values must be finite and > 0"):
        per_channel([0.0], 1, "std")
    with pytest.raises(InputError, match="2 values"):
        per_channel([0.1, 0.2], 3, "mean")
