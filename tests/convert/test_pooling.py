"""Conversion swaps `AvgPool2x2` in for plain AvgPool2d(2) pools only; the swap changes no result."""

from __future__ import annotations

import importlib

import pytest
import torch
from torch import nn

import dtif
from dtif.neurons import DTIFParams, IFParams
from dtif.nn.pooling import AvgPool2x2

pipeline = importlib.import_module("dtif.convert.pipeline")  # `dtif.convert` is also a function


def _pools(model: nn.Module) -> list[nn.Module]:
    ann = pipeline.prepare_ann(model)
    return [m for m in ann.modules() if isinstance(m, nn.AvgPool2d)]


def test_only_plain_2x2_pools_are_swapped() -> None:
    plain = [
        nn.AvgPool2d(2),
        nn.AvgPool2d((2, 2), stride=2),
        nn.AvgPool2d([2, 2], stride=[2, 2], padding=[0, 0]),
    ]
    other = [
        nn.AvgPool2d(3),
        nn.AvgPool2d(2, stride=1),
        nn.AvgPool2d(2, padding=1),
        nn.AvgPool2d(2, ceil_mode=True),
        nn.AvgPool2d(2, divisor_override=3),
    ]
    model = nn.Sequential(*[nn.Sequential(nn.ReLU(), p) for p in plain + other]).eval()
    kinds = [type(p) for p in _pools(model)]
    assert kinds == [AvgPool2x2] * len(plain) + [nn.AvgPool2d] * len(other)


def _tiny_cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.ReLU(),
        nn.AvgPool2d(2),
        nn.Conv2d(4, 6, 3, padding=1),
        nn.ReLU(),
        nn.AvgPool2d(2),  # 3x3 after this: odd, then torch's kernel
        nn.Conv2d(6, 6, 3, padding=1),
        nn.ReLU(),
        nn.AvgPool2d(2),
        nn.Flatten(),
        nn.Linear(6, 3),
    ).eval()


@pytest.mark.parametrize("neuron", [IFParams(v0=0.5), DTIFParams(alpha=4.0)])
def test_simulation_is_unchanged_by_the_swap(
    neuron: IFParams | DTIFParams, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = _tiny_cnn()
    x = torch.randn(16, 1, 12, 12)
    fast = dtif.convert(model, x, neuron=neuron)
    monkeypatch.setattr(pipeline, "use_fast_pools", lambda gm: gm)
    plain = dtif.convert(model, x, neuron=neuron)
    assert any(isinstance(m, AvgPool2x2) for m in fast.modules())
    assert not any(isinstance(m, AvgPool2x2) for m in plain.modules())
    a, b = fast.simulate(x, 24), plain.simulate(x, 24)
    assert torch.equal(a.outputs, b.outputs)
    assert torch.equal(torch.as_tensor(a.synops), torch.as_tensor(b.synops))
    assert torch.equal(fast.ann(x), plain.ann(x))
