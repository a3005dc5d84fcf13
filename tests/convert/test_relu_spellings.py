"""Every spelling of ReLU becomes a spiking layer, and none is left behind."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import fx, nn

import dtif
from dtif.convert.support import is_relu
from dtif.nn.neuron import SpikingNeuron

Act = Callable[[torch.Tensor], torch.Tensor]

SPELLINGS: dict[str, Act] = {
    "F.relu": lambda x: F.relu(x),
    "F.relu_inplace": lambda x: F.relu(x, inplace=True),
    "torch.relu": lambda x: torch.relu(x),
    "torch.relu_": lambda x: torch.relu_(x),
    "Tensor.relu": lambda x: x.relu(),
    "Tensor.relu_": lambda x: x.relu_(),
    "x.clamp(min=0)": lambda x: x.clamp(min=0),
    "x.clamp(0)": lambda x: x.clamp(0),
    "x.clamp(min=0.0)": lambda x: x.clamp(min=0.0),
    "x.clamp_(min=0)": lambda x: x.clamp_(min=0),
    "torch.clamp(x, min=0)": lambda x: torch.clamp(x, min=0),
    "torch.clamp(x, 0)": lambda x: torch.clamp(x, 0),
    "torch.clip(x, min=0)": lambda x: torch.clip(x, min=0),
    "x.clip(min=0)": lambda x: x.clip(min=0),
    "x.clamp_min(0)": lambda x: x.clamp_min(0),
    "torch.clamp_min(x, 0)": lambda x: torch.clamp_min(x, 0),
}


class FunctionalNet(nn.Module):
    """conv -> act -> conv -> act -> flatten -> linear, with `act` a functional ReLU spelling."""

    def __init__(self, act: Act) -> None:
        super().__init__()
        self.act = act
        self.conv1 = nn.Conv2d(2, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 4, 3, stride=2)
        self.fc = nn.Linear(4 * 2 * 2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.conv1(x))
        x = self.act(self.conv2(x))
        return self.fc(x.flatten(1))


class ModuleNet(nn.Module):
    """The same net with nn.ReLU modules: two modules, or one module reused at both sites."""

    def __init__(self, inplace: bool, shared: bool) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(2, 4, 3, padding=1)
        self.relu1 = nn.ReLU(inplace=inplace)
        self.conv2 = nn.Conv2d(4, 4, 3, stride=2)
        self.relu2 = self.relu1 if shared else nn.ReLU(inplace=inplace)
        self.fc = nn.Linear(4 * 2 * 2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu1(self.conv1(x))
        x = self.relu2(self.conv2(x))
        return self.fc(x.flatten(1))


def make_model(spelling: str) -> nn.Module:
    torch.manual_seed(0)
    if spelling == "nn.ReLU":
        return ModuleNet(inplace=False, shared=False).eval()
    if spelling == "nn.ReLU(inplace=True)":
        return ModuleNet(inplace=True, shared=False).eval()
    if spelling == "nn.ReLU shared":
        return ModuleNet(inplace=False, shared=True).eval()
    return FunctionalNet(SPELLINGS[spelling]).eval()


ALL = ["nn.ReLU", "nn.ReLU(inplace=True)", "nn.ReLU shared", *SPELLINGS]


def relu_nodes(gm: fx.GraphModule) -> list[str]:
    modules = dict(gm.named_modules())
    return [n.name for n in gm.graph.nodes if is_relu(n, modules)]


def test_every_spelling_is_recognized_in_the_traced_graph() -> None:
    # Guard against a spelling that traces to something the test does not exercise.
    for spelling in ALL:
        gm = fx.symbolic_trace(make_model(spelling))
        assert len(relu_nodes(gm)) == 2, spelling


@pytest.mark.parametrize("spelling", ALL)
def test_relu_spelling_converts(spelling: str) -> None:
    model = make_model(spelling)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(16, 2, 5, 5, generator=gen)
    with torch.no_grad():
        expected = model(x.clone())  # clone: in-place spellings must not touch x
    snn = dtif.convert(model, x)
    # both call sites are spiking layers with their own state, even for a shared nn.ReLU
    names = snn.spiking_layer_names()
    assert len(names) == 2 and len(set(names)) == 2
    for part in (snn.static, snn.dynamic):
        assert relu_nodes(part) == [], spelling
        assert not any(isinstance(m, nn.ReLU) for m in part.modules()), spelling
    neurons = [m for m in snn.dynamic.modules() if isinstance(m, SpikingNeuron)]
    assert len(neurons) == 2
    # the reference ANN is the model itself (no BN, no dropout here)
    with torch.no_grad():
        torch.testing.assert_close(snn.ann(x.clone()), expected, rtol=1e-5, atol=1e-5)
    # and the SNN approaches it: the rates are right, so the ReLU became a neuron, not a no-op
    res = snn.simulate(x, num_steps=256, record=False)
    rate = res.outputs[-1] / 256
    assert (rate - expected).abs().max() <= 0.05 * expected.abs().max()


def test_relu_spelling_shifted_clamp_is_not_a_relu() -> None:
    # clamp(min=0.5) and clamp(-1, 6) are shifted: neither is converted quietly. (clamp(0, 6)
    # is a clipped ReLU: tests/convert/test_new_ops.py.)
    for act in (lambda x: torch.clamp(x, min=0.5), lambda x: x.clamp(-1, 6)):
        model = FunctionalNet(act).eval()
        with pytest.raises(dtif.UnsupportedOpsError, match="clamp"):
            dtif.convert(model, torch.randn(4, 2, 5, 5))
