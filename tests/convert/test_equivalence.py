"""ANN-SNN equivalence at long T on hypothesis-generated tiny CNNs and ResNets.

Each example draws an architecture, random weights, random BN statistics and random inputs,
converts the model with MaxNorm calibrated on those same inputs (a synthetic equivalence test:
every ReLU output is then at most its layer's lambda, so nothing saturates), and simulates
T = 2048 steps. The claims, for IF, binary DTIF and graded DTIF with burst:

- the SNN predicts the ANN's class on >= 99% of the inputs;
- outputs / T is within TOLERANCE of the ANN logits. With subtractive reset a neuron's rate is
  within about 1/T of its normalized activation (1/2048 ~ 5e-4 of lambda), and these errors
  add up over a few layers; we measured at most ~0.2% of the largest |logit| over 80 random
  nets, and allow 2%.

Graded DTIF uses alpha = 2 with burst = 4: a neuron with constant input z can deliver up to
4 theta(z) = 4 / (1 + 2z) per step, which covers z up to (sqrt(33) - 1) / 4 = 1.19 > 1, so
MaxNorm keeps it out of saturation (alpha = 4 would saturate above z = 0.88).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

import dtif
from dtif.neurons import NeuronParams

NUM_STEPS = 2048
BATCH = 100
TOLERANCE = 0.02  # of max |ANN logit|
MIN_AGREEMENT = 0.99
# Chunks of 128 steps keep the stacked tensors small (a few MB): on CPU that is about twice as
# fast as one 2048-step chunk, which spends its time faulting in fresh pages. Chunking does not
# change results (tests/sim/test_engine.py).
TIME_CHUNK = 128

NEURONS: dict[str, NeuronParams] = {
    "IF": dtif.IF(),
    "DTIF binary": dtif.DTIF(alpha=4.0),
    "DTIF graded burst 4": dtif.DTIF(alpha=2.0, payload="graded", burst=4),
}

SETTINGS = settings(
    max_examples=10,
    deadline=None,
    derandomize=True,  # a statistical claim: the same examples on every run, never flaky
    suppress_health_check=[HealthCheck.too_slow],
)


def randomize_bn(model: nn.Module, gen: torch.Generator) -> None:
    """Random running statistics and affine parameters for every BN of `model`."""
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            c = m.num_features
            with torch.no_grad():
                m.running_mean.copy_(torch.randn(c, generator=gen) * 0.5)
                m.running_var.copy_(torch.rand(c, generator=gen) * 1.5 + 0.25)
                m.weight.copy_(torch.rand(c, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(c, generator=gen) * 0.5)


@dataclass(frozen=True)
class ConvSpec:
    out_channels: int
    kernel: int
    stride: int
    groups: int
    bn: bool


class SmallCNN(nn.Module):
    """[conv (-> BN) -> ReLU] x n, optional avg pool, flatten, optional hidden FC, FC."""

    def __init__(
        self,
        in_channels: int,
        size: int,
        convs: list[ConvSpec],
        pool: bool,
        hidden: int,
        classes: int,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = in_channels
        for spec in convs:
            groups = (
                spec.groups if c % spec.groups == 0 and spec.out_channels % spec.groups == 0 else 1
            )
            pad = spec.kernel // 2
            layers.append(
                nn.Conv2d(c, spec.out_channels, spec.kernel, spec.stride, pad, groups=groups)
            )
            if spec.bn:
                layers.append(nn.BatchNorm2d(spec.out_channels))
            layers.append(nn.ReLU())
            c = spec.out_channels
            size = (size + 2 * pad - spec.kernel) // spec.stride + 1
        if pool and size >= 2:
            layers.append(nn.AvgPool2d(2))
            size //= 2
        layers.append(nn.Flatten())
        flat = c * size * size
        if hidden:
            layers += [nn.Linear(flat, hidden), nn.BatchNorm1d(hidden), nn.ReLU()]
            flat = hidden
        layers.append(nn.Linear(flat, classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class BasicBlock(nn.Module):
    """conv-BN-ReLU-conv-BN plus a shortcut (identity, or 1x1 conv + BN), then ReLU."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.down: nn.Module | None = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x if self.down is None else self.down(x)
        return F.relu(out + shortcut)


class SmallResNet(nn.Module):
    """Stem conv-BN-ReLU, basic blocks, global average pool, FC."""

    def __init__(self, in_channels: int, width: int, blocks: list[tuple[int, int]], classes: int):
        super().__init__()
        self.stem = nn.Conv2d(in_channels, width, 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(width)
        layers = []
        c = width
        for cout, stride in blocks:
            layers.append(BasicBlock(c, cout, stride))
            c = cout
        self.blocks = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn(self.stem(x)))
        x = self.blocks(x)
        return self.fc(torch.flatten(self.pool(x), 1))


conv_specs = st.builds(
    ConvSpec,
    out_channels=st.integers(2, 4),
    kernel=st.sampled_from([1, 3]),
    stride=st.integers(1, 2),
    groups=st.sampled_from([1, 2]),
    bn=st.booleans(),
)


@st.composite
def cnn_cases(draw: st.DrawFn) -> tuple[nn.Module, torch.Tensor]:
    in_channels = draw(st.integers(1, 2))
    size = draw(st.integers(4, 6))
    model = SmallCNN(
        in_channels,
        size,
        draw(st.lists(conv_specs, min_size=1, max_size=3)),
        pool=draw(st.booleans()),
        hidden=draw(st.sampled_from([0, 8])),
        classes=draw(st.integers(3, 6)),
    )
    return seeded(model, draw(st.integers(0, 2**16)), in_channels, size)


@st.composite
def resnet_cases(draw: st.DrawFn) -> tuple[nn.Module, torch.Tensor]:
    in_channels = draw(st.integers(1, 2))
    size = draw(st.integers(4, 5))
    width = draw(st.integers(2, 3))
    blocks = draw(st.lists(st.tuples(st.integers(2, 4), st.integers(1, 2)), min_size=1, max_size=2))
    model = SmallResNet(in_channels, width, blocks, classes=draw(st.integers(3, 6)))
    return seeded(model, draw(st.integers(0, 2**16)), in_channels, size)


def seeded(
    model: nn.Module, seed: int, in_channels: int, size: int
) -> tuple[nn.Module, torch.Tensor]:
    """Re-initialize `model` from `seed`, randomize its BNs, and draw its inputs."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            bound = 1.0 / max(1, p[0].numel()) ** 0.5 if p.ndim > 1 else 0.3
            p.copy_((torch.rand(p.shape, generator=gen) * 2 - 1) * bound * 1.7)
    randomize_bn(model, gen)
    x = torch.randn(BATCH, in_channels, size, size, generator=gen)
    return model.eval(), x


def check_equivalence(model: nn.Module, x: torch.Tensor) -> None:
    with torch.no_grad():
        logits = model(x)
    scale = float(logits.abs().max())
    for name, neuron in NEURONS.items():
        snn = dtif.convert(model, x, neuron=neuron, norm=dtif.MaxNorm())
        with torch.no_grad():  # the folded reference ANN is the model
            torch.testing.assert_close(snn.ann(x), logits, rtol=1e-4, atol=1e-4)
        res = snn.simulate(x, num_steps=NUM_STEPS, time_chunk=TIME_CHUNK, record=False)
        rate = res.outputs[-1] / NUM_STEPS
        err = float((rate - logits).abs().max())
        assert err <= TOLERANCE * scale + 1e-5, f"{name}: max |out/T - logits| = {err:.4g}"
        agreement = float((rate.argmax(1) == logits.argmax(1)).double().mean())
        assert agreement >= MIN_AGREEMENT, f"{name}: predictions agree on {agreement:.1%}"


@SETTINGS
@given(cnn_cases())
def test_small_cnn_snn_matches_ann(case: tuple[nn.Module, torch.Tensor]) -> None:
    check_equivalence(*case)


@settings(SETTINGS, max_examples=8)
@given(resnet_cases())
def test_small_resnet_snn_matches_ann(case: tuple[nn.Module, torch.Tensor]) -> None:
    check_equivalence(*case)


def test_outputs_approach_ann_as_t_grows() -> None:
    # The error of outputs/T shrinks with T (rate coding converges): compare T = 64 and 2048.
    model, x = seeded(
        SmallCNN(2, 6, [ConvSpec(4, 3, 1, 1, True), ConvSpec(4, 3, 2, 2, True)], True, 8, 5),
        seed=3,
        in_channels=2,
        size=6,
    )
    with torch.no_grad():
        logits = model(x[:32])
    for neuron in NEURONS.values():
        snn = dtif.convert(model, x[:32], neuron=neuron)
        out = snn.simulate(x[:32], NUM_STEPS, time_chunk=TIME_CHUNK, record=False).outputs
        err = [float((out[t - 1] / t - logits).abs().max()) for t in (64, NUM_STEPS)]
        assert err[1] < err[0] / 4
