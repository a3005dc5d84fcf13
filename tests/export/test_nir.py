"""NIR export, lossless encoding: write, read, re-import and simulate gives the original outputs;
refusals list nodes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import dtif
from dtif.errors import UnsupportedOpsError
from dtif.export import export_nir, import_nir
from tests.helpers.nir_nets import PoolCNN

nir = pytest.importorskip("nir")

NUM_STEPS = 24
ZERO_RESET = dtif.IF(reset="zero")


class SmallResNet(nn.Module):
    """A residual block, a join with a branch from before the first ReLU, pools of every kind."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(2, 4, 3, padding=1)
        self.skip = nn.Conv2d(2, 4, 1)
        self.conv1 = nn.Conv2d(4, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
        self.pool = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)
        self.gap = nn.AdaptiveAvgPool2d(2)
        self.fc = nn.Linear(4 * 2 * 2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.stem(x))
        h = torch.relu(self.conv1(h) + self.skip(x))  # joins a static branch
        h = torch.relu(self.conv2(h) + h)  # a residual add of two spiking branches
        h = self.gap(self.pool(h))
        return self.fc(h.view(h.size(0), -1))


def _convert(
    model: nn.Module, shape: tuple[int, ...], **kw: object
) -> tuple[dtif.SpikingNetwork, torch.Tensor]:
    torch.manual_seed(0)
    for p in model.parameters():
        nn.init.uniform_(p, -0.4, 0.6)
    model.eval()
    calib = torch.rand(16, *shape)
    snn = dtif.convert(model, calib, **kw)  # type: ignore[arg-type]  # test kwargs
    return snn, torch.rand(5, *shape)


def _round_trip(snn: dtif.SpikingNetwork, path: Path) -> dtif.SpikingNetwork:
    graph = export_nir(snn, path, portable=False)
    assert isinstance(graph, nir.NIRGraph)
    assert path.exists()
    return import_nir(nir.read(path))


def _assert_same(a: dtif.SpikingNetwork, b: dtif.SpikingNetwork, x: torch.Tensor) -> None:
    ra, rb = a.simulate(x, NUM_STEPS), b.simulate(x, NUM_STEPS)
    assert torch.equal(ra.outputs, rb.outputs)
    assert ra.spikes.keys() == rb.spikes.keys()
    for name in ra.spikes:
        assert torch.equal(ra.spikes[name], rb.spikes[name]), name
    assert sum(float(s.sum()) for s in ra.spikes.values()) > 0


def test_cnn_round_trip(tmp_path: Path) -> None:
    snn, x = _convert(PoolCNN(), (1, 8, 8), neuron=ZERO_RESET)
    graph = export_nir(snn, portable=False)
    kinds = {type(n).__name__ for n in graph.nodes.values()}
    assert {"Input", "Conv2d", "IF", "Scale", "SumPool2d", "Flatten", "Affine", "Output"} <= kinds
    assert sum(isinstance(n, nir.IF) for n in graph.nodes.values()) == 2
    back = _round_trip(snn, tmp_path / "cnn.nir")
    assert back.input_shape == (1, 8, 8)
    _assert_same(snn, back, x)


def test_residual_round_trip_channelwise(tmp_path: Path) -> None:
    norm = dtif.MaxNorm(channelwise=True)
    snn, x = _convert(SmallResNet(), (2, 8, 8), neuron=ZERO_RESET, norm=norm)
    graph = export_nir(snn, portable=False)
    into = {dst: [s for s, d in graph.edges if d == dst] for _, dst in graph.edges}
    assert any(len(srcs) == 2 for srcs in into.values())  # the adds are two edges into a node
    back = _round_trip(snn, tmp_path / "res.nir")
    _assert_same(snn, back, x)


def test_if_threshold_encoding() -> None:
    snn, _ = _convert(PoolCNN(), (1, 8, 8), neuron=ZERO_RESET)
    graph = export_nir(snn, portable=False)
    neuron = next(n for n in graph.nodes.values() if isinstance(n, nir.IF))
    name = next(k for k, n in graph.nodes.items() if n is neuron)
    scale = graph.nodes[f"{name}_scale"].scale
    lam = np.nextafter(neuron.v_threshold, np.float32(np.inf))
    assert np.array_equal(lam, scale)  # NIR's v > v_threshold is dtif's v >= lambda
    assert np.all(neuron.v_threshold < scale)
    assert np.all(neuron.r == 1) and np.all(neuron.v_reset == 0)


def test_plain_nir_if_imports() -> None:
    """A hand-written NIR graph: IF(v_th=1) spikes when v > 1 and each spike delivers 1."""
    graph = nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type=np.array([1])),
            "fc": nir.Linear(weight=np.array([[0.5]], dtype=np.float32)),
            "lif": nir.IF(r=np.ones(1, dtype=np.float32), v_threshold=np.ones(1, dtype=np.float32)),
            "output": nir.Output(output_type=np.array([1])),
        },
        edges=[("input", "fc"), ("fc", "lif"), ("lif", "output")],
    )
    snn = import_nir(graph)
    out = snn.simulate(torch.ones(1, 1), 6).outputs[:, 0, 0]
    # v: 0.5, 1.0 (not above 1), 1.5 -> spike, reset; 0.5, 1.0, 1.5 -> spike
    assert torch.allclose(out, torch.tensor([0.0, 0.0, 1.0, 1.0, 1.0, 2.0]), atol=1e-6)


def test_default_subtract_reset_refused() -> None:
    snn, _ = _convert(PoolCNN(), (1, 8, 8))
    with pytest.raises(UnsupportedOpsError) as err:
        export_nir(snn, portable=False)
    msg = str(err.value)
    assert "2 node(s)" in msg
    assert msg.count("reset='subtract'") == 2


def test_dtif_and_maxpool_gate_refused_naming_each() -> None:
    class Gated(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 3, 3, padding=1)
            self.pool = nn.MaxPool2d(2)
            self.fc = nn.Linear(3 * 4 * 4, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(self.pool(torch.relu(self.conv(x))).flatten(1))

    snn, _ = _convert(Gated(), (1, 8, 8), neuron=dtif.DTIF(), maxpool="gate")
    with pytest.raises(UnsupportedOpsError) as err:
        export_nir(snn, portable=False)
    msg = str(err.value)
    assert "2 node(s)" in msg
    assert "DTIF neuron" in msg and "no primitive" in msg
    assert "max-pool" in msg and "pool" in msg


@pytest.mark.parametrize(
    "neuron",
    [dtif.IF(reset="subtract", signed=True), dtif.DTIF(signed=True)],
    ids=["IF", "DTIF"],
)
def test_signed_neurons_refused(neuron: object) -> None:
    snn, _ = _convert(PoolCNN(), (1, 8, 8), neuron=neuron)
    with pytest.raises(UnsupportedOpsError, match="signed neuron: its negative correction"):
        export_nir(snn)


def test_spread_initial_potentials_refused() -> None:
    snn, _ = _convert(PoolCNN(), (1, 8, 8), neuron=dtif.IF(reset="zero", v0_spread=0.5))
    with pytest.raises(UnsupportedOpsError, match="v0_spread=0.5: NIR's IF starts every neuron"):
        export_nir(snn)


def test_import_refuses_unknown_nodes() -> None:
    shape = np.array([2])
    graph = nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type=shape),
            "lif": nir.LIF(
                tau=np.ones(2), r=np.ones(2), v_leak=np.zeros(2), v_threshold=np.ones(2)
            ),
            "li": nir.LI(tau=np.ones(2), r=np.ones(2), v_leak=np.zeros(2)),
            "output": nir.Output(output_type=shape),
        },
        edges=[("input", "lif"), ("input", "li"), ("lif", "output"), ("li", "output")],
    )
    with pytest.raises(UnsupportedOpsError, match="2 NIR node") as err:
        import_nir(graph)
    assert "- li: LI:" in str(err.value) and "- lif: LIF:" in str(err.value)


def test_conv1d_and_bias_free_linear_round_trip(tmp_path: Path) -> None:
    class Conv1dNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv1d(2, 3, 3, stride=2, padding=1)
            self.fc1 = nn.Linear(12, 4, bias=False)
            self.fc2 = nn.Linear(4, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = torch.relu(self.conv(x)).flatten(1)
            return self.fc2(torch.relu(self.fc1(h)))

    snn, x = _convert(Conv1dNet(), (2, 8), neuron=ZERO_RESET)
    graph = export_nir(snn, portable=False)
    assert any(isinstance(n, nir.Linear) for n in graph.nodes.values())
    _assert_same(snn, _round_trip(snn, tmp_path / "c1.nir"), x)


@pytest.mark.parametrize("portable", [True, False])
def test_input_offsets_refused(portable: bool) -> None:
    snn, _ = _convert(PoolCNN(), (1, 8, 8), neuron=dtif.IF(reset="zero"))
    snn.neurons()[0].set_input_offset(torch.full((2,), 0.1))
    with pytest.raises(UnsupportedOpsError, match="input offset for its first steps"):
        export_nir(snn, portable=portable)
