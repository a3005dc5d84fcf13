"""CIFAR-10/100 python-version reader: folder, archive, and every error path."""

from __future__ import annotations

import collections
import pickle
from pathlib import Path
from typing import Literal

import numpy as np
import pytest
import torch

from dtif.data import CIFAR10, CIFAR100, CifarSpec, dataset_info, load_cifar, load_dataset
from dtif.errors import DatasetError
from tests.helpers.data import cifar_batch, write_cifar, write_tar

SPECS = pytest.mark.parametrize("spec", [CIFAR10, CIFAR100], ids=["cifar10", "cifar100"])
LAYOUTS = pytest.mark.parametrize("layout", ["folder", "self", "tar"])


@SPECS
@LAYOUTS
@pytest.mark.parametrize("split", ["train", "test"])
def test_load_layouts(
    tmp_path: Path,
    spec: CifarSpec,
    layout: Literal["folder", "self", "tar"],
    split: Literal["train", "test"],
) -> None:
    data, labels = write_cifar(tmp_path, spec, layout, split, n=3)
    images, got_labels = load_cifar(tmp_path, spec, split)
    assert images.shape == (data.shape[0], 3, 32, 32) and images.dtype == np.uint8
    np.testing.assert_array_equal(images.reshape(-1, 3072), data)
    np.testing.assert_array_equal(got_labels, labels)
    # Red plane first, row-major: pixel (row 1, col 2) of channel 2 is column 2048 + 32 + 2.
    assert images[0, 2, 1, 2] == data[0, 2048 + 32 + 2]


def test_cifar10_train_concatenates_five_batches(tmp_path: Path) -> None:
    data, _ = write_cifar(tmp_path, CIFAR10, "folder", "train", n=2)
    images, labels = load_cifar(tmp_path, CIFAR10, "train")
    assert images.shape[0] == labels.shape[0] == 10 == data.shape[0]


def test_extracted_folder_given_directly(tmp_path: Path) -> None:
    data, _ = write_cifar(tmp_path, CIFAR10, "folder")
    images, _ = load_cifar(tmp_path / CIFAR10.folder, CIFAR10, "test")
    np.testing.assert_array_equal(images.reshape(-1, 3072), data)


def test_archive_given_directly(tmp_path: Path) -> None:
    data, _ = write_cifar(tmp_path, CIFAR100, "tar")
    images, _ = load_cifar(tmp_path / CIFAR100.archive, CIFAR100, "test")
    np.testing.assert_array_equal(images.reshape(-1, 3072), data)


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_load_dataset_normalizes(tmp_path: Path, name: str) -> None:
    spec = CIFAR10 if name == "cifar10" else CIFAR100
    data, labels = write_cifar(tmp_path, spec, "tar")
    dataset = load_dataset(name, "test", data_dir=tmp_path)
    info = dataset_info(name)
    assert dataset.images.shape == (4, 3, 32, 32) and dataset.images.dtype == torch.float32
    assert dataset.labels.dtype == torch.int64
    mean = torch.tensor(info.mean).view(1, 3, 1, 1)
    std = torch.tensor(info.std).view(1, 3, 1, 1)
    raw = torch.from_numpy(data.reshape(-1, 3, 32, 32)).float() / 255
    torch.testing.assert_close(dataset.images, (raw - mean) / std)
    torch.testing.assert_close(dataset.labels, torch.from_numpy(labels))


def test_nothing_found_lists_the_options(tmp_path: Path) -> None:
    with pytest.raises(DatasetError) as info:
        load_cifar(tmp_path, CIFAR10, "test")
    msg = str(info.value)
    assert str(tmp_path) in msg and CIFAR10.folder in msg and CIFAR10.archive in msg
    assert "--data-dir" in msg


def test_missing_member_in_folder(tmp_path: Path) -> None:
    write_cifar(tmp_path, CIFAR10, "folder", "train")
    (tmp_path / CIFAR10.folder / "data_batch_3").unlink()
    with pytest.raises(DatasetError, match="data_batch_3") as info:
        load_cifar(tmp_path, CIFAR10, "train")
    assert "not found" in str(info.value)


def test_missing_member_in_archive(tmp_path: Path) -> None:
    raw, _, _ = cifar_batch(CIFAR10, 2, seed=0)
    write_tar(tmp_path / CIFAR10.archive, {f"{CIFAR10.folder}/data_batch_1": raw})
    with pytest.raises(DatasetError, match="no member cifar-10-batches-py/test_batch") as info:
        load_cifar(tmp_path, CIFAR10, "test")
    assert CIFAR10.archive in str(info.value)


def test_truncated_archive(tmp_path: Path) -> None:
    write_cifar(tmp_path, CIFAR10, "tar", "train", n=50)
    archive = tmp_path / CIFAR10.archive
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(DatasetError, match="corrupt or truncated") as info:
        load_cifar(tmp_path, CIFAR10, "train")
    assert str(archive) in str(info.value)


def test_archive_not_gzip(tmp_path: Path) -> None:
    (tmp_path / CIFAR100.archive).write_bytes(b"not a tar file at all" * 10)
    with pytest.raises(DatasetError, match="corrupt or truncated"):
        load_cifar(tmp_path, CIFAR100, "test")


@pytest.mark.parametrize("payload", [b"garbage bytes", b"\x80\x02}q\x00(U\x04data"])
def test_corrupt_pickle(tmp_path: Path, payload: bytes) -> None:
    folder = tmp_path / CIFAR10.folder
    folder.mkdir()
    (folder / "test_batch").write_bytes(payload)
    with pytest.raises(DatasetError, match="cannot unpickle") as info:
        load_cifar(tmp_path, CIFAR10, "test")
    assert str(folder / "test_batch") in str(info.value)


def test_pickle_with_foreign_global_is_refused(tmp_path: Path) -> None:
    batch = collections.OrderedDict(data=np.zeros((1, 3072), np.uint8))
    (tmp_path / "test").write_bytes(pickle.dumps(batch))
    with pytest.raises(DatasetError, match="refusing global collections.OrderedDict"):
        load_cifar(tmp_path, CIFAR100, "test")


def test_pickle_protocol_5_loads(tmp_path: Path) -> None:
    data = np.arange(2 * 3072, dtype=np.int64).astype(np.uint8).reshape(2, 3072)
    (tmp_path / "test_batch").write_bytes(
        pickle.dumps({b"data": data, b"labels": [1, 2]}, protocol=5)
    )
    images, labels = load_cifar(tmp_path, CIFAR10, "test")
    np.testing.assert_array_equal(images.reshape(2, -1), data)
    np.testing.assert_array_equal(labels, [1, 2])


def _write_batch(tmp_path: Path, batch: object) -> Path:
    path = tmp_path / "test_batch"
    path.write_bytes(pickle.dumps(batch, protocol=2))
    return path


@pytest.mark.parametrize(
    ("batch", "match"),
    [
        ({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, r"uint8 \[N, 3072\]"),
        ({b"data": np.zeros((2, 3072), np.float32), b"labels": [0, 1]}, r"uint8 \[N, 3072\]"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1, 2]}, "2 images"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]}, r"outside \[0, 10\)"),
        ({b"data": np.zeros((2, 3072), np.uint8)}, "b'labels'"),
        ([1, 2, 3], "not a dict"),
    ],
    ids=["width", "dtype", "label-count", "label-range", "no-labels", "not-dict"],
)
def test_bad_batch_contents(tmp_path: Path, batch: object, match: str) -> None:
    path = _write_batch(tmp_path, batch)
    with pytest.raises(DatasetError, match=match) as info:
        load_cifar(tmp_path, CIFAR10, "test")
    assert str(path) in str(info.value) and "cifar.html" in str(info.value)


def test_cifar100_uses_fine_labels(tmp_path: Path) -> None:
    batch = {b"data": np.zeros((2, 3072), np.uint8), b"coarse_labels": [0, 1]}
    (tmp_path / "test").write_bytes(pickle.dumps(batch, protocol=2))
    with pytest.raises(DatasetError, match="fine_labels"):
        load_cifar(tmp_path, CIFAR100, "test")
