"""Bad values reach a clear dtif error at conversion, never a wrong answer or a torch traceback.

NaN or Inf in calibration images, weights and BN statistics; calibration images of another
dtype. (NaN calibration images, a NaN conv weight, empty and ill-shaped calibration data are
tested in test_bad_inputs.py; bad values at simulation in tests/sim/test_bad_values.py.)
"""

from __future__ import annotations

import copy

import pytest
import torch

import dtif
from tests.helpers.nets import bn_net, bn_net_input

BAD = [float("nan"), float("inf"), float("-inf")]


@pytest.mark.parametrize("bad", BAD)
def test_non_finite_calibration_images(bad: float) -> None:
    calib = bn_net_input()
    calib[3, 1, 2, 2] = bad
    with pytest.raises(dtif.CalibrationError, match="batch 0 contains NaN or Inf"):
        dtif.convert(bn_net(), calib)
    with pytest.raises(dtif.CalibrationError, match="batch 1 contains NaN or Inf"):
        dtif.convert(bn_net(), [bn_net_input(4), calib])  # the message names the bad batch


@pytest.mark.parametrize(
    ("where", "bad"),
    [("0.weight", float("inf")), ("0.bias", float("nan")), ("4.weight", float("-inf"))],
)
def test_non_finite_weights(where: str, bad: float) -> None:
    model = bn_net()
    with torch.no_grad():
        model.get_parameter(where).view(-1)[0] = bad
    with pytest.raises(dtif.ConversionError, match=rf"NaN or Inf values in {where}\b"):
        dtif.convert(model, bn_net_input())


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
    model = bn_net()
    bn = model[1]
    with torch.no_grad():
        getattr(bn, stat)[2] = bad
    before = copy.deepcopy(model.state_dict())
    with pytest.raises(dtif.ConversionError, match=rf"NaN or Inf values in {named}\b.*BN"):
        dtif.convert(model, bn_net_input())
    after = model.state_dict()
    for key, value in before.items():  # the user's model is untouched
        torch.testing.assert_close(after[key], value, rtol=0, atol=0, equal_nan=True)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16])
def test_calibration_images_of_another_float_dtype(dtype: torch.dtype) -> None:
    with pytest.raises(dtif.CalibrationError, match=rf"dtype {dtype} does not fit the model"):
        dtif.convert(bn_net(), bn_net_input().to(dtype))
