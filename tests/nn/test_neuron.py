"""`SpikingNeuron`, the module of a spiking layer: it runs only inside a simulation, records the
same counts in any memory layout, and writes its spikes over its input only when no forward
hook (the layer's own or a global one) can see that input."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.modules.module import register_module_forward_hook

import dtif
from dtif.nn.context import LayerRecord, RunContext, bind
from dtif.nn.neuron import SpikingNeuron
from tests.helpers.nets import branchy_snn

CL = torch.channels_last


def test_neuron_outside_simulation_refuses() -> None:
    snn = branchy_snn()
    neuron = next(m for m in snn.modules() if isinstance(m, SpikingNeuron))
    with pytest.raises(dtif.DtifError, match="simulate"):
        neuron(torch.zeros(4, 4, 8, 8))


def test_recorded_counts_and_synops_do_not_depend_on_the_layout() -> None:
    gen = torch.Generator().manual_seed(3)
    steps, batch, shape = 4, 3, (5, 6, 7)
    x = (torch.rand(steps * batch, *shape, generator=gen) * 3).contiguous(memory_format=CL)
    fanout = torch.randint(1, 20, (1, *shape), generator=gen).float()
    records = []
    for xin in (x, x.contiguous()):
        neuron = SpikingNeuron(dtif.IF(), torch.tensor(1.0), "layer")
        ctx = RunContext(batch_size=batch, fanout={"layer": fanout})
        with torch.inference_mode(), bind([neuron], ctx):
            ctx.num_steps = steps
            neuron(xin)
        rec: LayerRecord = ctx.records["layer"]
        records.append((torch.cat(rec.spikes), torch.cat(rec.synops)))
    (spikes_cl, synops_cl), (spikes, synops) = records
    assert torch.equal(spikes_cl, spikes)
    assert torch.allclose(synops_cl, synops, rtol=1e-12)
    assert synops.sum() > 0


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


def test_a_global_forward_hook_still_sees_the_input() -> None:
    snn = branchy_snn()
    layer = [m for m in snn.layers() if isinstance(m, SpikingNeuron)][2]
    snn.profile((1, 8, 8))  # the fan-out pass calls the layers too: do it before the hooks
    x = torch.rand(2, 1, 8, 8)

    # Without any forward hook the layer writes its spikes over its input (so the check
    # below can fail): the tensor it was called with no longer holds the input.
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []
    pre = layer.register_forward_pre_hook(lambda m, args: seen.append((args[0], args[0].clone())))
    try:
        snn.simulate(x, 6, time_chunk=2)
    finally:
        pre.remove()
    assert len(seen) == 3
    assert not all(torch.equal(given, copy) for given, copy in seen)

    before: list[torch.Tensor] = []
    after: list[torch.Tensor] = []

    def global_hook(module: nn.Module, args: tuple[torch.Tensor, ...], out: object) -> None:
        if module is layer:
            after.append(args[0])

    pre = layer.register_forward_pre_hook(lambda m, args: before.append(args[0].clone()))
    post = register_module_forward_hook(global_hook)  # every module's, none of the layer's own
    try:
        snn.simulate(x, 6, time_chunk=2)
    finally:
        pre.remove()
        post.remove()
    assert not layer._forward_hooks
    assert len(before) == len(after) == 3
    for b, a in zip(before, after, strict=True):
        assert torch.equal(b, a)  # not overwritten while a global forward hook is registered
