"""`AvgPool2x2`: the common 2x2 average pool, with the same values as torch's and faster on CPU."""

from __future__ import annotations

import torch
from torch import nn


class AvgPool2x2(nn.AvgPool2d):
    """AvgPool2d(2) that sums the four inputs of each window with strided views on CPU.

    torch's NCHW avg_pool2d is slow on CPU (docs/results.md). On a contiguous NCHW float
    tensor on the CPU with even H and W, the output is (x00 + x01 + x10 + x11) / 4, added in
    the order of torch's own CPU kernel, so the values equal `avg_pool2d`'s (the sign of an
    all-zero window may differ: -0.0 for +0.0). Anything else (CUDA, channels-last, odd
    sizes, other dtypes) runs `avg_pool2d`.
    """

    def __init__(self) -> None:
        super().__init__(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (
            x.device.type != "cpu"
            or x.dim() != 4
            or x.dtype not in (torch.float32, torch.float64)
            or x.shape[2] % 2
            or x.shape[3] % 2
            or not x.is_contiguous()
        ):
            return super().forward(x)
        out = x[..., 0::2, 0::2] + x[..., 0::2, 1::2]
        out += x[..., 1::2, 0::2]
        out += x[..., 1::2, 1::2]
        return out.div_(4.0)
