"""IDX reader: raw and gzipped files, and every error path."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from dtif.data import load_dataset, load_idx_split, read_idx
from dtif.data.idx import IMAGES_MAGIC, LABELS_MAGIC
from dtif.errors import DatasetError
from tests.helpers.data import idx_bytes, write_file, write_idx

HINT = "HOW-TO-GET"


@pytest.mark.parametrize("gz", [True, False])
def test_load_split_raw_and_gzipped(tmp_path: Path, gz: bool) -> None:
    images, labels = write_idx(tmp_path, "train", n=7, gz=gz)
    got_images, got_labels = load_idx_split(tmp_path, "train", HINT)
    assert got_images.shape == (7, 28, 28) and got_images.dtype == np.uint8
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)


def test_missing_file_names_expected_files_and_directory(tmp_path: Path) -> None:
    with pytest.raises(DatasetError) as info:
        load_idx_split(tmp_path, "test", HINT)
    msg = str(info.value)
    assert "t10k-images-idx3-ubyte.gz" in msg and "t10k-images-idx3-ubyte " in msg
    assert str(tmp_path) in msg and HINT in msg


def test_missing_label_file(tmp_path: Path) -> None:
    write_file(tmp_path / "t10k-images-idx3-ubyte", idx_bytes(np.zeros((2, 3, 3)), 2051), False)
    with pytest.raises(DatasetError, match="t10k-labels-idx1-ubyte"):
        load_idx_split(tmp_path, "test", HINT)


def test_wrong_magic_number(tmp_path: Path) -> None:
    path = write_file(tmp_path / "x", idx_bytes(np.zeros(4, np.uint8), LABELS_MAGIC), True)
    with pytest.raises(DatasetError) as info:
        read_idx(path, IMAGES_MAGIC, 3, HINT)
    msg = str(info.value)
    assert str(path) in msg and "2049" in msg and "2051" in msg and HINT in msg


@pytest.mark.parametrize("gz", [True, False])
def test_truncated_payload(tmp_path: Path, gz: bool) -> None:
    raw = idx_bytes(np.zeros((3, 4, 4), np.uint8), IMAGES_MAGIC)
    path = write_file(tmp_path / "images", raw[:-5], gz)
    with pytest.raises(DatasetError, match="truncated") as info:
        read_idx(path, IMAGES_MAGIC, 3, HINT)
    assert str(path) in str(info.value) and HINT in str(info.value)


def test_truncated_header(tmp_path: Path) -> None:
    raw = idx_bytes(np.zeros((3, 4, 4), np.uint8), IMAGES_MAGIC)
    for cut in (2, 10):
        path = write_file(tmp_path / f"images{cut}", raw[:cut], False)
        with pytest.raises(DatasetError, match="truncated"):
            read_idx(path, IMAGES_MAGIC, 3, HINT)


def test_payload_longer_than_header(tmp_path: Path) -> None:
    raw = idx_bytes(np.zeros(4, np.uint8), LABELS_MAGIC) + b"\x00"
    path = write_file(tmp_path / "labels", raw, False)
    with pytest.raises(DatasetError, match="longer than its header"):
        read_idx(path, LABELS_MAGIC, 1, HINT)


def test_truncated_gzip_stream(tmp_path: Path) -> None:
    compressed = gzip.compress(idx_bytes(np.arange(200, dtype=np.uint8), LABELS_MAGIC))
    path = tmp_path / "labels.gz"
    path.write_bytes(compressed[: len(compressed) // 2])
    with pytest.raises(DatasetError, match="corrupt or truncated") as info:
        read_idx(path, LABELS_MAGIC, 1, HINT)
    assert str(path) in str(info.value)


def test_image_label_count_mismatch(tmp_path: Path) -> None:
    write_idx(tmp_path, "test", n=5, num_labels=4)
    with pytest.raises(DatasetError) as info:
        load_idx_split(tmp_path, "test", HINT)
    msg = str(info.value)
    assert "5 images" in msg and "4 labels" in msg and "t10k-labels" in msg


def test_fashion_mnist_error_says_how_to_get_data(tmp_path: Path) -> None:
    with pytest.raises(DatasetError) as info:
        load_dataset("fashion-mnist", "test", data_dir=tmp_path)
    msg = str(info.value)
    assert "apt-get install dataset-fashion-mnist" in msg and "DTIF_DATA" in msg
    assert str(tmp_path) in msg


def test_mnist_error_says_how_to_get_data(tmp_path: Path) -> None:
    with pytest.raises(DatasetError) as info:
        load_dataset("mnist", "train", data_dir=tmp_path)
    assert "--data-dir" in str(info.value) and "train-images-idx3-ubyte" in str(info.value)
