"""`layer_errors`: each spiking layer's rate against the ANN's activation."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import dtif
from dtif.calibrate.layer_error import layer_errors
from dtif.errors import InputError


def _mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 3))


def test_first_layer_error_is_the_if_rounding() -> None:
    # The first spiking layer sees a constant current z = a / lambda in [0, 1] (max norm on
    # the same inputs), so after T steps IF (v0 = 0) has fired floor(z T) times.
    model = _mlp().eval()
    x = torch.rand(16, 6)
    snn = dtif.convert(model, x, neuron=dtif.IF(), norm=dtif.MaxNorm())
    errors = layer_errors(snn, x, at=[1, 3, 8, 32])
    first = next(iter(errors))
    a = torch.relu(model[0](x)).detach().double()
    lam = float(a.max())  # max norm on the same inputs
    for t, err in errors[first].items():
        rate = torch.floor(a / lam * t + 1e-9) * lam / t
        expected = float(torch.linalg.vector_norm(rate - a) / torch.linalg.vector_norm(a))
        assert err == pytest.approx(expected, abs=1e-4)


def test_errors_fall_with_time_in_every_layer() -> None:
    model = _mlp().eval()
    x = torch.rand(32, 6)
    snn = dtif.convert(model, x, neuron=dtif.DTIF(alpha=2.0, v0=0.5), norm=dtif.MaxNorm())
    errors = layer_errors(snn, x, at=[1, 256])
    assert list(errors) == snn.spiking_layer_names()
    for per_t in errors.values():
        assert set(per_t) == {1, 256}
        assert all(math.isfinite(v) for v in per_t.values())
        assert per_t[256] < per_t[1]
        assert per_t[256] < 0.05


def test_bad_steps_are_refused() -> None:
    model = _mlp().eval()
    x = torch.rand(4, 6)
    snn = dtif.convert(model, x)
    with pytest.raises(InputError, match="T values >= 1"):
        layer_errors(snn, x, at=[0, 4])


def test_wrong_input_shape_is_refused() -> None:
    model = _mlp().eval()
    snn = dtif.convert(model, torch.rand(4, 6))
    with pytest.raises(InputError, match="shape"):
        layer_errors(snn, torch.rand(4, 7), at=[2])
