"""Model zoo: every registered model builds, runs, traces, and stays conversion-friendly."""

from __future__ import annotations

import pytest
import torch
from torch import fx, nn

from dtif.errors import InputError
from dtif.models import ModelSpec, create_model, model_names, register_model

TINY_WIDTH = 0.125
INPUTS = [(1, 28), (3, 32), (1, 8)]  # (in_channels, image_size)
EXPECTED = {"cnn", "vgg11", "vgg16", "resnet18", "resnet20"}


def test_registry_lists_all_models() -> None:
    assert set(model_names()) >= EXPECTED
    assert model_names() == sorted(model_names())


@pytest.mark.parametrize("name", sorted(EXPECTED))
@pytest.mark.parametrize(("in_channels", "image_size"), INPUTS)
def test_forward_shape(name: str, in_channels: int, image_size: int) -> None:
    torch.manual_seed(0)
    model = create_model(
        name, num_classes=7, in_channels=in_channels, image_size=image_size, width=TINY_WIDTH
    )
    model.eval()
    with torch.no_grad():
        out = model(torch.randn(2, in_channels, image_size, image_size))
    assert out.shape == (2, 7)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_symbolic_trace_matches_eager(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name, in_channels=3, image_size=32, width=TINY_WIDTH).eval()
    traced = fx.symbolic_trace(model)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(traced(x), model(x))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_conversion_friendly_modules(name: str) -> None:
    model = create_model(name, width=TINY_WIDTH)
    banned = (nn.MaxPool1d, nn.MaxPool2d, nn.AdaptiveMaxPool2d, nn.GELU, nn.SiLU, nn.Sigmoid)
    banned += (nn.Tanh, nn.LeakyReLU, nn.ReLU6, nn.ELU, nn.Hardswish)
    for path, mod in model.named_modules():
        assert not isinstance(mod, banned), f"{path}: {type(mod).__name__}"
        if isinstance(mod, nn.ReLU):
            assert not mod.inplace, path


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_relu_used_once_and_bn_follows_conv(name: str) -> None:
    model = create_model(name, width=TINY_WIDTH)
    graph = fx.symbolic_trace(model).graph
    modules = dict(model.named_modules())
    relu_calls = [
        n.target
        for n in graph.nodes
        if n.op == "call_module" and isinstance(modules[str(n.target)], nn.ReLU)
    ]
    assert len(relu_calls) == len(set(relu_calls)), "a ReLU module is shared between call sites"
    for node in graph.nodes:
        if node.op == "call_module" and isinstance(modules[str(node.target)], nn.BatchNorm2d):
            (prev,) = node.all_input_nodes
            assert prev.op == "call_module"
            assert isinstance(modules[str(prev.target)], nn.Conv2d), node.name
            assert len(prev.users) == 1, f"{prev.name} output is shared; BN cannot be folded"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_deterministic_under_seed(name: str) -> None:
    torch.manual_seed(123)
    a = create_model(name, width=TINY_WIDTH)
    torch.manual_seed(123)
    b = create_model(name, width=TINY_WIDTH)
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert ka == kb
        assert torch.equal(va, vb), ka


def test_width_scales_channels_and_keeps_one() -> None:
    def count(m: nn.Module) -> int:
        return sum(p.numel() for p in m.parameters())

    assert count(create_model("resnet20", width=0.5)) < count(create_model("resnet20"))
    tiny = create_model("cnn", width=1e-3)
    convs = [m for m in tiny.modules() if isinstance(m, nn.Conv2d)]
    assert all(c.out_channels == 1 for c in convs)


def test_parameter_counts_at_width_one() -> None:
    # Cheap models only; the docstrings record the large ones.
    cnn = create_model("cnn")
    r20 = create_model("resnet20")
    assert sum(p.numel() for p in cnn.parameters()) == 861_546
    assert sum(p.numel() for p in r20.parameters()) == 272_186


def test_unknown_name_lists_valid_names() -> None:
    with pytest.raises(InputError, match="resnet20"):
        create_model("resnet999")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"num_classes": 0},
        {"in_channels": 0},
        {"image_size": -1},
        {"width": 0.0},
        {"width": float("nan")},
        {"num_classes": True},
        {"not_an_arg": 1},
        {"dropout": 1.5},
    ],
)
def test_bad_arguments_raise_input_error(kwargs: dict[str, object]) -> None:
    with pytest.raises(InputError):
        create_model("cnn", **kwargs)  # type: ignore[arg-type]  # deliberately bad values


def test_cnn_rejects_too_small_image() -> None:
    with pytest.raises(InputError, match="image_size"):
        create_model("cnn", image_size=3)


def test_duplicate_registration_raises() -> None:
    def cnn(*, num_classes: int, in_channels: int, image_size: int, width: float) -> nn.Module:
        return nn.Identity()

    with pytest.raises(InputError, match="already registered"):
        register_model(cnn)


def test_model_spec_round_trip() -> None:
    spec = ModelSpec(
        "vgg11",
        num_classes=5,
        in_channels=3,
        image_size=32,
        width=TINY_WIDTH,
        kwargs={"dropout": 0.1},
    )
    again = ModelSpec.from_dict(spec.to_dict())
    assert again == spec
    torch.manual_seed(0)
    a = spec.build()
    torch.manual_seed(0)
    b = again.build()
    assert a.state_dict().keys() == b.state_dict().keys()
    assert all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())
    with pytest.raises(TypeError):
        spec.kwargs["dropout"] = 0.3  # type: ignore[index]  # read-only mapping
    with pytest.raises(InputError):
        ModelSpec.from_dict({"name": "cnn", "bogus": 1})
