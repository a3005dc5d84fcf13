"""The event-driven (sparse) path of large Linear layers gives the dense path's outputs."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import dtif
from dtif.nn import linear
from dtif.nn.linear import EventLinear, sparse_linear
from dtif.sim.rewrite import event_driven


def count_sparse_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the calls of the sparse path: [n], updated as they happen."""
    calls = [0]

    def spy(*args: torch.Tensor | None) -> torch.Tensor:
        calls[0] += 1
        return sparse_linear(*args)  # type: ignore[arg-type]  # (x, weight, bias)

    monkeypatch.setattr(linear, "sparse_linear", spy)
    return calls


def make_mlp() -> nn.Module:
    """64 -> 512 -> ReLU -> 512 -> 256 (131k weights: large enough for the sparse path)."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(64, 512), nn.ReLU(), nn.Linear(512, 256)).eval()


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


def test_event_driven_wraps_only_large_linears_and_shares_modules() -> None:
    snn = dtif.convert(make_mlp(), torch.rand(32, 64))
    wrapped = event_driven(snn.dynamic)
    assert wrapped is not snn.dynamic
    assert event_driven(snn.dynamic) is wrapped  # cached
    events = [m for m in wrapped.modules() if isinstance(m, EventLinear)]
    assert len(events) == 1 and events[0].linear.weight.numel() == 512 * 256
    assert events[0].linear is dict(snn.dynamic.named_modules())["2"]  # shared, not copied
    assert not any(isinstance(m, EventLinear) for m in snn.dynamic.modules())  # untouched


def test_simulation_with_sparse_path_matches_dense_path(monkeypatch: pytest.MonkeyPatch) -> None:
    # Weak inputs: the hidden layer fires rarely, so the 512 -> 256 output layer sees a few
    # percent nonzero inputs and takes the sparse path. It is the output layer, so spikes
    # and SOPs do not depend on the path; the outputs agree up to float32 rounding.
    gen = torch.Generator().manual_seed(2)
    snn = dtif.convert(make_mlp(), torch.rand(32, 64, generator=gen))
    x = torch.rand(16, 64, generator=gen) * 0.1
    calls = count_sparse_calls(monkeypatch)
    sparse = snn.simulate(x, 24)
    taken = calls[0]
    assert taken > 0, "the test input should be sparse enough"
    monkeypatch.setattr(linear, "SPARSE_MAX_DENSITY", 0.0)
    dense = snn.simulate(x, 24)
    assert calls[0] == taken  # the second run was dense
    torch.testing.assert_close(sparse.outputs, dense.outputs, rtol=1e-5, atol=1e-5)
    for name in dense.spikes:
        assert torch.equal(sparse.spikes[name], dense.spikes[name])
    assert torch.equal(sparse.synops, dense.synops)
    assert dense.outputs.abs().sum() > 0
