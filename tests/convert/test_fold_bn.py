"""BatchNorm folding keeps the eval outputs: the pure tensor function and the fx pass."""

from __future__ import annotations

import copy

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import fx, nn

from dtif.convert.fold_bn import fold_batchnorm, fold_bn_weights
from dtif.convert.support import BN_MODULES
from dtif.errors import ConversionError


def randomize_bn(bn: nn.Module, gen: torch.Generator) -> None:
    """Random running statistics and affine parameters (variance in [0.05, 4])."""
    c = bn.num_features
    with torch.no_grad():
        bn.running_mean.copy_(torch.randn(c, generator=gen) * 2)
        bn.running_var.copy_(torch.rand(c, generator=gen) * 3.95 + 0.05)
        if bn.weight is not None:
            bn.weight.copy_(torch.randn(c, generator=gen) * 1.5)
            bn.bias.copy_(torch.randn(c, generator=gen))


layer_specs = st.fixed_dictionaries(
    {
        "kind": st.sampled_from(["conv1d", "conv2d", "linear"]),
        "groups": st.sampled_from([1, 2, 3]),
        "in_per_group": st.integers(1, 3),
        "out_per_group": st.integers(1, 3),
        "kernel": st.integers(1, 3),
        "stride": st.integers(1, 2),
        "padding": st.integers(0, 1),
        "bias": st.booleans(),
        "affine": st.booleans(),
        "eps": st.sampled_from([1e-5, 1e-3, 0.1]),
        "seed": st.integers(0, 2**16),
    }
)


def build_layer(spec: dict[str, object]) -> tuple[nn.Module, nn.Module, torch.Tensor]:
    """(layer, bn, input) for one drawn spec."""
    gen = torch.Generator().manual_seed(int(spec["seed"]))  # type: ignore[call-overload]  # drawn int
    torch.manual_seed(int(spec["seed"]))  # type: ignore[call-overload]  # drawn int
    groups = int(spec["groups"])  # type: ignore[call-overload]  # drawn int
    cin = groups * int(spec["in_per_group"])  # type: ignore[call-overload]  # drawn int
    cout = groups * int(spec["out_per_group"])  # type: ignore[call-overload]  # drawn int
    bias, affine, eps = bool(spec["bias"]), bool(spec["affine"]), float(spec["eps"])  # type: ignore[arg-type]  # drawn values
    k, s, p = int(spec["kernel"]), int(spec["stride"]), int(spec["padding"])  # type: ignore[call-overload]  # drawn ints
    layer: nn.Module
    if spec["kind"] == "linear":
        layer = nn.Linear(cin, cout, bias=bias)
        bn: nn.Module = nn.BatchNorm1d(cout, eps=eps, affine=affine)
        x = torch.randn(5, cin, generator=gen)
    elif spec["kind"] == "conv1d":
        layer = nn.Conv1d(cin, cout, k, s, p, groups=groups, bias=bias)
        bn = nn.BatchNorm1d(cout, eps=eps, affine=affine)
        x = torch.randn(5, cin, 7, generator=gen)
    else:
        layer = nn.Conv2d(cin, cout, k, s, p, groups=groups, bias=bias)
        bn = nn.BatchNorm2d(cout, eps=eps, affine=affine)
        x = torch.randn(5, cin, 6, 5, generator=gen)
    randomize_bn(bn, gen)
    return layer, bn, x


@settings(max_examples=60, deadline=None)
@given(layer_specs)
def test_fold_bn_weights_keeps_eval_outputs(spec: dict[str, object]) -> None:
    layer, bn, x = build_layer(spec)
    layer.eval()
    bn.eval()
    with torch.no_grad():
        expected = bn(layer(x))
        w, b = fold_bn_weights(
            layer.weight,
            layer.bias,
            bn.running_mean,
            bn.running_var,
            bn.eps,
            bn.weight,
            bn.bias,
        )
        assert w.shape == layer.weight.shape
        assert b.shape == (layer.weight.shape[0],)
        folded = copy.deepcopy(layer)
        folded.weight = nn.Parameter(w)
        folded.bias = nn.Parameter(b)
        got = folded(x)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


def test_fold_bn_weights_by_hand() -> None:
    # y = gamma (w x + b - mean) / sqrt(var + eps) + beta with w = 2, b = 1, mean = 3, var = 4 - eps,
    # gamma = 6, beta = -1: factor = 6 / 2 = 3, so w' = 6 and b' = (1 - 3) * 3 - 1 = -7.
    eps = 1e-5
    w, b = fold_bn_weights(
        torch.tensor([[2.0]]),
        torch.tensor([1.0]),
        torch.tensor([3.0]),
        torch.tensor([4.0 - eps]),
        eps,
        torch.tensor([6.0]),
        torch.tensor([-1.0]),
    )
    torch.testing.assert_close(w, torch.tensor([[6.0]]))
    torch.testing.assert_close(b, torch.tensor([-7.0]))
    # no bias and no affine: factor = 1 / 2, b' = -mean / 2
    w, b = fold_bn_weights(
        torch.tensor([[2.0]]), None, torch.tensor([3.0]), torch.tensor([4.0 - eps]), eps, None, None
    )
    torch.testing.assert_close(w, torch.tensor([[1.0]]))
    torch.testing.assert_close(b, torch.tensor([-1.5]))


class Block(nn.Module):
    """conv -> bn -> relu, linear -> bn, in a small graph."""

    def __init__(self, spec: dict[str, object]) -> None:
        super().__init__()
        self.layer, self.bn, _ = build_layer(spec)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.bn(self.layer(x)))


@settings(max_examples=40, deadline=None)
@given(layer_specs)
def test_fold_batchnorm_pass_keeps_eval_outputs(spec: dict[str, object]) -> None:
    model = Block(spec).eval()
    _, _, x = build_layer(spec)
    gm = fx.symbolic_trace(model)
    with torch.no_grad():
        expected = model(x)
        folded = fold_batchnorm(gm)
        got = folded(x)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
    assert not any(isinstance(m, BN_MODULES) for m in folded.modules())
    assert all(n.target != "bn" for n in folded.graph.nodes)


def test_fold_batchnorm_shared_conv_gets_private_copies() -> None:
    # One conv module called at two sites, each followed by its own BN: each site gets its own
    # folded copy, and the outputs are kept.
    class Shared(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(2, 3, 3, padding=1)
            self.bn1 = nn.BatchNorm2d(3)
            self.bn2 = nn.BatchNorm2d(3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.bn1(self.conv(x)) + self.bn2(self.conv(x))

    gen = torch.Generator().manual_seed(0)
    model = Shared().eval()
    randomize_bn(model.bn1, gen)
    randomize_bn(model.bn2, gen)
    x = torch.randn(4, 2, 5, 5, generator=gen)
    with torch.no_grad():
        expected = model(x)
        gm = fold_batchnorm(fx.symbolic_trace(model))
        got = gm(x)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
    convs = [m for m in gm.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 2


def test_fold_batchnorm_rejects_bn_not_after_conv() -> None:
    model = nn.Sequential(nn.Conv2d(2, 3, 3), nn.ReLU(), nn.BatchNorm2d(3)).eval()
    with pytest.raises(ConversionError, match="does not directly follow"):
        fold_batchnorm(fx.symbolic_trace(model))


def test_fold_batchnorm_rejects_conv_output_used_twice() -> None:
    class TwoUses(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(2, 3, 3)
            self.bn = nn.BatchNorm2d(3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.conv(x)
            return self.bn(y) + y

    with pytest.raises(ConversionError, match="also used elsewhere"):
        fold_batchnorm(fx.symbolic_trace(TwoUses().eval()))


def test_fold_batchnorm_rejects_bn_without_running_stats() -> None:
    model = nn.Sequential(nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3, track_running_stats=False))
    with pytest.raises(ConversionError, match="running statistics"):
        fold_batchnorm(fx.symbolic_trace(model.eval()))
