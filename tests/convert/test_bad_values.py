"""Bad values reach a clear dtif error, never a wrong answer or a torch traceback.

NaN or Inf in calibration images, test images, weights and BN statistics; tensors of another
dtype; test batches whose label count differs from their image count. (NaN simulation inputs,
NaN calibration images, a NaN conv weight, empty and ill-shaped calibration data are tested
in tests/core/test_errors_core.py.)
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import dtif

BAD = [float("nan"), float("inf"), float("-inf")]


def _model() -> nn.Module:
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


def _images(n: int = 8) -> torch.Tensor:
    return torch.randn(n, 2, 6, 6, generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module")
def snn() -> dtif.SpikingNetwork:
    return dtif.convert(_model(), _images())


@pytest.mark.parametrize("bad", BAD)
def test_non_finite_calibration_images(bad: float) -> None:
    calib = _images()
    calib[3, 1, 2, 2] = bad
    with pytest.raises(dtif.CalibrationError, match="batch 0 contains NaN or Inf"):
        dtif.convert(_model(), calib)
    with pytest.raises(dtif.CalibrationError, match="batch 1 contains NaN or Inf"):
        dtif.convert(_model(), [_images(4), calib])  # the message names the bad batch


@pytest.mark.parametrize("bad", BAD)
def test_non_finite_test_images_in_evaluate(snn: dtif.SpikingNetwork, bad: float) -> None:
    x = _images()
    x[0, 0, 0, 0] = bad
    loader = [(_images(), torch.zeros(8, dtype=torch.long)), (x, torch.zeros(8, dtype=torch.long))]
    with pytest.raises(dtif.InputError, match="NaN or Inf"):
        dtif.evaluate(snn, loader, 4, progress=False)


@pytest.mark.parametrize(
    ("where", "bad"),
    [("0.weight", float("inf")), ("0.bias", float("nan")), ("4.weight", float("-inf"))],
)
def test_non_finite_weights(where: str, bad: float) -> None:
    model = _model()
    with torch.no_grad():
        model.get_parameter(where).view(-1)[0] = bad
    with pytest.raises(dtif.ConversionError, match=rf"NaN or Inf values in {where}\b"):
        dtif.convert(model, _images())


@pytest.mark.parametrize(
    ("stat", "bad", "named"),
    [
        ("running_mean", float("nan"), "1.running_mean"),
        ("running_var", float("inf"), "1.running_var"),
        ("weight", float("-inf"), "1.weight"),
        ("bias", float("nan"), "1.bias"),
        # a negative variance is finite, but folds to NaN: the folded conv is named
        ("running_var", -1.0, "0.weight"),
    ],
)
def test_corrupt_bn_statistics(stat: str, bad: float, named: str) -> None:
    model = _model()
    bn = model[1]
    with torch.no_grad():
        getattr(bn, stat)[2] = bad
    before = copy.deepcopy(model.state_dict())
    with pytest.raises(dtif.ConversionError, match=rf"NaN or Inf values in {named}\b.*BN"):
        dtif.convert(model, _images())
    after = model.state_dict()
    for key, value in before.items():  # the user's model is untouched
        torch.testing.assert_close(after[key], value, rtol=0, atol=0, equal_nan=True)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16])
def test_calibration_images_of_another_float_dtype(dtype: torch.dtype) -> None:
    with pytest.raises(dtif.CalibrationError, match=rf"dtype {dtype} does not fit the model"):
        dtif.convert(_model(), _images().to(dtype))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16])
def test_simulation_input_of_another_float_dtype(
    snn: dtif.SpikingNetwork, dtype: torch.dtype
) -> None:
    with pytest.raises(dtif.InputError, match=rf"dtype {dtype}, the network torch.float32"):
        snn.simulate(_images().to(dtype), 4)
    loader = [(_images().to(dtype), torch.zeros(8, dtype=torch.long))]
    with pytest.raises(dtif.InputError, match="dtype"):
        dtif.evaluate(snn, loader, 4, progress=False)


@pytest.mark.parametrize("labels", [torch.zeros(7, dtype=torch.long), torch.zeros(8, 1)])
def test_test_batch_with_a_wrong_label_count(
    snn: dtif.SpikingNetwork, labels: torch.Tensor
) -> None:
    with pytest.raises(dtif.InputError, match=r"a test batch of \(8, 2, 6, 6\) inputs has labels"):
        dtif.evaluate(snn, [(_images(), labels)], 4, progress=False)
