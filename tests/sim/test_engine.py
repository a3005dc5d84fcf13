"""The simulation engine: chunking is invisible, one run gives every T, devices, state_dict."""

from __future__ import annotations

import io

import pytest
import torch
from torch import nn

import dtif
from dtif.neurons import NeuronParams
from dtif.nn.neuron import SpikingNeuron

NEURONS: dict[str, NeuronParams] = {
    "IF": dtif.IF(),
    "IF v0 zero-reset": dtif.IF(v0=0.5, reset="zero"),
    "DTIF binary": dtif.DTIF(alpha=4.0),
    "DTIF graded burst": dtif.DTIF(alpha=4.0, payload="graded", burst=3),
    "DTIF graded pow2": dtif.DTIF(alpha=4.0, payload="graded", burst=2, theta_levels="pow2"),
    "IF signed": dtif.IF(v0=0.5, signed=True, theta_neg=0.25),
    "DTIF binary signed": dtif.DTIF(alpha=4.0, signed=True, theta_neg=0.5),
}


class Net(nn.Module):
    """conv-BN-ReLU, grouped strided conv-ReLU, residual add, avg pool, FC-ReLU, FC."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(2, 4, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(4)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1, groups=2)
        self.conv3 = nn.Conv2d(4, 6, 3, stride=2, padding=1)
        self.pool = nn.AvgPool2d(2)
        self.fc1 = nn.Linear(6 * 2 * 2, 8)
        self.fc2 = nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn1(self.conv1(x)))
        x = torch.relu(self.conv2(x) + x)
        x = self.pool(torch.relu(self.conv3(x)))
        return self.fc2(torch.relu(self.fc1(x.flatten(1))))


def make_net(dyadic: bool) -> nn.Module:
    """The net with random weights; dyadic: every weight, bias and BN value is k/8 (see below)."""
    torch.manual_seed(0)
    model = Net()
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.4)
        model.bn1.running_mean.copy_(torch.randn(4, generator=gen) * 0.3)
        model.bn1.running_var.copy_(torch.rand(4, generator=gen) + 0.5)
        if dyadic:
            # BN folds into conv1 with factor gamma / sqrt(var + eps): pick var so that factor
            # is a power of two, then round everything to multiples of 1/8.
            model.bn1.eps = 0.0
            model.bn1.running_var.fill_(1.0)
            for t in [*model.parameters(), model.bn1.running_mean]:
                t.copy_(torch.round(t * 8) / 8)
    return model.eval()


def check_same(a: dtif.SimulationResult, b: dtif.SimulationResult, what: str) -> None:
    assert torch.equal(a.outputs, b.outputs), f"{what}: outputs differ"
    assert a.spikes.keys() == b.spikes.keys()
    for name in a.spikes:
        assert torch.equal(a.spikes[name], b.spikes[name]), f"{what}: spikes of {name}"
    assert torch.equal(a.synops, b.synops), f"{what}: synops"
    assert torch.equal(a.synops_graded, b.synops_graded), f"{what}: graded synops"
    assert torch.equal(a.energy_pj, b.energy_pj), f"{what}: energy"


@pytest.mark.parametrize("name", list(NEURONS))
def test_time_and_batch_chunks_give_identical_results(name: str) -> None:
    # Chunks of at least two samples, random float weights: bit-identical results.
    model = make_net(dyadic=False)
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(12, 2, 8, 8, generator=gen)
    snn = dtif.convert(model, x, neuron=NEURONS[name])
    num_steps = 10
    ref = snn.simulate(x, num_steps, time_chunk=num_steps, batch_chunk=12)
    for tc in (1, 3, None):
        for bc in (2, 5, None):  # 12 = 5 + 5 + 2
            res = snn.simulate(x, num_steps, time_chunk=tc, batch_chunk=bc)
            check_same(res, ref, f"time_chunk={tc}, batch_chunk={bc}")


@pytest.mark.parametrize("name", [n for n in NEURONS if n != "DTIF graded burst"])
def test_single_sample_chunks_give_identical_results(name: str) -> None:
    # batch_chunk = 1 (and time_chunk = 1) send single rows through conv and linear layers.
    # MKL/oneDNN take a different kernel for one row (gemv) and round differently from the
    # batched kernel in the last bit, which is the BLAS and not the engine. With weights and
    # inputs on a grid of k/8 and k/4, and power-of-two scales, every value in the network is
    # a short binary fraction and every sum is exact in float32 whatever the order, so this
    # checks the engine's bookkeeping (state carried across chunks, step alignment,
    # accumulation, records) bit for bit. The graded mode uses pow2 thresholds for the same
    # reason (0.5, 0.25, ... are exact).
    neuron = NEURONS[name]
    model = make_net(dyadic=True)
    gen = torch.Generator().manual_seed(3)
    x = torch.round(torch.randn(7, 2, 8, 8, generator=gen) * 4) / 4
    snn = dtif.convert(model, x, neuron=neuron, norm=dtif.MaxNorm())
    with torch.no_grad():  # lambda rounded up to a power of two: still >= every activation
        for m in snn.modules():
            if isinstance(m, SpikingNeuron):
                m.scale.copy_(torch.exp2(torch.ceil(torch.log2(m.scale))))
    num_steps = 9
    ref = snn.simulate(x, num_steps, time_chunk=num_steps, batch_chunk=7)
    assert ref.outputs.abs().sum() > 0 and sum(float(s.sum()) for s in ref.spikes.values()) > 0
    for tc in (1, 3, None):
        for bc in (1, 5, None):  # 7 = 5 + 2
            res = snn.simulate(x, num_steps, time_chunk=tc, batch_chunk=bc)
            check_same(res, ref, f"time_chunk={tc}, batch_chunk={bc}")


def test_one_run_gives_every_t() -> None:
    # outputs[t-1] of a run to T_max equals the last output of a run to t.
    model = make_net(dyadic=False)
    x = torch.randn(6, 2, 8, 8, generator=torch.Generator().manual_seed(4))
    snn = dtif.convert(model, x, neuron=dtif.DTIF(alpha=2.0))
    full = snn.simulate(x, 12, time_chunk=5)
    assert full.outputs.shape == (12, 6, 5)
    assert full.synops.shape == (12,) and full.energy_pj.shape == (12,)
    for t in (1, 4, 12):
        short = snn.simulate(x, t, time_chunk=5)
        assert torch.equal(short.outputs[-1], full.outputs[t - 1])
        assert torch.equal(short.synops[-1], full.synops[t - 1])
    # cumulative counts never decrease
    assert (full.synops[1:] >= full.synops[:-1]).all()
    assert (full.energy_pj[1:] >= full.energy_pj[:-1]).all()
    preds = full.predictions()
    assert preds.shape == (12, 6)
    assert full.correct(preds[-1]).shape == (12,)


def test_recording_does_not_change_outputs() -> None:
    model = make_net(dyadic=False)
    x = torch.randn(6, 2, 8, 8, generator=torch.Generator().manual_seed(5))
    snn = dtif.convert(model, x)
    a = snn.simulate(x, 8, record=True)
    b = snn.simulate(x, 8, record=False)
    assert torch.equal(a.outputs, b.outputs)
    assert a.spikes and not b.spikes


def test_forward_is_the_rate_decoded_output() -> None:
    model = make_net(dyadic=False)
    x = torch.randn(4, 2, 8, 8, generator=torch.Generator().manual_seed(6))
    snn = dtif.convert(model, x)
    res = snn.simulate(x, 16)
    torch.testing.assert_close(snn(x, num_steps=16), res.outputs[-1] / 16)


def test_snn_moves_between_devices() -> None:
    model = make_net(dyadic=False)
    x = torch.randn(5, 2, 8, 8, generator=torch.Generator().manual_seed(7))
    snn = dtif.convert(model, x, neuron=dtif.DTIF(alpha=4.0))
    before = snn.simulate(x, 8)
    moved = snn.to("cpu")
    assert moved is snn
    assert snn.device == torch.device("cpu")
    after = snn.simulate(x, 8)
    check_same(after, before, "after .to('cpu')")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_snn_runs_on_cuda() -> None:
    model = make_net(dyadic=False)
    x = torch.randn(5, 2, 8, 8, generator=torch.Generator().manual_seed(8))
    snn = dtif.convert(model, x)
    cpu = snn.simulate(x, 32)
    snn.to("cuda")
    gpu = snn.simulate(x, 32)  # a CPU input is moved to the network's device
    assert gpu.outputs.device.type == "cuda"
    torch.testing.assert_close(gpu.outputs.cpu(), cpu.outputs, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", ["IF", "DTIF graded burst"])
def test_state_dict_round_trips(name: str) -> None:
    model = make_net(dyadic=False)
    x = torch.randn(6, 2, 8, 8, generator=torch.Generator().manual_seed(9))
    snn = dtif.convert(model, x, neuron=NEURONS[name], norm=dtif.PercentileNorm(99.0))
    expected = snn.simulate(x, 10)
    buffer = io.BytesIO()
    torch.save(snn.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    # rebuild from the same model with other calibration data: other scales, until loaded
    other = dtif.convert(model, x[:2] * 3, neuron=NEURONS[name], norm=dtif.PercentileNorm(99.0))
    assert not torch.equal(other.simulate(x, 10).outputs, expected.outputs)
    other.load_state_dict(state)
    check_same(other.simulate(x, 10), expected, "after load_state_dict")
    scales = [k for k in state if k.endswith(".scale")]
    assert len(scales) == len(snn.spiking_layer_names())


def test_bad_chunk_sizes_raise() -> None:
    model = make_net(dyadic=False)
    x = torch.randn(3, 2, 8, 8)
    snn = dtif.convert(model, x)
    for kwargs in ({"time_chunk": 0}, {"batch_chunk": 0}):
        with pytest.raises(dtif.InputError, match="chunk"):
            snn.simulate(x, 4, **kwargs)  # type: ignore[arg-type]  # chunk sizes only


def test_convert_and_simulate_inside_inference_mode() -> None:
    """Fan-out is measured with autograd; it must work when the caller is in inference mode."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 2, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(2 * 4 * 4, 3)
    ).eval()
    x = torch.rand(4, 1, 6, 6)
    expected = dtif.convert(model, x).simulate(x, 4)
    with torch.inference_mode():
        got = dtif.convert(model, x).simulate(x, 4)
    assert torch.equal(got.outputs, expected.outputs)
    assert torch.equal(got.synops, expected.synops)
