"""`EventLinear`: a spike-fed Linear layer that multiplies only its nonzero inputs when they are few."""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import nn

SPARSE_MAX_DENSITY = 0.04
"""An `EventLinear` takes the sparse path when at most this fraction of its inputs is nonzero
(the break-even on CPU is measured in docs/results.md). Set it to 0 to run every layer dense."""
SPARSE_MIN_WEIGHTS = 1 << 16
"""Linear layers with fewer weights always run dense (dense wins at any density there)."""


class EventLinear(nn.Module):
    """A spike-fed Linear layer that multiplies only its nonzero inputs when they are few.

    With at most `SPARSE_MAX_DENSITY` nonzero inputs (2-D input, CPU, no autograd), y = b +
    x W^T is computed as a CSR x dense product, else as `linear(x)`. The two agree up to
    float32 rounding.

    Args:
        linear: the layer; shared, not copied.
    """

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.linear = linear

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lin = self.linear
        if x.ndim == 2 and x.device.type == "cpu" and not x.requires_grad:
            nonzero = int(torch.count_nonzero(x))
            if nonzero <= SPARSE_MAX_DENSITY * x.numel():
                return sparse_linear(x, lin.weight, lin.bias)
        return F.linear(x, lin.weight, lin.bias)


def sparse_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """b + x W^T from the nonzero entries of x only (CSR), for x: [N, in], weight [out, in]."""
    with warnings.catch_warnings():  # "Sparse CSR tensor support is in beta state"
        warnings.simplefilter("ignore", UserWarning)
        xs = x.to_sparse_csr()
        if bias is None:
            return torch.mm(xs, weight.t())
        return torch.addmm(bias, xs, weight.t())
