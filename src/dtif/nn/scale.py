"""`Scale`: elementwise scaling by a fixed array, the torch twin of `nir.Scale`."""

from __future__ import annotations

import torch
from torch import nn


class Scale(nn.Module):
    """Multiply by a fixed factor.

    Args:
        scale: the factor, shaped like one sample (it broadcasts over the leading dim).
    """

    scale: torch.Tensor

    def __init__(self, scale: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("scale", scale.detach().clone().float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale.to(x.dtype)
