"""Supported architectures convert and their SNNs approach the ANN: residual blocks, Conv1d,
adaptive pooling, three flatten spellings, dropout, grouped and strided convs."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import dtif
from dtif.convert.support import BN_MODULES, DROPOUT_MODULES

NUM_STEPS = 256
TOLERANCE = 0.03  # of max |logit|: IF rates are within ~1/T = 0.4% of lambda per layer


def randomize_bn(model: nn.Module, seed: int) -> nn.Module:
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, BN_MODULES):
            c = m.num_features
            with torch.no_grad():
                m.running_mean.copy_(torch.randn(c, generator=gen) * 0.3)
                m.running_var.copy_(torch.rand(c, generator=gen) + 0.5)
                m.weight.copy_(torch.rand(c, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(c, generator=gen) * 0.3)
    return model.eval()


def check_converts(
    model: nn.Module, x: torch.Tensor, neuron: object = None, **kwargs: object
) -> dtif.SpikingNetwork:
    """Convert, check that BN and dropout are gone, and that the SNN approaches the ANN."""
    with torch.no_grad():
        logits = model(x)
    snn = dtif.convert(model, x, neuron=neuron, **kwargs)  # type: ignore[arg-type]  # test helper
    for part in (snn.static, snn.dynamic, snn.ann):
        assert not any(isinstance(m, BN_MODULES + DROPOUT_MODULES) for m in part.modules())
        assert not any("dropout" in str(n.target) for n in part.graph.nodes)
    with torch.no_grad():
        torch.testing.assert_close(snn.ann(x), logits, rtol=1e-4, atol=1e-4)
    out = snn.simulate(x, NUM_STEPS, time_chunk=128, record=False).outputs[-1] / NUM_STEPS
    err = (out - logits).abs().max()
    assert err <= TOLERANCE * logits.abs().max(), f"max error {float(err):.4g}"
    return snn


def inputs(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(32, *shape, generator=torch.Generator().manual_seed(seed))


class Residual(nn.Module):
    """A ResNet basic block with an identity or a 1x1-conv + BN downsample shortcut."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample: nn.Module | None = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU())
        self.block1 = Residual(4, 4, 1)  # identity shortcut
        self.block2 = Residual(4, 6, 2)  # 1x1 conv + BN shortcut
        self.pool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(6, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.block2(self.block1(self.stem(x)))
        return self.fc(torch.flatten(self.pool(x), 1))


@pytest.mark.parametrize("neuron", [dtif.IF(), dtif.DTIF(alpha=4.0)], ids=["IF", "DTIF"])
def test_resnet_identity_and_downsample_shortcuts(neuron: object) -> None:
    torch.manual_seed(0)
    model = randomize_bn(ResNet(), seed=1)
    snn = check_converts(model, inputs(2, 8, 8), neuron)
    # stem + two ReLUs per block: each site is its own spiking layer
    assert len(snn.spiking_layer_names()) == 5


def test_residual_add_with_torch_add_and_shortcut_from_the_input() -> None:
    # The shortcut joins a branch from before the first neuron (analog, constant in time).
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv0 = nn.Conv2d(2, 3, 3, padding=1)
            self.conv1 = nn.Conv2d(3, 3, 3, padding=1)
            self.fc = nn.Linear(3 * 4 * 4, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.conv0(x)
            y = torch.relu(torch.add(self.conv1(torch.relu(h)), h))
            return self.fc(y.flatten(1))

    torch.manual_seed(1)
    check_converts(Net().eval(), inputs(2, 4, 4, seed=1))


def test_conv1d_net() -> None:
    torch.manual_seed(2)
    model = nn.Sequential(
        nn.Conv1d(2, 4, 3, padding=1),
        nn.BatchNorm1d(4),
        nn.ReLU(),
        nn.Conv1d(4, 4, 3, stride=2, groups=2),
        nn.ReLU(),
        nn.AvgPool1d(2),
        nn.AdaptiveAvgPool1d(2),
        nn.Flatten(),
        nn.Linear(8, 3),
    )
    check_converts(randomize_bn(model, seed=2), inputs(2, 12, seed=2))


def test_adaptive_avgpool2d_non_dividing() -> None:
    torch.manual_seed(3)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d((2, 3)),  # 7x5 -> 2x3: overlapping windows
        nn.Flatten(),
        nn.Linear(4 * 6, 3),
    )
    check_converts(model.eval(), inputs(1, 7, 5, seed=3))


FLATTENS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "torch.flatten": lambda x: torch.flatten(x, 1),
    "x.view(x.size(0), -1)": lambda x: x.view(x.size(0), -1),
    "x.flatten(1)": lambda x: x.flatten(1),
    "x.reshape(x.size(0), -1)": lambda x: x.reshape(x.size(0), -1),
}


class FlattenNet(nn.Module):
    def __init__(self, flatten: Callable[[torch.Tensor], torch.Tensor] | None) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3, stride=2)
        self.flatten_module = nn.Flatten()
        self.flatten = flatten
        self.fc1 = nn.Linear(4 * 3 * 3, 8)
        self.fc2 = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv(x))
        x = self.flatten_module(x) if self.flatten is None else self.flatten(x)
        return self.fc2(F.relu(self.fc1(x)))


@pytest.mark.parametrize("spelling", ["nn.Flatten", *FLATTENS])
def test_flatten_spellings(spelling: str) -> None:
    torch.manual_seed(4)
    model = FlattenNet(FLATTENS.get(spelling)).eval()
    check_converts(model, inputs(2, 7, 7, seed=4))


def test_view_with_a_fixed_batch_size_is_rejected() -> None:
    torch.manual_seed(4)
    x = inputs(2, 7, 7, seed=4)
    model = FlattenNet(lambda t: t.view(32, -1)).eval()  # only works for batches of 32
    with pytest.raises(dtif.UnsupportedOpsError, match="batch"):
        dtif.convert(model, x)


def test_input_flattened_before_the_first_relu() -> None:
    # An MLP that flattens its input with the batch size read before the first ReLU.
    class MLP(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc1 = nn.Linear(2 * 4 * 4, 8)
            self.fc2 = nn.Linear(8, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc2(F.relu(self.fc1(x.view(x.size(0), -1))))

    torch.manual_seed(5)
    check_converts(MLP().eval(), inputs(2, 4, 4, seed=5))


def test_dropout_modules_and_functions_are_removed() -> None:
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(2, 4, 3)
            self.drop2d = nn.Dropout2d(0.3)
            self.fc1 = nn.Linear(4 * 4 * 4, 8)
            self.drop = nn.Dropout(0.5)
            self.fc2 = nn.Linear(8, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.drop2d(F.relu(self.conv(x)))
            x = F.dropout(x.flatten(1), p=0.2, training=self.training)
            return self.fc2(self.drop(F.relu(self.fc1(x))))

    torch.manual_seed(6)
    snn = check_converts(Net().eval(), inputs(2, 6, 6, seed=6))
    # deterministic: two runs agree
    x = inputs(2, 6, 6, seed=7)
    assert torch.equal(snn.simulate(x, 8).outputs, snn.simulate(x, 8).outputs)


@pytest.mark.parametrize(
    "neuron",
    [dtif.IF(), dtif.DTIF(alpha=2.0, payload="graded", burst=4), dtif.DTIF(alpha=4.0, g="exp")],
    ids=["IF", "DTIF graded burst", "DTIF exp"],
)
def test_grouped_strided_convs_with_and_without_bias(neuron: object) -> None:
    torch.manual_seed(7)
    model = nn.Sequential(
        nn.Conv2d(2, 6, 3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(6),
        nn.ReLU(),
        nn.Conv2d(6, 6, 3, padding=1, groups=3),
        nn.ReLU(),
        nn.Conv2d(6, 6, (3, 1), stride=(1, 2), groups=6),  # depthwise, non-square
        nn.BatchNorm2d(6),
        nn.ReLU(),
        nn.AvgPool2d(2, ceil_mode=True),
        nn.Flatten(),
        nn.Linear(6 * 1 * 1, 4),
    )
    check_converts(randomize_bn(model, seed=7), inputs(2, 8, 8, seed=7), neuron)


def test_channelwise_and_percentile_norms_convert() -> None:
    torch.manual_seed(8)
    model = randomize_bn(ResNet(), seed=8)
    x = inputs(2, 8, 8, seed=8)
    snn = check_converts(model, x, norm=dtif.MaxNorm(channelwise=True))
    scales = [v for k, v in snn.state_dict().items() if k.endswith(".scale")]
    assert all(s.ndim == 1 for s in scales)
    # a percentile below 100 clips the largest activations: close, but not within 3%
    snn = dtif.convert(model, x, norm=dtif.PercentileNorm(99.9, channelwise=True))
    out = snn.simulate(x, NUM_STEPS, time_chunk=128, record=False).outputs[-1] / NUM_STEPS
    with torch.no_grad():
        logits = model(x)
    assert (out.argmax(1) == logits.argmax(1)).double().mean() >= 0.9
