"""`sparse_linear` and `EventLinear`: the event-driven (sparse) path of large Linear layers
gives the dense path's outputs, and is taken only for sparse inputs."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dtif.nn.linear import EventLinear, sparse_linear
from tests.helpers.nets import count_sparse_calls


@pytest.mark.parametrize("bias", [True, False])
def test_sparse_linear_matches_dense(bias: bool) -> None:
    gen = torch.Generator().manual_seed(1)
    lin = nn.Linear(300, 40, bias=bias)
    x = (torch.rand(24, 300, generator=gen) < 0.03).float() * 0.7
    x[3] = 0.0  # an all-zero row gives the bias alone
    with torch.inference_mode():
        dense = F.linear(x, lin.weight, lin.bias)
        sparse = sparse_linear(x, lin.weight, lin.bias)
    torch.testing.assert_close(sparse, dense, rtol=1e-5, atol=1e-6)


def test_event_linear_picks_the_path_by_density(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = count_sparse_calls(monkeypatch)
    lin = nn.Linear(200, 30)
    layer = EventLinear(lin)
    sparse_x = torch.zeros(8, 200)
    sparse_x[0, 5] = 1.0
    dense_x = torch.ones(8, 200)
    with torch.inference_mode():
        torch.testing.assert_close(layer(sparse_x), lin(sparse_x), rtol=1e-5, atol=1e-6)
        assert calls == [1]
        torch.testing.assert_close(layer(dense_x), lin(dense_x))
    assert calls == [1]
