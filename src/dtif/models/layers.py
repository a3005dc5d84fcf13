"""Shared building blocks for the model zoo (conversion-friendly: conv-BN-ReLU only)."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from dtif.errors import InputError

__all__ = ["check_dropout", "conv_bn_relu", "scale_channels"]


def scale_channels(channels: int, width: float) -> int:
    """Scale a channel count by ``width``, keeping at least one channel.

    Args:
        channels: Channel count at width 1.
        width: Channel multiplier (> 0).

    Returns:
        ``max(1, round(channels * width))``.
    """
    return max(1, round(channels * width))


def check_dropout(p: float) -> float:
    """Return ``p`` if it is a valid dropout probability.

    Raises:
        InputError: If ``p`` is not in ``[0, 1)``.
    """
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p < 1.0:
        raise InputError(f"dropout must be in [0, 1), got {p!r}")
    return float(p)


def conv_bn_relu(
    in_channels: int,
    out_channels: int,
    stride: int = 1,
    act: Callable[[], nn.Module] = nn.ReLU,
) -> nn.Sequential:
    """3x3 convolution (padding 1, no bias), BatchNorm2d, ReLU (or ``act()``).

    The conv has no bias because the BN that follows it is folded into it on conversion.

    Args:
        in_channels: Input channels.
        out_channels: Output channels.
        stride: Convolution stride.
        act: Builds the activation module (``nn.ReLU`` or a QCFS factory).

    Returns:
        ``Sequential(conv, bn, act)`` mapping ``[B, in, H, W]`` to
        ``[B, out, ceil(H / stride), ceil(W / stride)]``.
    """
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        act(),
    )
