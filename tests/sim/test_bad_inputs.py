"""Bad simulation inputs fail early and clearly, before anything runs."""

from __future__ import annotations

import pytest
import torch

import dtif
from tests.helpers.nets import dropout_net, dropout_net_input


@pytest.fixture(scope="module")
def snn() -> dtif.SpikingNetwork:
    return dtif.convert(dropout_net(), dropout_net_input())


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_input_raises_before_simulation(snn: dtif.SpikingNetwork, bad: float) -> None:
    calls: list[str] = []
    hooks = [
        part.register_forward_pre_hook(lambda m, a, name=name: calls.append(name))
        for name, part in (("static", snn.static), ("dynamic", snn.dynamic))
    ]
    try:
        x = dropout_net_input()
        x[5, 1, 3, 4] = bad
        with pytest.raises(dtif.InputError, match="NaN or Inf"):
            snn.simulate(x, 4)
    finally:
        for h in hooks:
            h.remove()
    assert calls == []  # nothing ran


@pytest.mark.parametrize(
    ("x", "match"),
    [
        (torch.randn(4, 3, 8, 8), "shape"),
        (torch.randn(2, 8, 8), "shape"),
        (torch.zeros(4, 2, 8, 8, dtype=torch.int64), "float"),
        (torch.zeros(0, 2, 8, 8), "empty"),
        ([[1.0]], "tensor"),
    ],
)
def test_bad_input_raises_input_error(snn: dtif.SpikingNetwork, x: object, match: str) -> None:
    with pytest.raises(dtif.InputError, match=match):
        snn.simulate(x, 4)  # type: ignore[arg-type]  # deliberately bad input


@pytest.mark.parametrize("num_steps", [0, -3, 2.5, "8"])
def test_num_steps_below_one_raises(snn: dtif.SpikingNetwork, num_steps: object) -> None:
    with pytest.raises(dtif.InputError, match="num_steps"):
        snn.simulate(dropout_net_input(), num_steps)  # type: ignore[arg-type]  # deliberately bad


def test_evaluate_rejects_bad_num_steps(snn: dtif.SpikingNetwork) -> None:
    loader = [(dropout_net_input(4), torch.zeros(4, dtype=torch.long))]
    with pytest.raises(dtif.InputError, match="num_steps"):
        dtif.evaluate(snn, loader, num_steps=0)
