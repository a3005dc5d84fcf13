"""Pixel transforms of in-memory images: resizing, per-channel statistics, normalisation."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from dtif.errors import InputError


def resize(images: np.ndarray, size: int) -> np.ndarray:
    """Resize [N, C, H, W] float images to [N, C, size, size] (bilinear, antialiased)."""
    if images.shape[-2:] == (size, size):
        return images
    x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))
    out = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return out.numpy()


def channel_stats(images: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel (mean, std) of [N, C, H, W] images; a constant channel gets std 1."""
    x = images.astype(np.float64, copy=False)
    mean = x.mean(axis=(0, 2, 3))
    std = x.std(axis=(0, 2, 3))
    std = np.where(std > 0, std, 1.0)
    return tuple(float(m) for m in mean), tuple(float(s) for s in std)


def per_channel(values: Sequence[float], channels: int, name: str) -> tuple[float, ...]:
    """`values` as one value per channel: C values, or one value for every channel.

    Raises:
        InputError: another count, or a non-finite value (or a std <= 0).
    """
    vals = tuple(float(v) for v in values)
    if len(vals) == 1:
        vals = vals * channels
    if len(vals) != channels:
        raise InputError(
            f"--{name} has {len(values)} values, the images have {channels} channel(s); give "
            f"one value or {channels}"
        )
    if not all(np.isfinite(vals)) or (name == "std" and min(vals) <= 0):
        raise InputError(f"--{name} values must be finite{' and > 0' if name == 'std' else ''}")
    return vals


def normalize(images: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """(x - mean) / std per channel: [N, C, H, W] numpy -> float32 tensor."""
    x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))
    m = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    return x.sub_(m).div_(s)
