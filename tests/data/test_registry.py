"""Dataset registry: names, metadata, directory resolution, normalisation, digits."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from dtif.data import (
    CIFAR10,
    DATA_ENV_VAR,
    DatasetInfo,
    ImageDataset,
    dataset_info,
    dataset_names,
    load_dataset,
)
from dtif.errors import DatasetError, InputError
from tests.helpers.data import write_cifar, write_idx

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")


def test_names_and_info() -> None:
    assert dataset_names() == ["cifar10", "cifar100", "digits", "fashion-mnist", "mnist"]
    for name in dataset_names():
        info = dataset_info(name)
        assert isinstance(info, DatasetInfo) and info.name == name
        assert len(info.mean) == len(info.std) == info.in_channels
        assert all(s > 0 for s in info.std) and info.description
    assert dataset_info("fashion-mnist").image_size == 28
    assert dataset_info("cifar100").num_classes == 100


def test_info_is_frozen() -> None:
    with pytest.raises(AttributeError):
        dataset_info("mnist").num_classes = 3  # type: ignore[misc]  # checks frozen dataclass


def test_unknown_name_lists_valid_names(tmp_path: Path) -> None:
    for call in (lambda: dataset_info("imagenet"), lambda: load_dataset("imagenet", "test")):
        with pytest.raises(InputError) as info:
            call()
        assert "imagenet" in str(info.value)
        assert all(name in str(info.value) for name in dataset_names())


def test_unknown_split(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="valid splits: train, test"):
        load_dataset("mnist", "val", data_dir=tmp_path)  # type: ignore[arg-type]  # bad split


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_idx_dataset_is_normalized(tmp_path: Path, name: str) -> None:
    images, labels = write_idx(tmp_path, "train", n=5)
    dataset = load_dataset(name, "train", data_dir=str(tmp_path))
    info = dataset_info(name)
    assert isinstance(dataset, ImageDataset) and dataset.split == "train"
    assert dataset.images.shape == (5, 1, 28, 28) and dataset.images.dtype == torch.float32
    assert dataset.labels.dtype == torch.int64 and len(dataset) == 5
    expected = (torch.from_numpy(images).float()[:, None] / 255 - info.mean[0]) / info.std[0]
    torch.testing.assert_close(dataset.images, expected)
    torch.testing.assert_close(dataset.labels, torch.from_numpy(labels).long())
    image, label = dataset[2]
    assert image.shape == (1, 28, 28) and label.item() == labels[2]


def test_env_var_prefers_fashion_mnist_subfolder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_idx(tmp_path, n=3, seed=1)
    write_idx(tmp_path / "fashion-mnist", n=4, seed=2)
    monkeypatch.setenv(DATA_ENV_VAR, str(tmp_path))
    assert len(load_dataset("fashion-mnist", "test")) == 4


def test_env_var_root_when_no_subfolder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_idx(tmp_path, n=3)
    monkeypatch.setenv(DATA_ENV_VAR, str(tmp_path))
    assert len(load_dataset("fashion-mnist", "test")) == 3
    assert len(load_dataset("mnist", "test")) == 3


def test_env_var_mnist_subfolder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_idx(tmp_path / "fashion-mnist", n=4)
    write_idx(tmp_path / "mnist", n=2)
    monkeypatch.setenv(DATA_ENV_VAR, str(tmp_path))
    assert len(load_dataset("mnist", "test")) == 2


def test_env_var_cifar(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_cifar(tmp_path, CIFAR10, "folder", n=3)
    monkeypatch.setenv(DATA_ENV_VAR, str(tmp_path))
    assert load_dataset("cifar10", "test").images.shape == (3, 3, 32, 32)


def test_explicit_dir_beats_env_var(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_idx(tmp_path / "env", n=3)
    write_idx(tmp_path / "arg", n=5)
    monkeypatch.setenv(DATA_ENV_VAR, str(tmp_path / "env"))
    assert len(load_dataset("fashion-mnist", "test", data_dir=tmp_path / "arg")) == 5


@pytest.mark.parametrize("name", ["mnist", "cifar10", "cifar100"])
def test_no_directory_at_all(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DATA_ENV_VAR, raising=False)
    with pytest.raises(DatasetError, match="no data directory") as info:
        load_dataset(name, "test")
    assert "--data-dir" in str(info.value) and DATA_ENV_VAR in str(info.value)


def test_wrong_image_size(tmp_path: Path) -> None:
    write_idx(tmp_path, n=2, size=10)
    with pytest.raises(DatasetError, match=r"expected \[N, 1, 28, 28\]"):
        load_dataset("mnist", "test", data_dir=tmp_path)


def test_label_out_of_range(tmp_path: Path) -> None:
    write_idx(tmp_path, n=20, max_label=200)
    with pytest.raises(DatasetError, match=r"outside \[0, 10\)"):
        load_dataset("mnist", "test", data_dir=tmp_path)


def test_digits_without_sklearn(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(DatasetError) as info:
        load_dataset("digits", "train")
    assert "pip install scikit-learn" in str(info.value)
    assert "pip install dtif[digits]" in str(info.value)


def _fake_sklearn(monkeypatch: pytest.MonkeyPatch) -> np.ndarray:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 17, size=(1797, 8, 8)).astype(np.float64)
    target = np.arange(1797) % 10
    module = types.ModuleType("sklearn.datasets")
    module.load_digits = lambda: types.SimpleNamespace(images=images, target=target)  # type: ignore[attr-defined]  # fake module
    monkeypatch.setitem(sys.modules, "sklearn", types.ModuleType("sklearn"))
    monkeypatch.setitem(sys.modules, "sklearn.datasets", module)
    return images


def test_digits_fixed_split(monkeypatch: pytest.MonkeyPatch) -> None:
    images = _fake_sklearn(monkeypatch)
    train = load_dataset("digits", "train")
    test = load_dataset("digits", "test")
    assert train.images.shape == (1500, 1, 8, 8) and test.images.shape == (297, 1, 8, 8)
    info = dataset_info("digits")
    order = np.random.default_rng(0).permutation(1797)
    expected = (torch.from_numpy(images[order[:1500]]).float()[:, None] / 16 - info.mean[0]) / (
        info.std[0]
    )
    torch.testing.assert_close(train.images, expected)
    torch.testing.assert_close(train.labels, torch.from_numpy(order[:1500] % 10))
    torch.testing.assert_close(test.labels, torch.from_numpy(order[1500:] % 10))
    torch.testing.assert_close(load_dataset("digits", "train").images, train.images)


@pytest.mark.skipif(not FASHION_DIR.is_dir(), reason="dataset-fashion-mnist not installed")
def test_real_fashion_mnist_test_split(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DATA_ENV_VAR, raising=False)
    dataset = load_dataset("fashion-mnist", "test")
    assert dataset.images.shape == (10000, 1, 28, 28)
    assert torch.unique(dataset.labels).tolist() == list(range(10))
    assert abs(dataset.images.mean().item()) < 0.05
    assert abs(dataset.images.std().item() - 1) < 0.05
