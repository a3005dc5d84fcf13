"""The QCFS activation: forward values, the straight-through gradient, the zoo, swapping ReLUs."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dtif.errors import InputError
from dtif.models import create_model
from dtif.models.qcfs import QCFS, qcfs, qcfs_modules, quantized_to, swap_relu


def test_forward_values_by_hand() -> None:
    # lambda = 2, L = 4: steps of 0.5; z * L / lambda + 1/2 = 2z + 0.5, floored, clipped to [0, 4].
    act = QCFS(levels=4, init_scale=2.0)
    z = torch.tensor([-1.0, 0.0, 0.24, 0.26, 0.74, 0.76, 1.0, 1.9, 2.0, 5.0])
    expected = torch.tensor([0.0, 0.0, 0.0, 0.5, 0.5, 1.0, 1.0, 2.0, 2.0, 2.0])
    assert torch.equal(act(z), expected)


def test_forward_matches_the_formula() -> None:
    z = torch.linspace(-3, 12, 301)
    scale, levels = torch.tensor(7.3), 8
    out = qcfs(z, scale, levels)
    formula = scale / levels * torch.clamp(torch.floor(z * levels / scale + 0.5), 0, levels)
    torch.testing.assert_close(out, formula)
    assert len(out.unique()) == levels + 1  # 0, lambda/L, ..., lambda


def test_straight_through_gradient() -> None:
    # d/dz is 1 inside [0, lambda] (the floor passes straight through), 0 outside.
    act = QCFS(levels=4, init_scale=2.0)
    z = torch.tensor([-1.0, 0.1, 0.3, 1.0, 1.7, 2.5, 9.0], requires_grad=True)
    act(z).sum().backward()
    assert z.grad is not None
    assert torch.equal(z.grad, torch.tensor([0.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0]))


def test_scale_gradient() -> None:
    # Inside the clip, out = s/L * (round-like term) with the floor straight-through:
    # d out / d s = (floor(zL/s + 1/2) - zL/s) / L; above the clip, out = s, gradient 1.
    s, levels = 2.0, 4
    act = QCFS(levels, s)
    z = torch.tensor([0.3, 0.9, 5.0])
    act(z).sum().backward()
    x = z * levels / s
    inside = (torch.floor(x[:2] + 0.5) - x[:2]) / levels
    assert act.scale.grad is not None
    torch.testing.assert_close(act.scale.grad, inside.sum() + 1.0)


@pytest.mark.parametrize("levels", [0, -3, 2.5, True, None, "8"])
def test_bad_levels(levels: object) -> None:
    with pytest.raises(InputError, match="levels must be an int >= 1"):
        QCFS(levels)  # type: ignore[arg-type]  # bad on purpose


@pytest.mark.parametrize("scale", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_scale(scale: float) -> None:
    with pytest.raises(InputError, match="scale"):
        QCFS(4, scale)


@pytest.mark.parametrize(
    ("name", "kw", "count"),
    [("cnn", {}, 4), ("vgg16", {"width": 0.125}, 13), ("resnet20", {"width": 0.25}, 19)],
)
def test_zoo_builds_qcfs_models(name: str, kw: dict[str, float], count: int) -> None:
    model = create_model(name, activation="qcfs", levels=4, **kw)
    assert len(qcfs_modules(model)) == count
    assert not any(isinstance(m, nn.ReLU) for m in model.modules())
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_zoo_activation_errors() -> None:
    with pytest.raises(InputError, match="needs levels"):
        create_model("cnn", activation="qcfs")
    with pytest.raises(InputError, match="levels must be an int >= 1"):
        create_model("cnn", activation="qcfs", levels=0)
    with pytest.raises(InputError, match="activation must be one of"):
        create_model("cnn", activation="gelu")
    with pytest.raises(InputError, match="a ReLU has no levels"):
        create_model("cnn", levels=4)


def test_swap_relu_modules_only() -> None:
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc1, self.fc2 = nn.Linear(3, 4), nn.Linear(4, 2)
            self.act = nn.ReLU()
            self.seq = nn.Sequential(nn.Linear(2, 2), self.act)  # the same ReLU object

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.seq(self.fc2(torch.relu(self.fc1(x))))

    net = Net()
    names = swap_relu(net, 8, {"act": 3.0, "seq.1": 3.0})
    assert sorted(names) == ["act", "seq.1"]
    assert isinstance(net.act, QCFS) and net.seq[1] is net.act  # still one shared module
    assert net.act.scale.item() == 3.0
    with pytest.raises(InputError, match="no nn.ReLU submodule"):
        swap_relu(nn.Sequential(nn.Linear(2, 2)), 8, 1.0)
    with pytest.raises(InputError, match="no QCFS scale given"):
        swap_relu(nn.Sequential(nn.Linear(2, 2), nn.ReLU()), 8, {})


def test_quantized_to_sets_and_restores_the_levels() -> None:
    shared = QCFS(8, 2.0)
    model = nn.Sequential(shared, nn.Identity(), QCFS(4, 1.0), shared)  # one QCFS used twice
    z = torch.linspace(-0.5, 2.5, 41)
    with quantized_to(model, 2):
        assert [m.levels for m in (model[0], model[2])] == [2, 2]
        assert torch.equal(
            model(z), qcfs(qcfs(qcfs(z, shared.scale, 2), torch.tensor(1.0), 2), shared.scale, 2)
        )
    assert [model[0].levels, model[2].levels] == [8, 4]
    with pytest.raises(RuntimeError), quantized_to(model, 3):
        raise RuntimeError("inside")
    assert [model[0].levels, model[2].levels] == [8, 4]
    with pytest.raises(InputError, match="levels must be an int >= 1"), quantized_to(model, 0):
        pass
    assert [model[0].levels, model[2].levels] == [8, 4]
