"""The event-driven rewrite wraps large Linear layers; a simulation on the sparse path gives the
dense path's outputs."""

from __future__ import annotations

import pytest
import torch

import dtif
from dtif.nn import linear
from dtif.nn.linear import EventLinear
from dtif.sim.rewrite import event_driven
from tests.helpers.nets import count_sparse_calls, make_mlp


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
