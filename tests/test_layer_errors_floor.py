"""benchmarks/layer_errors.py --floor: the ANN quantized to T levels, per layer."""

import pytest
import torch
from torch import nn

import dtif
from dtif.calibrate.layer_error import layer_errors
from dtif.convert import TrainedScale
from dtif.models.qcfs import QCFS
from tests.helpers.bench import bench_module


def _script():
    return bench_module("layer_errors")


def _net(levels: int) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(6, 40), QCFS(levels, 1.7), nn.Linear(40, 20), QCFS(levels, 1.3), nn.Linear(20, 3)
    ).eval()


def test_floor_is_zero_at_the_own_levels_and_grows_below_them() -> None:
    x = torch.rand(64, 6)
    snn = dtif.convert(_net(8), x, neuron=dtif.IF(v0=0.5), norm=TrainedScale())
    floor = _script().quantization_floor(snn, x, [1, 2, 4, 8])
    assert len(floor) == 2
    for per_t in floor.values():
        assert per_t[8] == pytest.approx(0.0, abs=1e-6)
        assert per_t[2] > per_t[4] > 0.0
    # the block restores each module's levels
    assert [m.levels for m in snn.ann.modules() if isinstance(m, QCFS)] == [8, 8]


def test_floor_is_the_if_error_of_a_layer_with_constant_input() -> None:
    # The first spiking layer sees a constant current, so IF with v0 = 0.5 after T steps is
    # exactly the ANN's activation quantized to T levels.
    x = torch.rand(64, 6)
    snn = dtif.convert(_net(8), x, neuron=dtif.IF(v0=0.5), norm=TrainedScale())
    at = [1, 2, 3, 4]
    floor = _script().quantization_floor(snn, x, at)
    with torch.inference_mode():
        errors = layer_errors(snn, x, at)
    first = next(iter(errors))
    for t in at:
        assert errors[first][t] == pytest.approx(floor[first][t], abs=1e-4)
