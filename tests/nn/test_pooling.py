"""`AvgPool2x2`, the faster twin of AvgPool2d(2) that conversion swaps in (convert/pooling.py)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from dtif.nn.pooling import AvgPool2x2


@pytest.mark.parametrize(
    ("shape", "dtype"),
    [
        ((3, 4, 8, 8), torch.float32),
        ((5, 16, 28, 28), torch.float32),
        ((2, 3, 6, 10), torch.float64),
        ((4, 8, 7, 7), torch.float32),  # odd: torch's kernel
        ((4, 8, 6, 7), torch.float32),
        ((8, 6, 6), torch.float32),  # unbatched: torch's kernel
    ],
)
def test_values_equal_avg_pool2d(shape: tuple[int, ...], dtype: torch.dtype) -> None:
    gen = torch.Generator().manual_seed(0)
    for x in (
        torch.randn(shape, generator=gen, dtype=dtype) * 3,
        (torch.rand(shape) < 0.2).to(dtype),
    ):
        assert torch.equal(AvgPool2x2()(x), F.avg_pool2d(x, 2))


def test_channels_last_and_views_fall_back_to_torch() -> None:
    x = torch.randn(2, 8, 6, 6)
    cl = x.contiguous(memory_format=torch.channels_last)
    out = AvgPool2x2()(cl)
    assert torch.equal(out, F.avg_pool2d(cl, 2))
    assert out.is_contiguous(memory_format=torch.channels_last)  # as torch's kernel gives
    view = torch.randn(2, 8, 6, 12)[..., ::2]
    assert torch.equal(AvgPool2x2()(view), F.avg_pool2d(view, 2))
