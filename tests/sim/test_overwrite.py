"""Spiking layers that write their spikes over their input: which ones, and same results."""

from __future__ import annotations

import pytest
import torch

import dtif
from dtif.models import create_model
from dtif.nn.neuron import SpikingNeuron
from dtif.sim import engine
from dtif.sim.rewrite import event_driven, overwritable_inputs
from tests.helpers.nets import branchy_snn


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
