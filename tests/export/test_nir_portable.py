"""The portable NIR encoding: what it writes, what it refuses, and that dtif reads it back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import dtif
from dtif.errors import InputError, UnsupportedOpsError
from dtif.export import export_nir, import_nir
from dtif.nn.neuron import SpikingNeuron
from tests.helpers.nir_nets import ATOL, NUM_STEPS, RTOL, ZERO_RESET, convert_for_nir

nir = pytest.importorskip("nir")
ONE_BELOW = float(np.nextafter(np.float32(1.0), np.float32(0.0)))


def _lambdas(snn: dtif.SpikingNetwork) -> list[torch.Tensor]:
    return [m.scale for m in snn.modules() if isinstance(m, SpikingNeuron)]


def _of_type(graph: object, kind: type) -> dict[str, object]:
    return {k: n for k, n in graph.nodes.items() if isinstance(n, kind)}  # type: ignore[attr-defined]  # a NIRGraph


def test_cnn_graph_has_only_nodes_readers_run() -> None:
    snn, _ = convert_for_nir("cnn")
    graph = export_nir(snn)
    kinds = {type(n).__name__ for n in graph.nodes.values()}
    assert kinds == {"Input", "Conv2d", "IF", "SumPool2d", "Flatten", "Affine", "Output"}
    for neuron in _of_type(graph, nir.IF).values():
        assert np.all(neuron.r == 1) and np.all(neuron.v_reset == 0)
        assert np.all(neuron.v_threshold == ONE_BELOW)  # strict: v > 1- is dtif's v >= 1
    (pool,) = _of_type(graph, nir.SumPool2d).values()
    assert np.all(pool.padding == 0)
    (flat,) = _of_type(graph, nir.Flatten).values()
    assert (flat.start_dim, flat.end_dim) == (-3, -1)  # the same on a sample or a batch
    assert graph.metadata["dtif.encoding"] == "portable"
    assert graph.metadata["dtif.spike_rule"] == "strict"


def test_scales_fold_into_the_next_weights() -> None:
    """conv2 sees lambda1 spikes summed by a 2x2 pool and feeds lambda2: W * lambda1/4/lambda2."""
    snn, _ = convert_for_nir("cnn")
    lam1, lam2 = (float(s) for s in _lambdas(snn))
    conv2 = snn.dynamic.get_submodule("conv2")
    graph = export_nir(snn)
    want = conv2.weight.detach().double() * lam1 / 4 / lam2
    np.testing.assert_array_equal(graph.nodes["conv2"].weight, want.float().numpy())
    np.testing.assert_array_equal(graph.nodes["conv2"].bias, np.zeros(6, np.float32))


def test_inclusive_rule_writes_the_threshold_itself() -> None:
    snn, _ = convert_for_nir("mlp")
    graph = export_nir(snn, spike_rule="inclusive")
    assert graph.metadata["dtif.spike_rule"] == "inclusive"
    for neuron in _of_type(graph, nir.IF).values():
        assert np.all(neuron.v_threshold == 1.0)


@pytest.mark.parametrize("rule", ["strict", "inclusive"])
@pytest.mark.parametrize("net", ["mlp", "cnn", "resnet"])
def test_import_nir_reads_the_portable_file_back(net: str, rule: str, tmp_path: Path) -> None:
    snn, x = convert_for_nir(net)
    path = tmp_path / "net.nir"
    export_nir(snn, path, spike_rule=rule)
    back = import_nir(path)
    written = _of_type(nir.read(path), nir.IF)
    for mod in back.modules():
        if isinstance(mod, SpikingNeuron):  # the rule is read back
            v_th = np.float32(written[mod.layer_name].v_threshold.flat[0])
            lam = v_th if rule == "inclusive" else np.nextafter(v_th, np.float32(np.inf))
            assert torch.all(mod.scale == float(lam))
    got = back.simulate(x, NUM_STEPS).outputs
    torch.testing.assert_close(got, snn.simulate(x, NUM_STEPS).outputs, rtol=RTOL, atol=ATOL)


def test_grouped_convolution_is_written_dense() -> None:
    class Depthwise(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(2, 4, 3, padding=1)
            self.dw = nn.Conv2d(4, 4, 3, padding="same", groups=4)
            self.fc = nn.Linear(4 * 6 * 6, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(torch.relu(self.dw(torch.relu(self.conv1(x)))).flatten(1))

    torch.manual_seed(0)
    model = Depthwise().eval()
    snn = dtif.convert(model, torch.rand(8, 2, 6, 6), neuron=ZERO_RESET)
    graph = export_nir(snn)
    dw = graph.nodes["dw"]
    assert dw.groups == 1 and dw.weight.shape == (4, 4, 3, 3)
    assert np.all(dw.weight[0, 1:] == 0) and tuple(dw.padding) == (1, 1)
    x = torch.rand(3, 2, 6, 6)
    got = import_nir(graph).simulate(x, NUM_STEPS).outputs
    torch.testing.assert_close(got, snn.simulate(x, NUM_STEPS).outputs, rtol=RTOL, atol=ATOL)


def _refusal(snn: dtif.SpikingNetwork) -> str:
    with pytest.raises(UnsupportedOpsError) as err:
        export_nir(snn)
    return str(err.value)


def test_subtractive_reset_refused_naming_each_layer() -> None:
    snn, _ = convert_for_nir("cnn", neuron=dtif.IF())
    msg = _refusal(snn)
    assert "2 node(s) cannot be written as a NIR graph that other simulators run" in msg
    assert msg.count("reset='subtract'") == 2 and "dtif.IF(reset='zero')" in msg


def test_dtif_burst_and_initial_potential_refused() -> None:
    msg = _refusal(convert_for_nir("mlp", neuron=dtif.DTIF())[0])
    assert msg.count("DTIF neuron") == 2
    msg = _refusal(convert_for_nir("mlp", neuron=dtif.IF(reset="zero", burst=2, v0=0.5))[0])
    assert msg.count("burst=2") == 2 and msg.count("v0=0.5") == 2


def test_channelwise_lambda_on_an_identity_shortcut_refused() -> None:
    """Per-channel lambdas fold away except where a spike train is added unscaled."""
    snn, _ = convert_for_nir("resnet", norm=dtif.MaxNorm(channelwise=True))
    msg = _refusal(snn)
    assert "1 node(s)" in msg and "one threshold per layer" in msg
    export_nir(snn, portable=False)  # the lossless encoding keeps per-channel arrays


class _Awkward(nn.Module):
    """A padded average pool and a max pool."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 3, padding=1)
        self.pool = nn.AvgPool2d(3, stride=2, padding=1)
        self.conv2 = nn.Conv2d(3, 2, 3, padding=1)
        self.gate = nn.MaxPool2d(2)
        self.fc = nn.Linear(2 * 2 * 2, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.pool(torch.relu(self.conv(x)))
        return self.fc(self.gate(torch.relu(self.conv2(h))).flatten(1))


def test_every_offender_named_at_once() -> None:
    torch.manual_seed(0)
    model = _Awkward().eval()
    snn = dtif.convert(model, torch.rand(8, 1, 8, 8), neuron=ZERO_RESET, maxpool="gate")
    msg = _refusal(snn)
    assert "- pool: AvgPool2d" in msg and "padding=(1, 1)" in msg and "portable=False" in msg
    assert "- gate: SpikeMaxPool" in msg and "maxpool='avg'" in msg
    assert msg.count("\n- ") == 2  # nothing behind a refusal is reported again


def test_a_spiking_output_refused() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU()).eval()
    snn = dtif.convert(model, torch.rand(8, 4), neuron=ZERO_RESET)
    assert "- output: the last layer's value arrives scaled" in _refusal(snn)


def test_spike_rule_checked() -> None:
    snn, _ = convert_for_nir("mlp")
    with pytest.raises(InputError, match="spike_rule must be one of"):
        export_nir(snn, spike_rule="greater")  # type: ignore[arg-type]  # a bad value on purpose
    with pytest.raises(InputError, match="portable"):
        export_nir(snn, portable=False, spike_rule="inclusive")
