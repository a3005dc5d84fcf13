"""A dozen small models written the way people write them (torchvision-, MobileNet-, DenseNet-,
Inception-, Keras-style, a Conv1d audio net, a two-headed net): each converts and matches its
ANN at long T, or is refused with an error that says why and how to fix it."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import dtif
from tests.helpers.agreement import assert_matches_ann


class BasicBlock(nn.Module):
    """torchvision's ResNet BasicBlock, shrunk."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(out)


class TinyResNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = BasicBlock(8, 8)
        self.layer2 = BasicBlock(8, 12, stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(12, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer2(self.layer1(x))
        x = torch.flatten(self.avgpool(x), 1)
        return self.fc(x)


class InvertedResidual(nn.Module):
    """MobileNetV2's block: expand (1x1, ReLU6), depthwise (3x3, ReLU6), project (1x1)."""

    def __init__(self, c: int, expand: int) -> None:
        super().__init__()
        hidden = c * expand
        self.conv = nn.Sequential(
            nn.Conv2d(c, hidden, 1, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU6(inplace=True),
            nn.Conv2d(hidden, hidden, 3, 1, 1, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU6(inplace=True),
            nn.Conv2d(hidden, c, 1, bias=False),
            nn.BatchNorm2d(c),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x)


class TinyMobileNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, 2, 1, bias=False),
            nn.BatchNorm2d(8),
            nn.ReLU6(inplace=True),
            InvertedResidual(8, 2),
        )
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(8, 5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = x.mean([2, 3])  # MobileNetV2's global pool
        return self.classifier(x)


class DenseLayer(nn.Module):
    def __init__(self, cin: int, growth: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, growth, 3, padding=1, bias=False)
        self.norm = nn.BatchNorm2d(growth)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, F.relu(self.norm(self.conv(x)))], 1)


class TinyDenseNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU())
        self.block = nn.Sequential(DenseLayer(6, 4), DenseLayer(10, 4))
        self.head = nn.Linear(14, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.block(self.stem(x))
        x = F.adaptive_avg_pool2d(x, (1, 1))
        return self.head(torch.flatten(x, 1))


class Inception(nn.Module):
    """Parallel 1x1 / 3x3 / pool branches joined with torch.cat."""

    def __init__(self) -> None:
        super().__init__()
        self.b1 = nn.Conv2d(3, 4, 1)
        self.b3 = nn.Conv2d(3, 4, 3, padding=1)
        self.bp = nn.Conv2d(3, 4, 1)
        self.fc = nn.Linear(12 * 4 * 4, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = [
            F.relu(self.b1(x)),
            F.relu(self.b3(x)),
            F.relu(self.bp(F.avg_pool2d(x, 3, 1, 1))),
        ]
        x = F.avg_pool2d(torch.cat(branches, dim=1), 2)
        return self.fc(x.view(x.size(0), -1))


class KerasStyle(nn.Module):
    """conv -> ReLU -> BatchNorm, as Keras tutorials order them; inputs scaled by 1/255."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 8, 3)
        self.bn2 = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8 * 4 * 4, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x / 255.0
        x = self.bn1(torch.relu(self.conv1(x)))
        x = self.bn2(torch.relu(self.conv2(x)))
        return self.fc(x.flatten(1))


class AudioNet(nn.Module):
    """Conv1d over time, BN, ReLU, then a mean over time."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv1d(3, 8, 5, stride=2, padding=2),
            nn.BatchNorm1d(8),
            nn.ReLU(),
            nn.Conv1d(8, 8, 3, padding=1),
            nn.BatchNorm1d(8),
            nn.ReLU(),
        )
        self.fc = nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.net(x).mean(dim=-1))


class Mlp(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Flatten(),
            nn.Linear(3 * 8 * 8, 32),
            nn.ReLU(),
            nn.Dropout(0.5),
            nn.Linear(32, 16),
            nn.Hardtanh(0.0, 2.0),
            nn.Linear(16, 5),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class LeNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 3)
        self.conv2 = nn.Conv2d(6, 8, 3)
        self.fc1 = nn.Linear(8 * 2 * 2, 16)
        self.fc2 = nn.Linear(16, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(x, 1)
        return self.fc2(F.relu6(self.fc1(x)))


class WithFeatures(nn.Module):
    """Returns (logits, features), as many training scripts do for a feature loss."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.fc = nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats = torch.mean(F.relu(self.conv(x)), dim=(2, 3))
        return self.fc(feats), feats


class SqueezeExcite(nn.Module):
    """x * sigmoid(fc(mean(x))): a gate, the product of two tensors."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.se = nn.Linear(8, 8)
        self.fc = nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv(x))
        gate = torch.sigmoid(self.se(x.mean((2, 3))))
        x = x * gate[:, :, None, None]
        return self.fc(x.mean((2, 3)))


class LeakyNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.act = nn.LeakyReLU(0.2)
        self.fc = nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.act(self.conv(x)).mean((2, 3)))


def _ready(model: nn.Module) -> nn.Module:
    """Random BN statistics (as after training), eval mode."""
    gen = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            with torch.no_grad():
                m.running_mean.uniform_(-0.3, 0.3, generator=gen)
                m.running_var.uniform_(0.5, 2.0, generator=gen)
                m.weight.uniform_(0.5, 1.5, generator=gen)
                m.bias.uniform_(-0.2, 0.5, generator=gen)
    return model.eval()


# name: (model class, input sample shape, input scale, convert kwargs)
CONVERTS: dict[str, tuple[Callable[[], nn.Module], tuple[int, ...], float, dict[str, object]]] = {
    "torchvision-style ResNet": (TinyResNet, (3, 8, 8), 1.0, {}),
    "MobileNetV2-style block": (TinyMobileNet, (3, 8, 8), 4.0, {}),
    "DenseNet-style concatenation": (TinyDenseNet, (3, 8, 8), 1.0, {}),
    "Inception-style branches": (Inception, (3, 8, 8), 1.0, {}),
    "Keras-style conv-ReLU-BN, x / 255": (KerasStyle, (3, 8, 8), 255.0, {}),
    "Conv1d audio net": (AudioNet, (3, 32), 1.0, {}),
    "MLP with Hardtanh(0, 2)": (Mlp, (3, 8, 8), 1.0, {}),
    "LeNet with F.max_pool2d, ReLU6": (LeNet, (3, 14, 14), 1.0, {"maxpool": "gate"}),
    "returns (logits, features)": (WithFeatures, (3, 8, 8), 1.0, {"output": 0}),
}


@pytest.mark.parametrize("name", list(CONVERTS))
def test_user_model_converts_and_matches(name: str) -> None:
    make, shape, scale, kwargs = CONVERTS[name]
    torch.manual_seed(0)
    model = _ready(make())
    x = torch.rand(200, *shape, generator=torch.Generator().manual_seed(1)) * scale
    tolerance = 0.06 if kwargs.get("maxpool") == "gate" else 0.05
    assert_matches_ann(model, x, num_steps=1024, tolerance=tolerance, **kwargs)


REFUSED: dict[str, tuple[Callable[[], nn.Module], str]] = {
    "squeeze-and-excitation gate": (SqueezeExcite, "multiplying two tensors"),
    "LeakyReLU": (LeakyNet, "LeakyReLU has no exact spiking equivalent"),
    "returns (logits, features) without output=": (WithFeatures, "output="),
}


@pytest.mark.parametrize("name", list(REFUSED))
def test_user_model_refused_with_the_fix(name: str) -> None:
    make, reason = REFUSED[name]
    with pytest.raises(dtif.UnsupportedOpsError, match=reason):
        dtif.convert(_ready(make()), torch.rand(4, 3, 8, 8))
