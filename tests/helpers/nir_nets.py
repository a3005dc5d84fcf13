"""Small networks for the NIR tests, and the loops that run an exported graph in other readers.

The readers (SpikingJelly 2.0.0, Norse 1.1.0) are imported by the tests that use them; `make
readers` installs them (requirements-readers.txt).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

import dtif

NUM_STEPS = 32
ZERO_RESET = dtif.IF(reset="zero")
# The accumulated outputs of a reader and of dtif: the same spikes, summed in another order by
# the last layer (a few float32 ulps of outputs in the hundreds). One flipped spike would move
# an output by about a weight times lambda, far above this.
RTOL, ATOL = 1e-5, 1e-5


class MLP(nn.Module):
    """fc-relu-fc-relu-fc on 12 features."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(12, 16)
        self.fc2 = nn.Linear(16, 10)
        self.fc3 = nn.Linear(10, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc3(torch.relu(self.fc2(torch.relu(self.fc1(x)))))


class PoolCNN(nn.Module):
    """conv-relu-avgpool-conv-relu-flatten-linear on 1x8x8."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
        self.pool = nn.AvgPool2d(2)
        self.conv2 = nn.Conv2d(4, 6, 3, padding=1, bias=False)
        self.fc = nn.Linear(6 * 4 * 4, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(torch.relu(self.conv1(x)))
        x = torch.relu(self.conv2(x))
        return self.fc(x.flatten(1))


class ResNet(nn.Module):
    """A block with a projection shortcut (1x1 conv), one with an identity shortcut, a pool."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(2, 4, 3, padding=1)
        self.conv1 = nn.Conv2d(4, 6, 3, padding=1)
        self.conv2 = nn.Conv2d(6, 6, 3, padding=1)
        self.proj = nn.Conv2d(4, 6, 1)
        self.conv3 = nn.Conv2d(6, 6, 3, padding=1)
        self.pool = nn.AvgPool2d(2)
        self.fc = nn.Linear(6 * 4 * 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.stem(x))
        h = torch.relu(self.conv2(torch.relu(self.conv1(h))) + self.proj(h))
        h = torch.relu(self.conv3(h) + h)
        return self.fc(self.pool(h).flatten(1))


NETS: dict[str, tuple[type[nn.Module], tuple[int, ...]]] = {
    "mlp": (MLP, (12,)),
    "cnn": (PoolCNN, (1, 8, 8)),
    "resnet": (ResNet, (2, 8, 8)),
}


def convert_for_nir(
    name: str, neuron: Any = ZERO_RESET, **kw: Any
) -> tuple[dtif.SpikingNetwork, torch.Tensor]:
    """One of `NETS`, seeded, converted on random calibration images; and 4 test inputs."""
    model_type, shape = NETS[name]
    torch.manual_seed(0)
    model = model_type()
    for p in model.parameters():
        nn.init.uniform_(p, -0.4, 0.6)
    model.eval()
    snn = dtif.convert(model, torch.rand(16, *shape), neuron=neuron, **kw)
    return snn, torch.rand(4, *shape)


def run_stateful(module: Any, x: torch.Tensor, num_steps: int) -> torch.Tensor:
    """Step a reader's module `num_steps` times on the constant input x (direct coding).

    Both readers' modules map (x, state) to (output, state). Returns the running sum of the
    outputs, [num_steps, B, ...], as dtif's `SimulationResult.outputs`.
    """
    state = None
    total = None
    sums = []
    with torch.no_grad():
        for _ in range(num_steps):
            out, state = module(x, state)
            total = out.clone() if total is None else total + out
            sums.append(total)
    return torch.stack(sums)
