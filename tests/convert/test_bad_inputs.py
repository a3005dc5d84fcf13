"""Bad input fails early and clearly; conversion never mutates the user's model."""

from __future__ import annotations

import copy
import warnings
from collections.abc import Iterator

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import dtif


class Net(nn.Module):
    """conv-BN-ReLU(inplace)-dropout-conv-ReLU-avgpool-FC, with a shared ReLU module."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(2, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.relu = nn.ReLU(inplace=True)
        self.drop = nn.Dropout(0.5)
        self.conv2 = nn.Conv2d(4, 4, 3, stride=2, padding=1)
        self.pool = nn.AvgPool2d(2)
        self.fc = nn.Linear(4 * 2 * 2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.drop(self.relu(self.bn(self.conv1(x))))
        x = self.pool(self.relu(self.conv2(x)))
        return self.fc(x.flatten(1))


def make_net() -> Net:
    torch.manual_seed(0)
    model = Net()
    with torch.no_grad():
        model.bn.running_mean.uniform_(-0.5, 0.5)
        model.bn.running_var.uniform_(0.5, 2.0)
    return model.eval()


def batch(n: int = 8, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 2, 8, 8, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def snn() -> dtif.SpikingNetwork:
    return dtif.convert(make_net(), batch())


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
# simulation inputs


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_input_raises_before_simulation(snn: dtif.SpikingNetwork, bad: float) -> None:
    calls: list[str] = []
    hooks = [
        part.register_forward_pre_hook(lambda m, a, name=name: calls.append(name))
        for name, part in (("static", snn.static), ("dynamic", snn.dynamic))
    ]
    try:
        x = batch()
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
        snn.simulate(batch(), num_steps)  # type: ignore[arg-type]  # deliberately bad


def test_evaluate_rejects_bad_num_steps(snn: dtif.SpikingNetwork) -> None:
    loader = [(batch(4), torch.zeros(4, dtype=torch.long))]
    with pytest.raises(dtif.InputError, match="num_steps"):
        dtif.evaluate(snn, loader, num_steps=0)


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
        dtif.convert(make_net(), calib)


@pytest.mark.parametrize(
    "calib",
    [torch.randn(4, 3, 8, 8), torch.randn(4, 2, 6, 6), torch.randn(4, 2, 8)],
    ids=["channels", "spatial size", "rank"],
)
def test_wrong_shape_calibration_raises(calib: torch.Tensor) -> None:
    with pytest.raises(dtif.CalibrationError, match="shape"):
        dtif.convert(make_net(), calib)


def test_calibration_batches_of_mixed_shapes_raise() -> None:
    with pytest.raises(dtif.CalibrationError):
        dtif.convert(make_net(), [batch(4), torch.randn(4, 3, 8, 8)])


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
        dtif.convert(make_net(), calib)


def test_calibration_accepts_tensors_pairs_loaders_and_iterators() -> None:
    x = batch(8)
    y = torch.zeros(8, dtype=torch.long)
    ref = dtif.convert(make_net(), x).simulate(x, 6).outputs

    def one_shot() -> Iterator[torch.Tensor]:
        yield x[:3]
        yield x[3:]

    for calib in (
        [x[:3], x[3:]],
        [(x[:3], y[:3]), (x[3:], y[3:])],
        DataLoader(TensorDataset(x, y), batch_size=3),
        one_shot(),
    ):
        out = dtif.convert(make_net(), calib).simulate(x, 6).outputs
        torch.testing.assert_close(out, ref)
    # a one-shot iterator also survives the two passes of a percentile norm
    norm = dtif.PercentileNorm(99.0)
    a = dtif.convert(make_net(), one_shot(), norm=norm).simulate(x, 6).outputs
    b = dtif.convert(make_net(), x, norm=norm).simulate(x, 6).outputs
    torch.testing.assert_close(a, b)


# ---------------------------------------------------------------------------------------------
# the user's model


def test_train_mode_model_converts_in_eval_mode_with_a_warning() -> None:
    model = make_net().train()
    before = snapshot(model)
    x = batch()
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
        dtif.convert(make_net(), batch())


@pytest.mark.parametrize("neuron", [dtif.IF(), dtif.DTIF(alpha=4.0, payload="graded", burst=2)])
@pytest.mark.parametrize("maxpool", ["error", "gate"])
def test_conversion_never_mutates_the_model(neuron: object, maxpool: str) -> None:
    model = make_net()
    if maxpool == "gate":
        model.pool = nn.MaxPool2d(2)  # type: ignore[assignment]  # swap the pool type
    x = batch()
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
    model = make_net()
    with torch.no_grad():
        model.conv2.weight[0, 0, 0, 0] = float("nan")
    with pytest.raises(dtif.ConversionError, match="NaN or Inf"):
        dtif.convert(model, batch())


def test_bad_neuron_argument_raises() -> None:
    with pytest.raises(dtif.InputError, match="neuron"):
        dtif.convert(make_net(), batch(), neuron="IF")  # type: ignore[arg-type]  # deliberately bad


def test_per_layer_alpha_length_is_checked() -> None:
    # Net has two spiking layers (the shared ReLU is called twice)
    dtif.convert(make_net(), batch(), neuron=dtif.DTIF(alpha=(1.0, 2.0)))
    with pytest.raises(dtif.InputError, match="per-layer alpha"):
        dtif.convert(make_net(), batch(), neuron=dtif.DTIF(alpha=(1.0, 2.0, 3.0)))
