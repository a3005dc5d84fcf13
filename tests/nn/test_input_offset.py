"""`SpikingNeuron.set_input_offset`: an input added for the first K steps only."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import dtif
from dtif.errors import InputError


def _net() -> nn.Module:
    torch.manual_seed(3)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(4, 4, 3, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(64, 8),
        nn.ReLU(),
        nn.Linear(8, 3),
    ).eval()


@pytest.mark.parametrize(
    "neuron", [dtif.IF(v0=0.5), dtif.DTIF(alpha=4.0, signed=True)], ids=["IF", "DTIF"]
)
def test_offsets_do_not_depend_on_the_time_chunk(neuron: object) -> None:
    x = torch.rand(5, 1, 4, 4)
    snn = dtif.convert(_net(), x, neuron=neuron)
    gen = torch.Generator().manual_seed(0)
    for i, m in enumerate(snn.neurons()):
        channels = 4 if i < 2 else 8
        # the first layer (static input) per channel, the others per channel or per layer
        shape = (5, channels) if i != 1 else (5,)
        m.set_input_offset(0.2 * torch.randn(shape, generator=gen))
    whole = snn.simulate(x, 12, time_chunk=12).outputs
    for chunk in (1, 2, 3, 7):  # matmuls of other sizes round the output differently
        assert torch.allclose(snn.simulate(x, 12, time_chunk=chunk).outputs, whole, atol=1e-5)


def test_an_offset_over_the_whole_run_equals_a_bias() -> None:
    x = torch.rand(5, 1, 4, 4)
    model = _net()
    snn = dtif.convert(model, x, neuron=dtif.IF(v0=0.5))
    delta = torch.tensor([0.05, -0.02, 0.1, 0.0])
    snn.neurons()[1].set_input_offset(delta.expand(10, 4))
    shifted = _net()
    with torch.no_grad():
        shifted[2].bias += delta
    ref = dtif.convert(shifted, x, neuron=dtif.IF(v0=0.5))
    for a, b in zip(ref.neurons(), snn.neurons()):
        b.scale.copy_(a.scale)  # the same lambdas as the shifted model's
    assert torch.allclose(snn.simulate(x, 10).outputs, ref.simulate(x, 10).outputs, atol=1e-5)
    # and it stops after its K steps: later the network runs on its own input
    snn.neurons()[1].set_input_offset(delta.expand(2, 4))
    plain = dtif.convert(model, x, neuron=dtif.IF(v0=0.5))
    out, base = snn.simulate(x, 40).outputs, plain.simulate(x, 40).outputs
    assert not torch.equal(out[1], base[1])
    assert (out[-1] - base[-1]).abs().max() < (out[1] - base[1]).abs().max() * 40 / 2


def test_offsets_survive_early_exit() -> None:
    x = torch.rand(6, 1, 4, 4)
    snn = dtif.convert(_net(), x, neuron=dtif.IF(v0=0.5))
    snn.neurons()[0].set_input_offset(torch.full((3, 4), 0.1))
    # a low threshold: some images exit within the offset's 3 steps, and the rest go on
    res = snn.simulate(x, 8, exit=dtif.EarlyExit(threshold=0.0, k=1))
    full = snn.simulate(x, 8)
    assert res.outputs.shape == full.outputs.shape
    assert torch.allclose(res.outputs[0], full.outputs[0], atol=1e-5)


def test_bad_offsets_are_refused() -> None:
    snn = dtif.convert(_net(), torch.rand(4, 1, 4, 4))
    m = snn.neurons()[0]
    for bad in (torch.zeros(()), torch.zeros(0, 4), torch.zeros(2, 4, 1)):
        with pytest.raises(InputError, match=r"\[K\] or \[K, C\]"):
            m.set_input_offset(bad)
    m.set_input_offset(torch.zeros(2, 4))
    m.set_input_offset(None)
    assert m.input_offset is None
