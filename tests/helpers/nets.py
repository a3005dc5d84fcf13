"""Small networks (and one spy) that test files of several packages build.

Each comes from the test file that first used it; the files that split off from it build the
same network, so that their tests keep running on exactly what they were written against.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import dtif
from dtif.nn import linear
from dtif.nn.linear import sparse_linear

# ---- conv-BN-ReLU(inplace)-dropout-conv-ReLU-avgpool-FC: bad inputs of convert and sim --------


class DropoutNet(nn.Module):
    """conv-BN-ReLU(inplace)-dropout-conv-ReLU-avgpool-FC, with a shared ReLU module."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(2, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.relu = nn.ReLU(inplace=True)
        self.drop = nn.Dropout(0.5)
        self.conv2 = nn.Conv2d(4, 4, 3, stride=2, padding=1)
        self.pool = nn.AvgPool2d(2)
        self.fc = nn.Linear(4 * 2 * 2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.drop(self.relu(self.bn(self.conv1(x))))
        x = self.pool(self.relu(self.conv2(x)))
        return self.fc(x.flatten(1))


def dropout_net() -> DropoutNet:
    """`DropoutNet` in eval mode, seeded, with random BN statistics."""
    torch.manual_seed(0)
    model = DropoutNet()
    with torch.no_grad():
        model.bn.running_mean.uniform_(-0.5, 0.5)
        model.bn.running_var.uniform_(0.5, 2.0)
    return model.eval()


def dropout_net_input(n: int = 8, seed: int = 0) -> torch.Tensor:
    """A batch [n, 2, 8, 8] for `DropoutNet`."""
    return torch.randn(n, 2, 8, 8, generator=torch.Generator().manual_seed(seed))


# ---- conv-BN-ReLU-FC: bad values (NaN, Inf, dtypes) of convert and sim ------------------------


def bn_net() -> nn.Module:
    """conv-BN-ReLU-flatten-FC on [2, 6, 6] inputs, eval mode, random BN statistics."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(4 * 6 * 6, 3),
    )
    with torch.no_grad():
        model[1].running_mean.uniform_(-0.5, 0.5)
        model[1].running_var.uniform_(0.5, 2.0)
    return model.eval()


def bn_net_input(n: int = 8) -> torch.Tensor:
    """A batch [n, 2, 6, 6] for `bn_net` (the same images for every n)."""
    return torch.randn(n, 2, 6, 6, generator=torch.Generator().manual_seed(1))


# ---- three ReLUs with different readers: spikes written over inputs (nn and sim) -------------


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
    """`Branchy` converted on [16, 1, 8, 8] random images, with IF unless told otherwise."""
    torch.manual_seed(0)
    model = Branchy().eval()
    return dtif.convert(model, torch.rand(16, 1, 8, 8), neuron=neuron or dtif.IF())


# ---- a Linear large enough for the event-driven path (nn and sim) ----------------------------


def make_mlp() -> nn.Module:
    """64 -> 512 -> ReLU -> 512 -> 256 (131k weights: large enough for the sparse path)."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(64, 512), nn.ReLU(), nn.Linear(512, 256)).eval()


def count_sparse_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the calls of the sparse path: [n], updated as they happen."""
    calls = [0]

    def spy(*args: torch.Tensor | None) -> torch.Tensor:
        calls[0] += 1
        return sparse_linear(*args)  # type: ignore[arg-type]  # (x, weight, bias)

    monkeypatch.setattr(linear, "sparse_linear", spy)
    return calls


# ---- conv-ReLU-pool-FC-ReLU-FC: DTIF's calibration search and the calibrated methods ---------


def calibration_net(seed: int = 0) -> nn.Module:
    """A conv-ReLU-pool-FC-ReLU-FC on [1, 8, 8] inputs, two spiking layers, eval mode."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.ReLU(),
        nn.AvgPool2d(2),
        nn.Flatten(),
        nn.Linear(4 * 4 * 4, 16),
        nn.ReLU(),
        nn.Linear(16, 3),
    ).eval()


def calibration_images(n: int = 24, seed: int = 1) -> torch.Tensor:
    """[n, 1, 8, 8] images in [0, 1) for `calibration_net`."""
    return torch.rand(n, 1, 8, 8, generator=torch.Generator().manual_seed(seed))
