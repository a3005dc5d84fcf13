"""The in-place time loop of `SpikingNeuron` is bit-identical to the pure step functions."""

from __future__ import annotations

import pytest
import torch

import dtif
from dtif.neurons import (
    NeuronParams,
    dtif_initial_state,
    dtif_payload,
    dtif_step,
    if_initial_state,
    if_step,
)
from dtif.nn.context import LayerRecord, RunContext, bind
from dtif.nn.neuron import SpikingNeuron

NEURONS: dict[str, NeuronParams] = {
    "IF": dtif.IF(),
    "IF v0 zero-reset": dtif.IF(v0=0.5, reset="zero"),
    "IF burst": dtif.IF(burst=3),
    "DTIF binary": dtif.DTIF(alpha=4.0),
    "DTIF binary burst exp": dtif.DTIF(alpha=2.0, g="exp", burst=2),
    "DTIF graded": dtif.DTIF(alpha=8.0, payload="graded", theta_min=0.1),
    "DTIF graded burst pow2": dtif.DTIF(alpha=4.0, payload="graded", burst=3, theta_levels="pow2"),
    "DTIF binary-biased": dtif.DTIF(alpha=3.0, payload="binary-biased", v0=0.25),
    "IF signed": dtif.IF(v0=0.5, signed=True, theta_neg=0.25),
    "DTIF binary signed": dtif.DTIF(alpha=4.0, signed=True, theta_neg=0.0),
    "DTIF graded burst signed": dtif.DTIF(alpha=4.0, payload="graded", burst=2, signed=True),
    # the threshold turns 1 inside a chunk (K = 3), at a chunk's end (K = 5), inside (K = 6)
    "DTIF binary signed K3": dtif.DTIF(alpha=4.0, signed=True, theta_neg=0.25, dynamic_steps=3),
    "DTIF graded K5": dtif.DTIF(alpha=4.0, payload="graded", v0=0.5, dynamic_steps=5),
    "DTIF graded burst K6": dtif.DTIF(alpha=8.0, payload="graded", burst=2, dynamic_steps=6),
    # binary: one spike a step while dynamic, bursts of up to 3 from the switch on
    "DTIF binary burst signed K3": dtif.DTIF(alpha=4.0, burst=3, signed=True, dynamic_steps=3),
    # initial potentials spread across the layer's neurons
    "IF signed spread": dtif.IF(v0=0.5, signed=True, theta_neg=0.25, v0_spread=0.5),
    "DTIF binary signed K3 spread": dtif.DTIF(
        alpha=4.0, v0=0.25, signed=True, theta_neg=0.25, dynamic_steps=3, v0_spread=1.0
    ),
    # the threshold set by the running mean of the input: always dynamic, and switching at
    # K = 6 (inside the third chunk), graded
    "DTIF binary signed mean": dtif.DTIF(
        alpha=4.0, signed=True, theta_neg=0.25, theta_input="mean"
    ),
    "DTIF binary burst K6 mean": dtif.DTIF(alpha=8.0, burst=2, dynamic_steps=6, theta_input="mean"),
    "DTIF graded mean": dtif.DTIF(alpha=4.0, payload="graded", theta_input="mean"),
}


def reference(
    params: NeuronParams, z: torch.Tensor, scale: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Spike counts and outputs [T, B, ...] from the pure step function, one step at a time."""
    if isinstance(params, dtif.IF):
        state = if_initial_state(z[0], params)
    else:
        state = dtif_initial_state(z[0], params)
    counts, outs = [], []
    for t in range(z.shape[0]):
        if isinstance(params, dtif.IF):
            n, state = if_step(z[t], state, params)
            payload = n
        else:
            n, state = dtif_step(z[t], state, params)
            payload = dtif_payload(n, state, params)
        counts.append(n)
        outs.append(payload * scale)
    return torch.stack(counts), torch.stack(outs)


@pytest.mark.parametrize("name", list(NEURONS))
@pytest.mark.parametrize("channelwise", [False, True])
def test_chunks_of_the_module_match_the_step_function(name: str, channelwise: bool) -> None:
    params = NEURONS[name]
    gen = torch.Generator().manual_seed(0)
    steps, batch, shape = 9, 3, (4, 5, 5)
    scale = torch.rand(4, generator=gen) + 0.5 if channelwise else torch.tensor(1.7)
    x = torch.randn(steps, batch, *shape, generator=gen) * 1.5 + 0.4  # ANN units
    view = scale.view(1, -1, 1, 1) if channelwise else scale
    counts_ref, out_ref = reference(params, x / view, view)
    fanout = torch.ones(1, *shape)
    fanout[0, 0, 0, 0] = 3.0
    neuron = SpikingNeuron(params, scale, "layer")
    ctx = RunContext(batch_size=batch, fanout={"layer": fanout})
    outs = []
    with torch.inference_mode(), bind([neuron], ctx):
        for t0, t1 in ((0, 4), (4, 5), (5, 9)):  # chunks of 4, 1 and 4 steps
            ctx.num_steps = t1 - t0
            y = neuron(x[t0:t1].reshape(-1, *shape))
            outs.append(y.view(t1 - t0, batch, *shape).clone())
    assert torch.equal(torch.cat(outs), out_ref)
    rec: LayerRecord = ctx.records["layer"]
    # a negative spike is one event: the record counts |n|, and so do the SOPs (fan-out 1
    # here, 3 on one neuron)
    assert torch.equal(torch.cat(rec.spikes), counts_ref.abs().sum(dim=(1, 2, 3, 4)))
    events = counts_ref.abs().double()
    expected_sops = events.sum(dim=(1, 2, 3, 4)) + 2 * events[:, :, 0, 0, 0].sum(dim=1)
    assert torch.equal(torch.cat(rec.synops), expected_sops)
    if getattr(params, "signed", False):
        assert (counts_ref < 0).any()


@pytest.mark.parametrize(
    "name",
    [
        "IF",
        "DTIF graded",
        "IF signed",
        "DTIF binary signed",
        "DTIF graded K5",
        "DTIF binary signed K3",
        "DTIF binary signed mean",
        "DTIF binary burst K6 mean",
    ],
)
def test_input_constant_in_time(name: str) -> None:
    # The first spiking layer gets [B, ...] (the static prefix runs once); z is computed once.
    params = NEURONS[name]
    gen = torch.Generator().manual_seed(1)
    scale = torch.tensor(0.8)
    x = torch.randn(2, 6, generator=gen) + 0.3
    counts_ref, out_ref = reference(params, (x / scale).expand(7, 2, 6), scale)
    neuron = SpikingNeuron(params, scale, "layer")
    ctx = RunContext(batch_size=2)
    outs = []
    with torch.inference_mode(), bind([neuron], ctx):
        for steps in (3, 4):
            ctx.num_steps = steps
            outs.append(neuron(x).view(steps, 2, 6).clone())
    assert torch.equal(torch.cat(outs), out_ref)


@pytest.mark.parametrize("alpha", [0.0, 1.0, 7.3, 64.0])
@pytest.mark.parametrize("payload", ["binary", "graded"])
def test_dtif_chunk_thresholds_match_step_by_step(alpha: float, payload: str) -> None:
    # theta(t) for a whole chunk at once (vectorized over an odd-sized tensor, so that both
    # the vector and the scalar tail code run) equals `dtif_threshold` step by step.
    params = dtif.DTIF(alpha=alpha, payload=payload, theta_min=0.03)  # type: ignore[arg-type]
    gen = torch.Generator().manual_seed(2)
    steps, batch, size = 5, 3, 1037
    x = torch.randn(steps, batch, size, generator=gen) * 2.0
    scale = torch.tensor(0.9)
    counts_ref, out_ref = reference(params, x / scale, scale)
    neuron = SpikingNeuron(params, scale, "layer")
    ctx = RunContext(batch_size=batch)
    with torch.inference_mode(), bind([neuron], ctx):
        ctx.num_steps = steps
        out = neuron(x.reshape(-1, size)).view(steps, batch, size).clone()
    assert torch.equal(out, out_ref)
    assert counts_ref.sum() > 0
