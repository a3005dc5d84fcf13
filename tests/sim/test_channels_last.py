"""A network moved to channels-last simulates like the default layout (opt-in speed-up)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import dtif

CL = torch.channels_last


def _cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1),
        nn.ReLU(),
        nn.AvgPool2d(2),
        nn.Flatten(),
        nn.Linear(8 * 4 * 4, 5),
    ).eval()


@pytest.mark.parametrize(
    "neuron",
    [dtif.IF(), dtif.DTIF(alpha=4.0), dtif.DTIF(alpha=4.0, signed=True)],
    ids=["IF", "DTIF", "DTIF signed"],
)
def test_channels_last_network_matches_the_default_layout(neuron: object) -> None:
    x = torch.rand(6, 3, 8, 8)
    snn = dtif.convert(_cnn(), x, neuron=neuron)
    ref = snn.simulate(x, 16)
    snn.to(memory_format=CL)
    got = snn.simulate(x.contiguous(memory_format=CL), 16)
    # The convolutions round differently in the two layouts: a spike may move by a step.
    assert torch.allclose(got.outputs, ref.outputs, atol=1e-3 * float(ref.outputs.abs().max()))
    assert torch.allclose(got.synops, ref.synops, rtol=1e-3)
    for name, counts in ref.spikes.items():
        assert torch.allclose(got.spikes[name], counts, rtol=1e-3, atol=1.0)


def test_default_layout_input_to_a_channels_last_network() -> None:
    x = torch.rand(4, 3, 8, 8)
    snn = dtif.convert(_cnn(), x)
    snn.to(memory_format=CL)
    a = snn.simulate(x, 8)  # converted to the network's layout inside
    b = snn.simulate(x.contiguous(memory_format=CL), 8)
    assert torch.equal(a.outputs, b.outputs)
