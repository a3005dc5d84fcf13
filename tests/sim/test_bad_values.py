"""Bad values reach a clear dtif error at simulation, never a wrong answer or a torch traceback.

NaN or Inf in test images, inputs of another dtype, test batches whose label count differs
from their image count. (NaN simulation inputs are tested in test_bad_inputs.py; bad values at
conversion in tests/convert/test_bad_values.py.)
"""

from __future__ import annotations

import pytest
import torch

import dtif
from tests.helpers.nets import bn_net, bn_net_input

BAD = [float("nan"), float("inf"), float("-inf")]


@pytest.fixture(scope="module")
def snn() -> dtif.SpikingNetwork:
    return dtif.convert(bn_net(), bn_net_input())


@pytest.mark.parametrize("bad", BAD)
def test_non_finite_test_images_in_evaluate(snn: dtif.SpikingNetwork, bad: float) -> None:
    x = bn_net_input()
    x[0, 0, 0, 0] = bad
    loader = [
        (bn_net_input(), torch.zeros(8, dtype=torch.long)),
        (x, torch.zeros(8, dtype=torch.long)),
    ]
    with pytest.raises(dtif.InputError, match="NaN or Inf"):
        dtif.evaluate(snn, loader, 4, progress=False)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16])
def test_simulation_input_of_another_float_dtype(
    snn: dtif.SpikingNetwork, dtype: torch.dtype
) -> None:
    with pytest.raises(dtif.InputError, match=rf"dtype {dtype}, the network torch.float32"):
        snn.simulate(bn_net_input().to(dtype), 4)
    loader = [(bn_net_input().to(dtype), torch.zeros(8, dtype=torch.long))]
    with pytest.raises(dtif.InputError, match="dtype"):
        dtif.evaluate(snn, loader, 4, progress=False)


@pytest.mark.parametrize("labels", [torch.zeros(7, dtype=torch.long), torch.zeros(8, 1)])
def test_test_batch_with_a_wrong_label_count(
    snn: dtif.SpikingNetwork, labels: torch.Tensor
) -> None:
    with pytest.raises(dtif.InputError, match=r"a test batch of \(8, 2, 6, 6\) inputs has labels"):
        dtif.evaluate(snn, [(bn_net_input(), labels)], 4, progress=False)
