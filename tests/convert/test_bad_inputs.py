"""Bad calibration data fails early and clearly; conversion never mutates the user's model."""

from __future__ import annotations

import copy
import warnings
from collections.abc import Iterator

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import dtif
from tests.helpers.nets import dropout_net, dropout_net_input


def snapshot(model: nn.Module) -> dict[str, object]:
    """Everything conversion could touch: tensors, training flags, structure, ReLU flags."""
    return {
        "state": {k: v.detach().clone() for k, v in model.state_dict().items()},
        "training": [m.training for m in model.modules()],
        "repr": repr(model),
        "inplace": [m.inplace for m in model.modules() if isinstance(m, nn.ReLU)],
        "requires_grad": [p.requires_grad for p in model.parameters()],
    }


def assert_untouched(model: nn.Module, before: dict[str, object]) -> None:
    after = snapshot(model)
    state_a, state_b = before["state"], after["state"]
    assert isinstance(state_a, dict) and isinstance(state_b, dict)
    assert state_a.keys() == state_b.keys()
    for k in state_a:
        assert torch.equal(state_a[k], state_b[k]), k
    for key in ("training", "repr", "inplace", "requires_grad"):
        assert before[key] == after[key], key


# ---------------------------------------------------------------------------------------------
# calibration data


@pytest.mark.parametrize(
    "calib",
    [
        torch.zeros(0, 2, 8, 8),
        [],
        [torch.zeros(0, 2, 8, 8)],
        DataLoader(TensorDataset(torch.zeros(0, 2, 8, 8), torch.zeros(0)), batch_size=4),
    ],
    ids=["empty tensor", "empty list", "list of empty batches", "empty DataLoader"],
)
def test_empty_calibration_raises(calib: object) -> None:
    with pytest.raises(dtif.CalibrationError, match="empty"):
        dtif.convert(dropout_net(), calib)


@pytest.mark.parametrize(
    "calib",
    [torch.randn(4, 3, 8, 8), torch.randn(4, 2, 6, 6), torch.randn(4, 2, 8)],
    ids=["channels", "spatial size", "rank"],
)
def test_wrong_shape_calibration_raises(calib: torch.Tensor) -> None:
    with pytest.raises(dtif.CalibrationError, match="shape"):
        dtif.convert(dropout_net(), calib)


def test_calibration_batches_of_mixed_shapes_raise() -> None:
    with pytest.raises(dtif.CalibrationError):
        dtif.convert(dropout_net(), [dropout_net_input(4), torch.randn(4, 3, 8, 8)])


@pytest.mark.parametrize(
    ("calib", "match"),
    [
        (None, "required"),
        (3.0, "tensor or an iterable"),
        (torch.zeros(4, 2, 8, 8, dtype=torch.uint8), "dtype"),
        (torch.full((4, 2, 8, 8), float("nan")), "NaN"),
        (["not a tensor"], "tensors"),
    ],
)
def test_bad_calibration_values_raise(calib: object, match: str) -> None:
    with pytest.raises(dtif.CalibrationError, match=match):
        dtif.convert(dropout_net(), calib)


def test_calibration_accepts_tensors_pairs_loaders_and_iterators() -> None:
    x = dropout_net_input(8)
    y = torch.zeros(8, dtype=torch.long)
    ref = dtif.convert(dropout_net(), x).simulate(x, 6).outputs

    def one_shot() -> Iterator[torch.Tensor]:
        yield x[:3]
        yield x[3:]

    for calib in (
        [x[:3], x[3:]],
        [(x[:3], y[:3]), (x[3:], y[3:])],
        DataLoader(TensorDataset(x, y), batch_size=3),
        one_shot(),
    ):
        out = dtif.convert(dropout_net(), calib).simulate(x, 6).outputs
        torch.testing.assert_close(out, ref)
    # a one-shot iterator also survives the two passes of a percentile norm
    norm = dtif.PercentileNorm(99.0)
    a = dtif.convert(dropout_net(), one_shot(), norm=norm).simulate(x, 6).outputs
    b = dtif.convert(dropout_net(), x, norm=norm).simulate(x, 6).outputs
    torch.testing.assert_close(a, b)


# ---------------------------------------------------------------------------------------------
# the user's model


def test_train_mode_model_converts_in_eval_mode_with_a_warning() -> None:
    model = dropout_net().train()
    before = snapshot(model)
    x = dropout_net_input()
    with pytest.warns(UserWarning, match="train mode") as record:
        snn = dtif.convert(model, x)
    assert record[0].filename == __file__  # the warning points at the caller
    assert_untouched(model, before)
    assert model.training and all(m.training for m in model.modules())
    # eval semantics: BN running statistics, no dropout (deterministic)
    reference = copy.deepcopy(model).eval()
    with torch.no_grad():
        torch.testing.assert_close(snn.ann(x), reference(x), rtol=1e-5, atol=1e-5)
    a = snn.simulate(x, 8).outputs
    b = snn.simulate(x, 8).outputs
    assert torch.equal(a, b)


def test_eval_mode_model_converts_without_warning() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dtif.convert(dropout_net(), dropout_net_input())


@pytest.mark.parametrize("neuron", [dtif.IF(), dtif.DTIF(alpha=4.0, payload="graded", burst=2)])
@pytest.mark.parametrize("maxpool", ["error", "gate"])
def test_conversion_never_mutates_the_model(neuron: object, maxpool: str) -> None:
    model = dropout_net()
    if maxpool == "gate":
        model.pool = nn.MaxPool2d(2)  # type: ignore[assignment]  # swap the pool type
    x = dropout_net_input()
    with torch.no_grad():
        expected = model(x)
    before = snapshot(model)
    snn = dtif.convert(model, x, neuron=neuron, maxpool=maxpool)  # type: ignore[arg-type]  # parametrized
    snn.simulate(x, 4)
    assert_untouched(model, before)
    with torch.no_grad():
        assert torch.equal(model(x), expected)
    # the SNN shares no tensor storage with the model
    model_ptrs = {p.data_ptr() for p in model.state_dict().values()}
    assert not model_ptrs & {t.data_ptr() for t in snn.state_dict().values()}


def test_non_finite_weights_raise_conversion_error() -> None:
    model = dropout_net()
    with torch.no_grad():
        model.conv2.weight[0, 0, 0, 0] = float("nan")
    with pytest.raises(dtif.ConversionError, match="NaN or Inf"):
        dtif.convert(model, dropout_net_input())


def test_bad_neuron_argument_raises() -> None:
    with pytest.raises(dtif.InputError, match="neuron"):
        dtif.convert(dropout_net(), dropout_net_input(), neuron="IF")  # type: ignore[arg-type]  # deliberately bad


def test_per_layer_alpha_length_is_checked() -> None:
    # Net has two spiking layers (the shared ReLU is called twice)
    dtif.convert(dropout_net(), dropout_net_input(), neuron=dtif.DTIF(alpha=(1.0, 2.0)))
    with pytest.raises(dtif.InputError, match="per-layer alpha"):
        dtif.convert(dropout_net(), dropout_net_input(), neuron=dtif.DTIF(alpha=(1.0, 2.0, 3.0)))
