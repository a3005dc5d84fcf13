"""Datasets (Fashion-MNIST, MNIST, CIFAR-10/100, digits), subsets, augmentation, loaders."""

from __future__ import annotations

from dtif.data.cifar import CIFAR10, CIFAR100, CifarSpec, load_cifar
from dtif.data.dataset import ImageDataset
from dtif.data.idx import load_idx_split, read_idx
from dtif.data.loaders import calibration_subset, make_loader, random_crop_flip, test_subset
from dtif.data.registry import (
    DATA_ENV_VAR,
    DEFAULT_DATASET,
    DatasetInfo,
    dataset_info,
    dataset_names,
    load_dataset,
)

__all__ = [
    "CIFAR10",
    "CIFAR100",
    "DATA_ENV_VAR",
    "DEFAULT_DATASET",
    "CifarSpec",
    "DatasetInfo",
    "ImageDataset",
    "calibration_subset",
    "dataset_info",
    "dataset_names",
    "load_cifar",
    "load_dataset",
    "load_idx_split",
    "make_loader",
    "random_crop_flip",
    "read_idx",
    "test_subset",
]
