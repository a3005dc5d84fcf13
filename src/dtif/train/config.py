"""`TrainConfig`: what `dtif train` trains and how, checked when it is made."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Literal

import torch

from dtif.data import DEFAULT_DATASET, check_dataset_name
from dtif.errors import InputError
from dtif.models import model_names
from dtif.models.qcfs import Activation, activation_factory, check_levels

Optimizer = Literal["sgd", "adam"]
_OPTIMIZERS: tuple[Optimizer, ...] = ("sgd", "adam")
#: Default learning rate of each optimizer.
DEFAULT_LR: dict[Optimizer, float] = {"sgd": 0.05, "adam": 1e-3}


@dataclass(frozen=True)
class TrainConfig:
    """What to train and how.

    Attributes:
        dataset: registered dataset name (``dtif.data.dataset_names()``), or ``"folder"`` /
            ``"npz"`` for the user's own images in ``data_dir`` (see ``dtif.data.load_splits``).
        model: registered model name (``dtif.models.model_names()``).
        width: channel multiplier of the model.
        epochs: training epochs, ``>= 1``.
        batch_size: images per step, ``>= 1``.
        optimizer: ``"sgd"`` (with momentum) or ``"adam"``. Both follow a cosine schedule
            from ``lr`` to 0 over all steps of the run, updated every step.
        lr: peak learning rate; ``None`` uses ``DEFAULT_LR`` (0.05 for sgd, 1e-3 for adam).
        momentum: SGD momentum in ``[0, 1)`` (ignored by adam).
        weight_decay: L2 penalty, ``>= 0``.
        label_smoothing: cross-entropy label smoothing in ``[0, 1)``.
        seed: seed of the initialisation, shuffling, dropout and augmentation.
        train_limit: train on a seeded subset of this many training images (quick runs);
            ``None`` uses the whole split.
        test_limit: measure test accuracy on a seeded subset of this many test images (the
            same subset as ``dtif.data.test_subset(test, test_limit)``); ``None``: all.
        data_dir: dataset folder (default: ``$DTIF_DATA`` or the dataset's default folder), or
            the image folder / .npz file of a ``"folder"`` / ``"npz"`` dataset.
        image_size: folder/npz only: resize the images to this square size.
        mean: folder/npz only: per-channel normalisation mean; ``None``: the training split's.
        std: folder/npz only: per-channel normalisation std; ``None``: the training split's.
        augment: random crop and flip of the training images; ``None``: on for the CIFAR
            datasets only.
        num_threads: torch CPU threads during training; ``None`` keeps torch's default.
        device: torch device to train on, e.g. ``"cpu"`` or ``"cuda"``. Bit-identical
            results are promised on the CPU only.
        activation: ``"relu"``, or ``"qcfs"`` (conversion-aware training, see
            ``dtif.models.qcfs``).
        levels: QCFS levels L (``activation="qcfs"`` only; 4 or 8 are usual).
        train_levels: ``activation="qcfs"`` only: each training batch quantizes to levels
            drawn from these (seeded by the epoch), so that the network is also accurate with
            fewer levels, as its SNN is at small T; the checkpoint keeps ``levels``.
            ``None``: every batch uses ``levels``.
        init_from: start from the weights of this ANN checkpoint (same dataset, model and
            width) instead of a random initialisation; a ReLU checkpoint fine-tuned with
            ``activation="qcfs"`` gets each lambda from its ReLU's outputs on training images.
        init_percentile: that percentile of each ReLU's outputs (zeros included), in
            ``(0, 100]``.

    Raises:
        InputError: a value is out of range or a name is unknown.
    """

    dataset: str = DEFAULT_DATASET
    model: str = "cnn"
    width: float = 1.0
    epochs: int = 3
    batch_size: int = 128
    optimizer: Optimizer = "sgd"
    lr: float | None = None
    momentum: float = 0.9
    weight_decay: float = 5e-4
    label_smoothing: float = 0.0
    seed: int = 0
    train_limit: int | None = None
    test_limit: int | None = None
    data_dir: str | None = None
    image_size: int | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    augment: bool | None = None
    num_threads: int | None = None
    device: str = "cpu"
    activation: Activation = "relu"
    levels: int | None = None
    train_levels: tuple[int, ...] | None = None
    init_from: str | None = None
    init_percentile: float = 99.9

    def __post_init__(self) -> None:
        check_dataset_name(self.dataset)  # raises InputError listing the valid names
        if self.model not in model_names():
            raise InputError(
                f"unknown model {self.model!r}; valid names: {', '.join(model_names())}"
            )
        if self.optimizer not in _OPTIMIZERS:
            raise InputError(f"optimizer must be one of {_OPTIMIZERS}, got {self.optimizer!r}")
        for name in ("epochs", "batch_size"):
            _check_int(name, getattr(self, name), minimum=1)
        for name in ("mean", "std"):
            value = getattr(self, name)
            if value is not None:
                if not isinstance(value, (tuple, list)) or not value:
                    raise InputError(f"{name} must be a sequence of floats, got {value!r}")
                for v in value:
                    _check_float(name, v, low=-math.inf if name == "mean" else 0.0, low_open=True)
                object.__setattr__(self, name, tuple(float(v) for v in value))
        for name in ("train_limit", "test_limit", "num_threads", "image_size"):
            if getattr(self, name) is not None:
                _check_int(name, getattr(self, name), minimum=1)
        _check_int("seed", self.seed, minimum=0)
        _check_float("width", self.width, low=0.0, low_open=True)
        if self.lr is not None:
            _check_float("lr", self.lr, low=0.0, low_open=True)
        _check_float("momentum", self.momentum, low=0.0, high=1.0)
        _check_float("weight_decay", self.weight_decay, low=0.0)
        _check_float("label_smoothing", self.label_smoothing, low=0.0, high=1.0)
        if self.augment is not None and not isinstance(self.augment, bool):
            raise InputError(f"augment must be True, False or None, got {self.augment!r}")
        activation_factory(self.activation, self.levels)  # raises InputError
        if self.train_levels is not None:
            object.__setattr__(self, "train_levels", _train_levels(self))
        if self.init_from is not None and not isinstance(self.init_from, str):
            raise InputError(f"init_from must be a checkpoint path, got {self.init_from!r}")
        _check_float("init_percentile", self.init_percentile, low=0.0, low_open=True)
        if self.init_percentile > 100.0:
            raise InputError(f"init_percentile must be <= 100, got {self.init_percentile!r}")
        try:
            torch.device(self.device)
        except (RuntimeError, TypeError) as err:
            raise InputError(f"invalid device {self.device!r}: {err}") from None

    @property
    def model_kwargs(self) -> dict[str, Any]:
        """The model-specific arguments of the spec: the activation and levels for QCFS."""
        if self.activation == "relu":
            return {}
        return {"activation": self.activation, "levels": self.levels}

    @property
    def learning_rate(self) -> float:
        """``lr``, or the optimizer's default when ``lr`` is ``None``."""
        return self.lr if self.lr is not None else DEFAULT_LR[self.optimizer]

    @property
    def use_augment(self) -> bool:
        """``augment``, or ``True`` for the CIFAR datasets when ``augment`` is ``None``."""
        return self.augment if self.augment is not None else self.dataset.startswith("cifar")

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-friendly dict of the fields."""
        return dataclasses.asdict(self)


def _train_levels(config: TrainConfig) -> tuple[int, ...]:
    value = config.train_levels
    if config.activation != "qcfs":
        raise InputError("train_levels is for activation='qcfs' (e.g. levels=8, train_levels=2..8)")
    if isinstance(value, (str, bytes)) or not isinstance(value, (tuple, list)) or not value:
        raise InputError(f"train_levels must be a non-empty list of ints >= 1, got {value!r}")
    return tuple(check_levels(v) for v in value)


def _check_int(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InputError(f"{name} must be an int >= {minimum}, got {value!r}")


def _check_float(
    name: str,
    value: object,
    low: float,
    high: float | None = None,
    low_open: bool = False,
) -> None:
    number = (
        float(value)
        if isinstance(value, (int, float)) and not isinstance(value, bool)
        else math.nan
    )
    above = number > low if low_open else number >= low
    if not (math.isfinite(number) and above and (high is None or number < high)):
        interval = f"{'(' if low_open else '['}{low}, {'inf' if high is None else high})"
        raise InputError(f"{name} must be a finite number in {interval}, got {value!r}")
