"""Registry of the image datasets dtif can load, with their normalisation statistics."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from dtif.data.cifar import CIFAR10, CIFAR100, CifarSpec, download_hint, load_cifar
from dtif.data.dataset import DatasetInfo, ImageDataset
from dtif.data.digits import load_digits_split
from dtif.data.folder import class_names, load_folder_split
from dtif.data.idx import load_idx_split
from dtif.data.npz import load_npz
from dtif.data.transform import channel_stats, normalize, per_channel, resize
from dtif.errors import DatasetError, InputError

DATA_ENV_VAR = "DTIF_DATA"
FASHION_MNIST_DEFAULT_DIR = Path("/usr/share/datasets/fashion-mnist")
DEFAULT_DATASET = "fashion-mnist"
#: Datasets that are the user's own files: an image folder, or arrays in an .npz.
USER_DATASETS = ("folder", "npz")

Split = Literal["train", "test"]
_SPLITS: tuple[Split, ...] = ("train", "test")


# A raw loader maps (split, data directory or None) to images [N, C, H, W] float32 in
# [0, 1] and labels [N] int64.
_RawLoader = Callable[[Split, Path | None], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class _Entry:
    info: DatasetInfo
    load: _RawLoader
    hint: str
    env_subdir: str | None = None
    default_dir: Path | None = None
    needs_dir: bool = True


_FASHION_HINT = (
    "Install it with `apt-get install dataset-fashion-mnist` (files land in "
    f"{FASHION_MNIST_DEFAULT_DIR}/), or give --data-dir / {DATA_ENV_VAR} pointing at a folder "
    "with the four IDX files."
)
_MNIST_HINT = (
    "Download the MNIST IDX files (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
    "t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz) yourself and pass their folder "
    f"with --data-dir (or {DATA_ENV_VAR})."
)


def _to_unit(images: np.ndarray) -> np.ndarray:
    """``uint8`` pixels -> ``float32`` in ``[0, 1]``."""
    return np.multiply(images, np.float32(1.0 / 255.0), dtype=np.float32)


def _idx_loader(hint: str) -> _RawLoader:
    def load(split: Split, directory: Path | None) -> tuple[np.ndarray, np.ndarray]:
        if directory is None:
            raise DatasetError(f"no data directory given. {hint}")
        images, labels = load_idx_split(directory, split, hint)
        return _to_unit(images[:, None]), labels.astype(np.int64)

    return load


def _cifar_loader(spec: CifarSpec) -> _RawLoader:
    def load(split: Split, directory: Path | None) -> tuple[np.ndarray, np.ndarray]:
        if directory is None:
            raise DatasetError(f"no data directory given. {download_hint(spec)}")
        images, labels = load_cifar(directory, spec, split)
        return _to_unit(images), labels

    return load


def _digits_loader(split: Split, directory: Path | None) -> tuple[np.ndarray, np.ndarray]:
    del directory  # bundled with scikit-learn
    return load_digits_split(split)


_REGISTRY: dict[str, _Entry] = {
    e.info.name: e
    for e in (
        _Entry(
            DatasetInfo(
                name="fashion-mnist",
                num_classes=10,
                in_channels=1,
                image_size=28,
                mean=(0.2860,),
                std=(0.3530,),
                description="Fashion-MNIST: 28x28 grey clothing images, 60k train / 10k test (IDX).",
            ),
            load=_idx_loader(_FASHION_HINT),
            hint=_FASHION_HINT,
            env_subdir="fashion-mnist",
            default_dir=FASHION_MNIST_DEFAULT_DIR,
        ),
        _Entry(
            DatasetInfo(
                name="mnist",
                num_classes=10,
                in_channels=1,
                image_size=28,
                mean=(0.1307,),
                std=(0.3081,),
                description="MNIST: 28x28 grey handwritten digits, 60k train / 10k test (IDX).",
            ),
            load=_idx_loader(_MNIST_HINT),
            hint=_MNIST_HINT,
            env_subdir="mnist",
        ),
        _Entry(
            DatasetInfo(
                name="cifar10",
                num_classes=10,
                in_channels=3,
                image_size=32,
                mean=(0.4914, 0.4822, 0.4465),
                std=(0.2470, 0.2435, 0.2616),
                description="CIFAR-10: 32x32 colour images, 50k train / 10k test (python version).",
            ),
            load=_cifar_loader(CIFAR10),
            hint=download_hint(CIFAR10),
        ),
        _Entry(
            DatasetInfo(
                name="cifar100",
                num_classes=100,
                in_channels=3,
                image_size=32,
                mean=(0.5071, 0.4865, 0.4409),
                std=(0.2673, 0.2564, 0.2762),
                description="CIFAR-100: 32x32 colour images, 100 fine classes, 50k train / 10k test.",
            ),
            load=_cifar_loader(CIFAR100),
            hint=download_hint(CIFAR100),
        ),
        _Entry(
            DatasetInfo(
                name="digits",
                num_classes=10,
                in_channels=1,
                image_size=8,
                mean=(0.3053,),
                std=(0.3760,),
                description="scikit-learn 8x8 digits (values 0..16 scaled to [0, 1]), 1500 train / 297 test.",
            ),
            load=_digits_loader,
            hint="pip install scikit-learn (or pip install dtif[digits])",
            needs_dir=False,
        ),
    )
}


def dataset_names() -> list[str]:
    """Names of the registered datasets, sorted.

    Returns:
        e.g. ``["cifar10", "cifar100", "digits", "fashion-mnist", "mnist"]``.
    """
    return sorted(_REGISTRY)


def check_dataset_name(name: str) -> None:
    """Raise InputError unless `name` is registered or one of ``USER_DATASETS``."""
    if name not in _REGISTRY and name not in USER_DATASETS:
        raise InputError(
            f"unknown dataset {name!r}; valid names: {', '.join([*dataset_names(), *USER_DATASETS])}"
        )


def _entry(name: str) -> _Entry:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise InputError(
            f"unknown dataset {name!r}; valid names: {', '.join(dataset_names())}"
        ) from None


def dataset_info(name: str) -> DatasetInfo:
    """Metadata of a registered dataset.

    Args:
        name: a name from ``dataset_names()``.

    Returns:
        The dataset's ``DatasetInfo``.

    Raises:
        InputError: unknown name; the message lists the valid names.
    """
    return _entry(name).info


def _resolve_dir(entry: _Entry, data_dir: str | Path | None) -> Path | None:
    """Explicit ``data_dir``, else ``$DTIF_DATA`` (or its ``env_subdir``), else the default."""
    if data_dir is not None:
        return Path(data_dir).expanduser()
    env = os.environ.get(DATA_ENV_VAR)
    if env:
        root = Path(env).expanduser()
        if entry.env_subdir is not None and (root / entry.env_subdir).is_dir():
            return root / entry.env_subdir
        return root
    return entry.default_dir


def _normalize(images: np.ndarray, info: DatasetInfo) -> torch.Tensor:
    x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))
    mean = torch.tensor(info.mean, dtype=torch.float32).view(1, -1, 1, 1)
    std = torch.tensor(info.std, dtype=torch.float32).view(1, -1, 1, 1)
    return x.sub_(mean).div_(std)


def load_dataset(
    name: str,
    split: Split,
    data_dir: str | Path | None = None,
) -> ImageDataset:
    """Load one split of a registered dataset into memory.

    The data directory is ``data_dir`` if given, else ``$DTIF_DATA`` (for fashion-mnist and
    mnist: its ``fashion-mnist/`` or ``mnist/`` subfolder if that exists), else, for
    fashion-mnist only, ``/usr/share/datasets/fashion-mnist/`` (Debian's
    ``dataset-fashion-mnist`` package). digits needs no directory.

    Args:
        name: a name from ``dataset_names()``.
        split: ``"train"`` or ``"test"``.
        data_dir: folder with the dataset files (see above).

    Returns:
        ``ImageDataset`` with images ``[N, C, H, W]`` float32, normalised per channel as
        ``(x - mean) / std`` with ``x`` in ``[0, 1]``, and labels ``[N]`` int64.

    Raises:
        InputError: unknown name or split.
        DatasetError: the files are missing or corrupt, or hold images of the wrong shape or
            labels outside ``[0, num_classes)``; the message says how to get the data.
    """
    entry = _entry(name)
    if split not in _SPLITS:
        raise InputError(f"unknown split {split!r}; valid splits: {', '.join(_SPLITS)}")
    info = entry.info
    directory = _resolve_dir(entry, data_dir) if entry.needs_dir else None
    if entry.needs_dir and directory is None:
        raise DatasetError(
            f"no data directory for {name}: pass --data-dir or set {DATA_ENV_VAR}. {entry.hint}"
        )
    images, labels = entry.load(split, directory)
    expected = (info.in_channels, info.image_size, info.image_size)
    if images.ndim != 4 or tuple(images.shape[1:]) != expected:
        raise DatasetError(
            f"{name} {split} images in {directory} have shape {list(images.shape)}, expected "
            f"[N, {', '.join(map(str, expected))}]. {entry.hint}"
        )
    if labels.size and (labels.min() < 0 or labels.max() >= info.num_classes):
        raise DatasetError(
            f"{name} {split} labels in {directory} lie outside [0, {info.num_classes}) "
            f"(min {labels.min()}, max {labels.max()}). {entry.hint}"
        )
    return ImageDataset(
        _normalize(images, info), torch.from_numpy(labels.astype(np.int64)), info, split
    )


def _user_arrays(
    name: str, directory: Path, image_size: int | None
) -> tuple[dict[str, np.ndarray], int]:
    """x_train, y_train, x_test, y_test of a folder or .npz dataset, and the class count."""
    if name == "folder":
        if not directory.is_dir():
            raise DatasetError(
                f"--data-dir {directory} is not a folder; --dataset folder takes "
                "DIR/train/CLASS/* and DIR/test/CLASS/*"
            )
        classes = class_names(directory)
        arrays = {}
        for split in _SPLITS:
            x, y = load_folder_split(directory, split, classes, image_size)
            arrays[f"x_{split}"], arrays[f"y_{split}"] = x, y
        return arrays, len(classes)
    arrays = load_npz(directory)
    if image_size is not None:
        for split in _SPLITS:
            arrays[f"x_{split}"] = resize(arrays[f"x_{split}"], image_size)
    for split in _SPLITS:
        y = arrays[f"y_{split}"]
        if y.size and y.min() < 0:
            raise DatasetError(
                f"{directory}: y_{split} has label {int(y.min())}; labels are class indices "
                "0, 1, ..., num_classes - 1"
            )
    num_classes = int(arrays["y_train"].max()) + 1
    top = int(arrays["y_test"].max())
    if top >= num_classes:
        raise DatasetError(
            f"{directory}: y_test has label {top}, but y_train's labels run 0..{num_classes - 1}; "
            "every test class must appear in training"
        )
    return arrays, num_classes


def load_splits(
    name: str,
    data_dir: str | Path | None = None,
    image_size: int | None = None,
    mean: tuple[float, ...] | None = None,
    std: tuple[float, ...] | None = None,
) -> tuple[ImageDataset, ImageDataset]:
    """The train and test splits of a registered dataset, an image folder or an .npz file.

    Args:
        name: a name from ``dataset_names()``, ``"folder"`` (``data_dir/train/CLASS/*.png``
            and ``data_dir/test/CLASS/*``, read with Pillow) or ``"npz"`` (``data_dir`` is an
            .npz with ``x_train, y_train, x_test, y_test``).
        data_dir: the data folder or file.
        image_size: resize the images of a folder or .npz to this square size.
        mean: per-channel normalisation mean (one value or C); folder/npz default: the
            training split's.
        std: per-channel normalisation std, likewise.

    Returns:
        (train, test), normalised with the same mean and std; ``train.info`` describes both.

    Raises:
        InputError: an unknown name; image_size, mean or std given for a registered dataset;
            a mean or std of the wrong length.
        DatasetError: missing, unreadable or inconsistent data (see the loaders).
    """
    check_dataset_name(name)
    if name not in USER_DATASETS:
        if image_size is not None or mean is not None or std is not None:
            raise InputError(
                f"--image-size, --mean and --std apply to --dataset folder or npz; {name} has "
                "fixed ones"
            )
        return load_dataset(name, "train", data_dir), load_dataset(name, "test", data_dir)
    if data_dir is None:
        raise InputError(f"--dataset {name} needs --data-dir (the image folder or .npz file)")
    if image_size is not None and image_size < 1:
        raise InputError(f"--image-size must be >= 1, got {image_size}")
    directory = Path(data_dir).expanduser()
    arrays, num_classes = _user_arrays(name, directory, image_size)
    train_x, test_x = arrays["x_train"], arrays["x_test"]
    if train_x.shape[1:] != test_x.shape[1:]:
        raise DatasetError(
            f"{directory}: train images are {list(train_x.shape[1:])} (C, H, W), test images "
            f"{list(test_x.shape[1:])}; give --image-size N, or make them match"
        )
    channels = train_x.shape[1]
    stats = channel_stats(train_x)
    mean = per_channel(mean, channels, "mean") if mean is not None else stats[0]
    std = per_channel(std, channels, "std") if std is not None else stats[1]
    info = DatasetInfo(
        name=name,
        num_classes=num_classes,
        in_channels=channels,
        image_size=int(train_x.shape[2]),
        mean=mean,
        std=std,
        description=f"{name} dataset from {directory}",
    )
    return tuple(  # type: ignore[return-value]  # two splits
        ImageDataset(
            normalize(arrays[f"x_{split}"], mean, std),
            torch.from_numpy(arrays[f"y_{split}"]),
            info,
            split,
        )
        for split in _SPLITS
    )
