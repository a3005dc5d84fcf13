"""Synaptic operations: the exact fan-out of each spike, against brute-force enumeration.

Each network starts with a spiking layer fed directly by the input (ReLU first), calibrated so
that lambda = 1: its input current is the input itself, so the spike pattern is known (it is
replayed with `if_step`), and SOP(t) = sum over steps <= t and elements of spikes x fan-out.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch import nn

import dtif
from dtif.metrics.synops import measure_fanout
from dtif.neurons import if_initial_state, if_step

Pair = tuple[int, int]


def pair(v: int | tuple[int, ...]) -> Pair:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[-1]))


def conv_fanout(conv: nn.Conv1d | nn.Conv2d, in_shape: tuple[int, ...]) -> torch.Tensor:
    """Brute force: loop over output channels and positions and the kernel taps, and count the
    synapses (weights) that touch each input element. in_shape: [C, H, W] or [C, L]."""
    one_d = isinstance(conv, nn.Conv1d)
    c_in, *spatial = in_shape
    h, w = (1, spatial[0]) if one_d else (spatial[0], spatial[1])
    kh, kw = (1, conv.kernel_size[0]) if one_d else pair(conv.kernel_size)
    sh, sw = (1, conv.stride[0]) if one_d else pair(conv.stride)
    ph, pw = (0, int(conv.padding[0])) if one_d else pair(conv.padding)  # type: ignore[arg-type]  # int padding
    dh, dw = (1, conv.dilation[0]) if one_d else pair(conv.dilation)
    h_out = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    w_out = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    in_per_group = c_in // conv.groups
    out_per_group = conv.out_channels // conv.groups
    fan = torch.zeros(c_in, h, w, dtype=torch.float64)
    for o, y, x in itertools.product(range(conv.out_channels), range(h_out), range(w_out)):
        group = o // out_per_group
        for ci, ky, kx in itertools.product(range(in_per_group), range(kh), range(kw)):
            i, j = y * sh - ph + ky * dh, x * sw - pw + kx * dw
            if 0 <= i < h and 0 <= j < w:  # taps on the padding touch no input
                fan[group * in_per_group + ci, i, j] += 1
    return fan.view(c_in, w) if one_d else fan


def pool_windows(size: int, kernel: int, stride: int, padding: int) -> list[range]:
    """The input indices of each output window of an (average) pool along one axis."""
    out = (size + 2 * padding - kernel) // stride + 1
    return [
        range(max(0, o * stride - padding), min(size, o * stride - padding + kernel))
        for o in range(out)
    ]


def adaptive_windows(size: int, out: int) -> list[range]:
    return [range(math.floor(o * size / out), math.ceil((o + 1) * size / out)) for o in range(out)]


def pooled_fanout(
    rows: list[range], cols: list[range], next_fan: torch.Tensor, in_shape: tuple[int, int, int]
) -> torch.Tensor:
    """Fan-out through a pool: a spike reaches every window that holds it, and each window's
    output element has the next layer's fan-out `next_fan` [C, H_out, W_out]."""
    fan = torch.zeros(in_shape, dtype=torch.float64)
    for (y, rs), (x, cs) in itertools.product(enumerate(rows), enumerate(cols)):
        for i, j in itertools.product(rs, cs):
            fan[:, i, j] += next_fan[:, y, x]
    return fan


def replay_if(x: torch.Tensor, num_steps: int) -> torch.Tensor:
    """Spikes [T, B, ...] of IF neurons with constant input current x."""
    state = if_initial_state(x, dtif.IF())
    spikes = []
    for _ in range(num_steps):
        n, state = if_step(x, state, dtif.IF())
        spikes.append(n)
    return torch.stack(spikes)


def controlled_input(shape: tuple[int, ...], batch: int, seed: int) -> tuple[torch.Tensor, ...]:
    """(x, calib): x in [0, 1] with some zeros; calib has max exactly 1, so lambda = 1."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, *shape, generator=gen)
    x[x < 0.2] = 0.0  # silent neurons contribute nothing
    calib = torch.cat([x, torch.ones(1, *shape)])
    return x, calib


def check_synops(model: nn.Module, shape: tuple[int, ...], expected_fan: torch.Tensor) -> None:
    """Compare measured fan-out, spikes and SOPs with brute force on a controlled IF layer."""
    x, calib = controlled_input(shape, batch=5, seed=len(shape) + int(expected_fan.sum()))
    snn = dtif.convert(model.eval(), calib, neuron=dtif.IF())
    (name,) = snn.spiking_layer_names()
    fan = snn.profile(shape).fanout[name]
    torch.testing.assert_close(fan[0].double(), expected_fan, rtol=0, atol=0)
    # the same through the public function, on the static boundary
    with torch.inference_mode():
        boundary = tuple(b.clone() for b in snn.static(torch.zeros(1, *shape)))
    direct = measure_fanout(snn.dynamic, boundary)[name]
    assert torch.equal(direct, fan)

    num_steps = 7
    res = snn.simulate(x, num_steps)
    spikes = replay_if(x, num_steps)  # [T, B, ...]
    per_step = spikes.flatten(2).sum(dim=(1, 2)).double()
    assert per_step.sum() > 0
    torch.testing.assert_close(res.spikes[name], per_step, rtol=0, atol=0)
    events = (spikes.double() * expected_fan).flatten(1).sum(dim=1) / x.shape[0]
    torch.testing.assert_close(res.synops, torch.cumsum(events, 0), rtol=1e-12, atol=0)
    assert torch.equal(res.synops_graded, torch.zeros(num_steps, dtype=torch.float64))


CONV2D = [
    # (c_in, c_out, kernel, stride, padding, dilation, groups, (H, W))
    (1, 1, 3, 1, 0, 1, 1, (5, 5)),
    (2, 3, 3, 1, 1, 1, 1, (5, 6)),
    (2, 4, 3, 2, 1, 1, 1, (7, 7)),
    (4, 6, 3, 2, 1, 1, 2, (6, 5)),
    (3, 3, 3, 1, 1, 1, 3, (4, 4)),  # depthwise
    (2, 2, (1, 3), (2, 1), (0, 1), 1, 1, (5, 6)),
    (2, 3, 5, 3, 2, 1, 1, (7, 8)),
    (2, 2, 3, 1, 2, 2, 1, (6, 6)),  # dilated
    (2, 4, 2, 2, 0, 1, 2, (5, 5)),  # stride skips the last row and column
]


@pytest.mark.parametrize(("cin", "cout", "k", "s", "p", "d", "g", "hw"), CONV2D)
def test_conv2d_fanout_matches_brute_force(
    cin: int, cout: int, k: int | Pair, s: int | Pair, p: int | Pair, d: int, g: int, hw: Pair
) -> None:
    conv = nn.Conv2d(cin, cout, k, s, p, dilation=d, groups=g)
    shape = (cin, *hw)
    check_synops(nn.Sequential(nn.ReLU(), conv), shape, conv_fanout(conv, shape))


@pytest.mark.parametrize(
    ("cin", "cout", "k", "s", "p", "g", "length"),
    [(1, 2, 3, 1, 1, 1, 7), (4, 4, 3, 2, 0, 2, 9), (2, 3, 4, 1, 2, 1, 5)],
)
def test_conv1d_fanout_matches_brute_force(
    cin: int, cout: int, k: int, s: int, p: int, g: int, length: int
) -> None:
    conv = nn.Conv1d(cin, cout, k, s, p, groups=g)
    shape = (cin, length)
    check_synops(nn.Sequential(nn.ReLU(), conv), shape, conv_fanout(conv, shape))


def test_linear_fanout_is_out_features() -> None:
    check_synops(
        nn.Sequential(nn.ReLU(), nn.Linear(6, 4)), (6,), torch.full((6,), 4.0, dtype=torch.float64)
    )
    model = nn.Sequential(nn.ReLU(), nn.Flatten(), nn.Linear(2 * 3 * 3, 5))
    check_synops(model, (2, 3, 3), torch.full((2, 3, 3), 5.0, dtype=torch.float64))


@pytest.mark.parametrize(
    ("kernel", "stride", "padding", "hw"),
    [(2, 2, 0, (6, 6)), (2, 2, 0, (7, 5)), (3, 2, 1, (6, 7)), (3, 1, 0, (5, 5))],
)
def test_avgpool_then_conv_fanout_matches_brute_force(
    kernel: int, stride: int, padding: int, hw: Pair
) -> None:
    # Avg-pooling is folded into the next layer: a spike reaches every pool window that holds
    # it, and from each window output, every synapse of the conv.
    pool = nn.AvgPool2d(kernel, stride, padding)
    conv = nn.Conv2d(2, 3, 3, padding=1)
    rows = pool_windows(hw[0], kernel, stride, padding)
    cols = pool_windows(hw[1], kernel, stride, padding)
    next_fan = conv_fanout(conv, (2, len(rows), len(cols)))
    expected = pooled_fanout(rows, cols, next_fan, (2, *hw))
    check_synops(nn.Sequential(nn.ReLU(), pool, conv), (2, *hw), expected)


@pytest.mark.parametrize(("hw", "out"), [((6, 6), (1, 1)), ((5, 7), (2, 3)), ((7, 5), (3, 2))])
def test_adaptive_avgpool_then_linear_fanout(hw: Pair, out: Pair) -> None:
    # Adaptive windows overlap when the size does not divide: such elements feed two windows.
    rows, cols = adaptive_windows(hw[0], out[0]), adaptive_windows(hw[1], out[1])
    next_fan = torch.full((2, *out), 4.0, dtype=torch.float64)  # Linear(2*out, 4)
    expected = pooled_fanout(rows, cols, next_fan, (2, *hw))
    model = nn.Sequential(
        nn.ReLU(), nn.AdaptiveAvgPool2d(out), nn.Flatten(), nn.Linear(2 * out[0] * out[1], 4)
    )
    check_synops(model, (2, *hw), expected)


def test_branching_fanout_is_the_sum_of_both_branches() -> None:
    # One spike feeds a 3x3 conv and a strided 1x1 conv, whose outputs are added.
    class Branches(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Conv2d(2, 3, 3, stride=2, padding=1)
            self.b = nn.Conv2d(2, 3, 1, stride=2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = torch.relu(x)
            return self.a(x) + self.b(x)

    model = Branches()
    shape = (2, 5, 5)
    expected = conv_fanout(model.a, shape) + conv_fanout(model.b, shape)
    check_synops(model, shape, expected)


def test_fanout_stops_at_the_next_spiking_layer_and_first_layer_is_macs() -> None:
    # conv0 (analog, static) -> ReLU -> conv1 -> ReLU -> conv2 -> ReLU -> FC: each layer's
    # fan-out is that of the layer it feeds; conv0's work is counted once as MACs.
    conv0 = nn.Conv2d(1, 2, 3, padding=1)
    conv1 = nn.Conv2d(2, 3, 3, stride=2, padding=1)
    conv2 = nn.Conv2d(3, 2, 2)
    model = nn.Sequential(
        conv0, nn.ReLU(), conv1, nn.ReLU(), conv2, nn.ReLU(), nn.Flatten(), nn.Linear(2 * 2 * 2, 3)
    ).eval()
    x = torch.randn(4, 1, 6, 6, generator=torch.Generator().manual_seed(0))
    snn = dtif.convert(model, x)
    names = snn.spiking_layer_names()
    profile = snn.profile((1, 6, 6))
    fans = [profile.fanout[n][0].double() for n in names]
    assert torch.equal(fans[0], conv_fanout(conv1, (2, 6, 6)))
    assert torch.equal(fans[1], conv_fanout(conv2, (3, 3, 3)))
    assert torch.equal(fans[2], torch.full((2, 2, 2), 3.0, dtype=torch.float64))
    assert profile.layer_sizes == dict(zip(names, [2 * 6 * 6, 3 * 3 * 3, 2 * 2 * 2]))
    # MACs: out elements x (in channels / groups x kernel taps), padded taps included
    conv0_macs = 2 * 6 * 6 * (1 * 9)
    assert profile.static_macs == conv0_macs
    ann_macs = conv0_macs + 3 * 3 * 3 * (2 * 9) + 2 * 2 * 2 * (3 * 4) + 3 * 8
    assert profile.ann_macs == ann_macs

    # SOPs: the sum over layers of spikes x fan-out. Energy: MACs once, SOPs as ACs.
    res = snn.simulate(x, 5)
    assert res.static_macs == conv0_macs
    assert res.spikes.keys() == set(names)
    energy = dtif.EnergyModel(e_ac_pj=0.5, e_mac_pj=2.0)
    res2 = snn.simulate(x, 5, energy=energy)
    torch.testing.assert_close(res2.energy_pj, 2.0 * conv0_macs + 0.5 * res.synops)
    torch.testing.assert_close(res.energy_pj, 4.6 * conv0_macs + 0.9 * res.synops)


def test_graded_spikes_count_as_macs_unless_pow2() -> None:
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 4 * 4, 3))
    x = torch.rand(4, 1, 6, 6, generator=torch.Generator().manual_seed(1))
    energy = dtif.EnergyModel()
    graded = dtif.convert(model.eval(), x, neuron=dtif.DTIF(alpha=4.0, payload="graded"))
    res = graded.simulate(x, 6)
    assert res.synops[-1] > 0
    assert torch.equal(res.synops_graded, res.synops)
    macs = res.static_macs
    torch.testing.assert_close(res.energy_pj, energy.e_mac_pj * (macs + res.synops))
    pow2 = dtif.DTIF(alpha=4.0, payload="graded", theta_levels="pow2")
    res = dtif.convert(model, x, neuron=pow2).simulate(x, 6)
    assert res.synops[-1] > 0
    assert torch.equal(res.synops_graded, torch.zeros_like(res.synops))
    torch.testing.assert_close(res.energy_pj, energy.e_mac_pj * macs + energy.e_ac_pj * res.synops)
    # binary DTIF: each spike is one AC
    res = dtif.convert(model, x, neuron=dtif.DTIF(alpha=4.0)).simulate(x, 6)
    assert torch.equal(res.synops_graded, torch.zeros_like(res.synops))
