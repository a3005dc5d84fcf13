"""In-memory image dataset returned by ``load_dataset``, and the metadata of a dataset."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch.utils.data import TensorDataset

from dtif.errors import InputError


@dataclass(frozen=True)
class DatasetInfo:
    """Metadata of a registered dataset.

    Attributes:
        name: registry name, e.g. ``"cifar10"``.
        num_classes: number of classes.
        in_channels: image channels ``C``.
        image_size: image height = width, in pixels.
        mean: per-channel mean of the ``[0, 1]``-scaled pixels, ``C`` values.
        std: per-channel standard deviation of the ``[0, 1]``-scaled pixels, ``C`` values.
        description: one-line description.
    """

    name: str
    num_classes: int
    in_channels: int
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    description: str


class ImageDataset(TensorDataset):
    """A ``TensorDataset`` of normalised images and labels, with its metadata.

    ``dataset[i]`` is ``(image [C, H, W] float32, label int64 scalar)``.

    Args:
        images: ``[N, C, H, W]`` float32, normalised with the dataset's mean and std.
        labels: ``[N]`` int64 class indices.
        info: the dataset's registry entry.
        split: ``"train"`` or ``"test"``.

    Raises:
        InputError: the tensors have the wrong rank, dtype or length.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        info: DatasetInfo,
        split: Literal["train", "test"],
    ) -> None:
        if images.dim() != 4 or images.dtype != torch.float32:
            raise InputError(
                f"images must be float32 [N, C, H, W], got {images.dtype} {list(images.shape)}"
            )
        if labels.dim() != 1 or labels.dtype != torch.int64 or labels.shape[0] != images.shape[0]:
            raise InputError(
                f"labels must be int64 [N] with N = {images.shape[0]}, got "
                f"{labels.dtype} {list(labels.shape)}"
            )
        super().__init__(images, labels)
        self.info = info
        self.split: Literal["train", "test"] = split

    @property
    def images(self) -> torch.Tensor:
        """Normalised images, ``[N, C, H, W]`` float32."""
        return self.tensors[0]

    @property
    def labels(self) -> torch.Tensor:
        """Class indices, ``[N]`` int64."""
        return self.tensors[1]

    def __repr__(self) -> str:
        return (
            f"ImageDataset(name={self.info.name!r}, split={self.split!r}, "
            f"images={list(self.images.shape)})"
        )
