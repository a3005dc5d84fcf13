"""Datasets (Fashion-MNIST, MNIST, CIFAR-10/100, digits, image folders, .npz), subsets, augmentation, loaders."""

from __future__ import annotations

from dtif.data.cifar import CIFAR10, CIFAR100, CifarSpec, load_cifar
from dtif.data.dataset import ImageDataset
from dtif.data.idx import load_idx_split, read_idx
from dtif.data.loaders import calibration_subset, make_loader, random_crop_flip, test_subset
from dtif.data.registry import (
    DATA_ENV_VAR,
    DEFAULT_DATASET,
    USER_DATASETS,
    DatasetInfo,
    check_dataset_name,
    dataset_info,
    dataset_names,
    load_dataset,
    load_splits,
)

__all__ = [
    "CIFAR10",
    "CIFAR100",
    "DATA_ENV_VAR",
    "DEFAULT_DATASET",
    "CifarSpec",
    "USER_DATASETS",
    "DatasetInfo",
    "ImageDataset",
    "calibration_subset",
    "check_dataset_name",
    "dataset_info",
    "dataset_names",
    "load_cifar",
    "load_dataset",
    "load_splits",
    "load_idx_split",
    "make_loader",
    "random_crop_flip",
    "read_idx",
    "test_subset",
]
