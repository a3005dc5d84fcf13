"""Calibration and test subsets, crop/flip augmentation, batch loaders."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.data import Subset, TensorDataset

from dtif.data import (
    ImageDataset,
    calibration_subset,
    dataset_info,
    make_loader,
    random_crop_flip,
    test_subset,
)
from dtif.errors import InputError


def _dataset(n: int = 20, split: str = "train") -> ImageDataset:
    images = torch.arange(n * 1 * 4 * 4, dtype=torch.float32).view(n, 1, 4, 4)
    labels = torch.arange(n) % 10
    return ImageDataset(images, labels, dataset_info("mnist"), split)  # type: ignore[arg-type]  # split from tests


def test_calibration_subset_deterministic_and_from_dataset() -> None:
    dataset = _dataset()
    a = calibration_subset(dataset, 8, seed=3)
    b = calibration_subset(dataset, 8, seed=3)
    c = calibration_subset(dataset, 8, seed=4)
    assert a.shape == (8, 1, 4, 4)
    torch.testing.assert_close(a, b)
    assert not torch.equal(a, c)
    # Each drawn image is a distinct image of the dataset.
    index = (a[:, 0, 0, 0] / 16).long()
    assert len(set(index.tolist())) == 8
    torch.testing.assert_close(a, dataset.images[index])
    a.add_(1)  # a copy: the dataset is untouched
    torch.testing.assert_close(dataset.images[index] + 1, a)


def test_calibration_subset_generic_dataset() -> None:
    dataset = _dataset()
    subset = Subset(dataset, list(range(10)))
    drawn = calibration_subset(subset, 4, seed=0)
    assert drawn.shape == (4, 1, 4, 4)
    assert torch.all(drawn[:, 0, 0, 0] < 10 * 16)


def test_calibration_subset_rejects_test_split_and_bad_num() -> None:
    with pytest.raises(InputError, match="train split"):
        calibration_subset(_dataset(split="test"), 4, seed=0)
    for num in (0, 21):
        with pytest.raises(InputError, match=r"\[1, 20\]"):
            calibration_subset(_dataset(), num, seed=0)


def test_test_subset() -> None:
    dataset = _dataset()
    assert test_subset(dataset, None) is dataset
    assert test_subset(dataset, 50) is dataset
    sub = test_subset(dataset, 5, seed=1)
    assert isinstance(sub, Subset) and len(sub) == 5
    assert sub.indices == sorted(sub.indices)
    assert test_subset(dataset, 5, seed=1).indices == sub.indices  # type: ignore[attr-defined]  # a Subset
    assert test_subset(dataset, 5, seed=2).indices != sub.indices  # type: ignore[attr-defined]  # a Subset
    with pytest.raises(InputError, match="limit"):
        test_subset(dataset, 0)


def test_random_crop_flip_shape_and_determinism() -> None:
    x = torch.randn(6, 3, 8, 8)
    a = random_crop_flip(x, padding=2, generator=torch.Generator().manual_seed(0))
    b = random_crop_flip(x, padding=2, generator=torch.Generator().manual_seed(0))
    c = random_crop_flip(x, padding=2, generator=torch.Generator().manual_seed(1))
    assert a.shape == x.shape and a.dtype == x.dtype
    torch.testing.assert_close(a, b)
    assert not torch.equal(a, c)
    torch.testing.assert_close(
        random_crop_flip(x, padding=0, generator=None).abs().sum(), x.abs().sum()
    )


def _is_crop_flip(out: torch.Tensor, x: torch.Tensor, padding: int) -> bool:
    """Whether ``out [C, H, W]`` is some crop (optionally flipped) of padded ``x``."""
    h, w = x.shape[-2:]
    padded = torch.nn.functional.pad(x, (padding,) * 4)
    for dy in range(2 * padding + 1):
        for dx in range(2 * padding + 1):
            crop = padded[:, dy : dy + h, dx : dx + w]
            if torch.equal(out, crop) or torch.equal(out, crop.flip(-1)):
                return True
    return False


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**31), padding=st.integers(0, 3), size=st.integers(2, 6))
def test_random_crop_flip_matches_reference(seed: int, padding: int, size: int) -> None:
    x = torch.rand(4, 2, size, size + 1, generator=torch.Generator().manual_seed(seed)) + 1
    out = random_crop_flip(x, padding=padding, generator=torch.Generator().manual_seed(seed))
    assert all(_is_crop_flip(out[i], x[i], padding) for i in range(4))


def test_random_crop_flip_bad_input() -> None:
    with pytest.raises(InputError, match=r"\[B, C, H, W\]"):
        random_crop_flip(torch.zeros(3, 4, 4))
    with pytest.raises(InputError, match="padding"):
        random_crop_flip(torch.zeros(1, 3, 4, 4), padding=-1)


@pytest.mark.parametrize("generic", [False, True])
def test_make_loader_covers_dataset_once(generic: bool) -> None:
    dataset = _dataset(23)
    source = Subset(dataset, list(range(23))) if generic else dataset
    loader = make_loader(source, batch_size=5, shuffle=True, seed=0)
    batches = list(loader)
    assert len(batches) == len(loader) == 5  # type: ignore[arg-type]  # loaders have len
    assert batches[0][0].shape == (5, 1, 4, 4) and batches[-1][0].shape == (3, 1, 4, 4)
    labels = torch.cat([lab for _, lab in batches])
    firsts = torch.cat([img[:, 0, 0, 0] for img, _ in batches])
    assert sorted((firsts / 16).long().tolist()) == list(range(23))
    torch.testing.assert_close(labels, (firsts / 16).long() % 10)
    again = torch.cat([img[:, 0, 0, 0] for img, _ in make_loader(source, 5, True, seed=0)])
    torch.testing.assert_close(firsts, again)
    assert not torch.equal(firsts, torch.arange(23.0) * 16)  # shuffled


def test_make_loader_sequential_and_augmented() -> None:
    dataset = TensorDataset(torch.randn(10, 3, 8, 8), torch.arange(10))
    plain = list(make_loader(dataset, batch_size=4, shuffle=False, seed=0))
    torch.testing.assert_close(torch.cat([lab for _, lab in plain]), torch.arange(10))
    aug1 = list(make_loader(dataset, batch_size=4, shuffle=False, seed=0, augment=True))
    aug2 = list(make_loader(dataset, batch_size=4, shuffle=False, seed=0, augment=True))
    for (a, la), (b, lb), (p, _) in zip(aug1, aug2, plain, strict=True):
        assert a.shape == p.shape
        torch.testing.assert_close(a, b)
        torch.testing.assert_close(la, lb)
    with pytest.raises(InputError, match="batch_size"):
        make_loader(dataset, batch_size=0, shuffle=False, seed=0)
