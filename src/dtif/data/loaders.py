"""Subsets, augmentation and batch loaders over in-memory datasets."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sized

import torch
import torch.nn.functional as F
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    Dataset,
    RandomSampler,
    SequentialSampler,
    Subset,
    TensorDataset,
)

from dtif.data.dataset import ImageDataset
from dtif.errors import InputError

Batch = tuple[torch.Tensor, torch.Tensor]
# Offset between the shuffling seed and the augmentation seed of ``make_loader``.
_AUGMENT_SEED_OFFSET = 1


def _length(dataset: Dataset[Batch]) -> int:
    if not isinstance(dataset, Sized):
        raise InputError(f"dataset {type(dataset).__name__} has no length (no __len__)")
    return len(dataset)


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def calibration_subset(dataset: Dataset[Batch], num: int, seed: int) -> torch.Tensor:
    """Draw ``num`` images for threshold calibration from a TRAIN split.

    Calibration must only see training data: calibrating on the test split leaks it into
    the evaluation. An ``ImageDataset`` of the test split is rejected; for other datasets
    the caller must pass the train split.

    Args:
        dataset: train split; ``dataset[i]`` is ``(image [C, H, W], label)``.
        num: number of images, ``1 <= num <= len(dataset)``.
        seed: seed of the ``torch.Generator`` permutation that picks the images.

    Returns:
        ``[num, C, H, W]`` images (a copy), the same for the same ``dataset`` and ``seed``.

    Raises:
        InputError: ``num`` is out of range, or ``dataset`` is a test-split ``ImageDataset``.
    """
    if isinstance(dataset, ImageDataset) and dataset.split != "train":
        raise InputError(
            f"calibration_subset needs the train split, got the {dataset.split} split of "
            f"{dataset.info.name}: calibrating on test data leaks it into the evaluation"
        )
    n = _length(dataset)
    if not 1 <= num <= n:
        raise InputError(f"num must lie in [1, {n}] (the dataset size), got {num}")
    chosen = torch.randperm(n, generator=_generator(seed))[:num]
    if isinstance(dataset, TensorDataset):
        return dataset.tensors[0][chosen].clone()
    return torch.stack([dataset[int(i)][0] for i in chosen])


def test_subset(dataset: Dataset[Batch], limit: int | None, seed: int = 0) -> Dataset[Batch]:
    """A fixed, seeded subset of an evaluation dataset.

    Args:
        dataset: the dataset to subsample.
        limit: number of samples to keep; ``None`` or ``limit >= len(dataset)`` keeps all.
        seed: seed of the ``torch.Generator`` permutation that picks the samples.

    Returns:
        ``dataset`` itself, or a ``Subset`` of ``limit`` samples in their original order.

    Raises:
        InputError: ``limit < 1``.
    """
    if limit is None:
        return dataset
    if limit < 1:
        raise InputError(f"limit must be >= 1 or None (whole dataset), got {limit}")
    n = _length(dataset)
    if limit >= n:
        return dataset
    chosen = torch.randperm(n, generator=_generator(seed))[:limit]
    return Subset(dataset, torch.sort(chosen).values.tolist())


# Not a pytest test despite its name.
test_subset.__test__ = False  # type: ignore[attr-defined]  # pytest collection flag on a function


def random_crop_flip(
    x: torch.Tensor, padding: int = 4, generator: torch.Generator | None = None
) -> torch.Tensor:
    """CIFAR training augmentation: random crop of the zero-padded image, random h-flip.

    Each image is padded by ``padding`` zeros on every side, cropped back to ``[H, W]`` at
    an offset drawn uniformly from ``[0, 2 * padding]`` in each axis, then flipped left-right
    with probability 1/2. On normalised images the zero padding is the dataset mean.
    Vectorised over the batch with one gather.

    Args:
        x: ``[B, C, H, W]`` images.
        padding: zero padding in pixels, ``>= 0``.
        generator: random source (a CPU generator); ``None`` uses torch's global one.

    Returns:
        ``[B, C, H, W]`` augmented images, same dtype and device as ``x``.

    Raises:
        InputError: ``x`` is not 4-D or ``padding < 0``.
    """
    if x.dim() != 4:
        raise InputError(f"x must be [B, C, H, W], got shape {list(x.shape)}")
    if padding < 0:
        raise InputError(f"padding must be >= 0, got {padding}")
    b, c, h, w = x.shape
    padded = F.pad(x, (padding, padding, padding, padding))
    offsets = torch.randint(0, 2 * padding + 1, (2, b), generator=generator)
    flip = torch.rand(b, generator=generator) < 0.5
    rows = offsets[0, :, None] + torch.arange(h)  # [B, H]
    cols = offsets[1, :, None] + torch.arange(w)  # [B, W]
    cols = torch.where(flip[:, None], cols.flip(1), cols)
    rows, cols = rows.to(x.device), cols.to(x.device)
    batch = torch.arange(b, device=x.device)[:, None, None, None]
    channel = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[batch, channel, rows[:, None, :, None], cols[:, None, None, :]]


class _AugmentedLoader:
    """Applies ``random_crop_flip`` to the images of each batch of a loader."""

    def __init__(self, loader: DataLoader[Batch], seed: int) -> None:
        self.loader = loader
        self.generator = _generator(seed)

    def __iter__(self) -> Iterator[Batch]:
        for images, labels in self.loader:
            yield random_crop_flip(images, generator=self.generator), labels

    def __len__(self) -> int:
        return len(self.loader)


def make_loader(
    dataset: Dataset[Batch],
    batch_size: int,
    shuffle: bool,
    seed: int,
    augment: bool = False,
) -> Iterable[Batch]:
    """Batches ``(images [B, C, H, W], labels [B])`` over ``dataset`` in one process.

    Shuffling uses a ``torch.Generator`` seeded with ``seed``; augmentation
    (``random_crop_flip``) one seeded with ``seed + 1``. The order and augmentations differ
    between epochs but are the same from run to run. A ``TensorDataset`` is indexed one
    batch at a time (fast); other datasets go through the default per-sample collation.

    Args:
        dataset: ``dataset[i]`` is ``(image [C, H, W], label)``.
        batch_size: samples per batch, ``>= 1``; the last batch may be smaller.
        shuffle: reshuffle every epoch.
        seed: seed of the shuffling (and augmentation) generators.
        augment: apply ``random_crop_flip`` to each batch of images.

    Returns:
        A re-iterable loader with ``len()`` = number of batches.

    Raises:
        InputError: ``batch_size < 1``.
    """
    if batch_size < 1:
        raise InputError(f"batch_size must be >= 1, got {batch_size}")
    generator = _generator(seed)
    loader: DataLoader[Batch]
    if isinstance(dataset, TensorDataset):
        sampler = (
            RandomSampler(dataset, generator=generator) if shuffle else SequentialSampler(dataset)
        )
        loader = DataLoader(
            dataset, sampler=BatchSampler(sampler, batch_size, drop_last=False), batch_size=None
        )
    else:
        loader = DataLoader(
            dataset, batch_size=batch_size, shuffle=shuffle, generator=generator, num_workers=0
        )
    if augment:
        return _AugmentedLoader(loader, seed + _AUGMENT_SEED_OFFSET)
    return loader
