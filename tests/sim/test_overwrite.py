"""Spiking layers that write their spikes over their input: which ones, and same results."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import dtif
from dtif.models import create_model
from dtif.nn.neuron import SpikingNeuron
from dtif.sim import engine
from dtif.sim.rewrite import event_driven, overwritable_inputs


class Branchy(nn.Module):
    """relu0 gets the static part's output, relu1 a tensor read twice, relu2 a fresh sum."""

    def __init__(self) -> None:
        super().__init__()
        self.conv0 = nn.Conv2d(1, 4, 3, padding=1)
        self.conv1 = nn.Conv2d(4, 4, 3, padding=1)
        self.relu0, self.relu1, self.relu2 = nn.ReLU(), nn.ReLU(), nn.ReLU()
        self.fc = nn.Linear(4 * 8 * 8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.relu0(self.conv0(x))
        y = self.conv1(a)
        b = self.relu1(y)
        c = self.relu2(b + y)
        return self.fc(c.flatten(1))


def branchy_snn(neuron: object = None) -> dtif.SpikingNetwork:
    torch.manual_seed(0)
    model = Branchy().eval()
    return dtif.convert(model, torch.rand(16, 1, 8, 8), neuron=neuron or dtif.IF())


def test_only_fresh_single_reader_inputs_are_overwritable() -> None:
    snn = branchy_snn()
    names = [m.layer_name for m in snn.layers() if isinstance(m, SpikingNeuron)]
    assert len(names) == 3
    # relu0: a graph input (reused by every chunk); relu1: y is also read by the sum.
    assert overwritable_inputs(snn.dynamic) == frozenset({names[2]})


def test_demo_cnn_overwrites_every_layer_after_the_static_one() -> None:
    torch.manual_seed(0)
    model = create_model("cnn", in_channels=1, image_size=12, width=0.25).eval()
    snn = dtif.convert(model, torch.rand(8, 1, 12, 12))
    names = [m.layer_name for m in snn.layers() if isinstance(m, SpikingNeuron)]
    assert overwritable_inputs(event_driven(snn.dynamic)) == frozenset(names[1:])


def _same(a: dtif.SimulationResult, b: dtif.SimulationResult) -> None:
    assert torch.equal(a.outputs, b.outputs)
    assert a.spikes.keys() == b.spikes.keys()
    for k in a.spikes:
        assert torch.equal(a.spikes[k], b.spikes[k]), k
    assert torch.equal(a.synops, b.synops)


@pytest.mark.parametrize("time_chunk", [1, 3])
@pytest.mark.parametrize("neuron", ["if", "dtif", "graded"])
def test_overwriting_gives_bit_identical_results(
    monkeypatch: pytest.MonkeyPatch, neuron: str, time_chunk: int
) -> None:
    params = {
        "if": dtif.IF(v0=0.5),
        "dtif": dtif.DTIF(alpha=4.0),
        "graded": dtif.DTIF(alpha=4.0, payload="graded", burst=2),
    }[neuron]
    snn = branchy_snn(params)
    x = torch.rand(5, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    # time_chunk 1: the static part's output has the shape of a one-step chunk, and must
    # still not be overwritten (it is reused by every chunk).
    got = snn.simulate(x, 12, time_chunk=time_chunk)
    monkeypatch.setattr(engine, "overwritable_inputs", lambda dynamic: frozenset())
    ref = snn.simulate(x, 12, time_chunk=time_chunk)
    _same(got, ref)


def test_a_forward_hook_still_sees_the_input() -> None:
    snn = branchy_snn()
    layer = [m for m in snn.layers() if isinstance(m, SpikingNeuron)][2]
    snn.profile((1, 8, 8))  # the fan-out pass calls the layers too: do it before the hooks
    before: list[torch.Tensor] = []
    after: list[torch.Tensor] = []
    pre = layer.register_forward_pre_hook(lambda m, args: before.append(args[0].clone()))
    post = layer.register_forward_hook(lambda m, args, out: after.append(args[0]))
    try:
        snn.simulate(torch.rand(2, 1, 8, 8), 6, time_chunk=2)
    finally:
        pre.remove()
        post.remove()
    assert len(before) == len(after) == 3
    for b, a in zip(before, after, strict=True):
        assert torch.equal(b, a)  # not overwritten while the layer has a forward hook
