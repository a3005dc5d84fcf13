"""`calibrate_biases`: layer-wise bias calibration of a converted network."""

from __future__ import annotations

import json
from functools import partial

import pytest
import torch
from torch import nn

import dtif
from dtif.calibrate.bias import bias_layers, calibrate_biases
from dtif.calibrate.layer_error import ann_activations
from dtif.errors import InputError
from dtif.methods import METHODS, Method, get_method


def _one_hidden() -> nn.Module:
    lin = nn.Linear(1, 2)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0], [0.0]]))
        lin.bias.copy_(torch.tensor([0.0, 0.3]))
    out = nn.Linear(2, 1)
    return nn.Sequential(lin, nn.ReLU(), out).eval()


def _first_layer_counts(snn: dtif.SpikingNetwork, x: torch.Tensor, steps: int) -> torch.Tensor:
    """The hidden layer's spike count per channel after `steps` steps, for the first image."""
    snn.profile(tuple(x.shape[1:]))  # its fan-out pass runs the layers too: before the hook
    out: list[torch.Tensor] = []
    handle = snn.neurons()[0].register_forward_hook(
        lambda _m, _a, y: out.append(y.clone()) and None
    )
    snn.simulate(x, steps, batch_chunk=x.shape[0], time_chunk=3, record=False)
    handle.remove()
    return torch.cat(out).view(steps, x.shape[0], -1).sum(0)[0]


def test_hand_trace_of_one_layer() -> None:
    # x = 1: the activations are (1.0, 0.3) and max norm sets lambda = 1. At T = 4, IF with
    # v0 = 0 fires 4 times on channel 0 (rate 1.0, exact) and once on channel 1 (V = 0.3, 0.6,
    # 0.9, 1.2): rate 0.25 against 0.3. Channel 1 gets 0.05 more input; channel 0 nothing.
    model = _one_hidden()
    x = torch.ones(3, 1)
    snn = dtif.convert(model, x, neuron=dtif.IF(), norm=dtif.MaxNorm())
    assert _first_layer_counts(snn, x, 3).tolist() == [3.0, 0.0]
    deltas = calibrate_biases(snn, x, 4)
    assert len(deltas) == 1
    assert deltas[0].tolist() == pytest.approx([0.0, 0.05], abs=1e-6)
    offset = snn.neurons()[0].input_offset
    assert offset is not None and offset.shape == (4, 2)
    assert torch.allclose(offset, torch.tensor([[0.0, 0.05]] * 4), atol=1e-6)
    (layer,) = bias_layers(snn)
    assert layer.bias.tolist() == pytest.approx([0.0, 0.3])  # the bias is left alone
    assert model[0].bias.tolist() == pytest.approx([0.0, 0.3])  # so is the user's model
    assert ann_activations(snn.ann, x)[0][0].tolist() == pytest.approx([1.0, 0.3])  # and the ANN
    assert snn.meta["bias_calibration"] == {"steps": 4, "persistent": False, "num_images": 3}
    # 0.35 a step: V = 0.35, 0.7, 1.05 -> spike: one spike by T = 3 (rate 1/3, not 0).
    assert _first_layer_counts(snn, x, 3).tolist() == [3.0, 1.0]
    # After step 4 the input is 0.3 again: V(4) = 0.4, then 0.7, 1.0 -> spike, 0.3, 0.6, 0.9,
    # 1.2 -> spike: 3 spikes by T = 10 (with 0.35 throughout it would be 4: V(10) = 3.5).
    assert _first_layer_counts(snn, x, 10).tolist() == [10.0, 3.0]


def test_persistent_mode_moves_the_bias() -> None:
    model = _one_hidden()
    x = torch.ones(3, 1)
    snn = dtif.convert(model, x, neuron=dtif.IF(), norm=dtif.MaxNorm())
    calibrate_biases(snn, x, 4, persistent=True)
    (layer,) = bias_layers(snn)
    assert layer.bias.tolist() == pytest.approx([0.0, 0.35], abs=1e-6)
    assert snn.neurons()[0].input_offset is None
    assert _first_layer_counts(snn, x, 10).tolist() == [10.0, 3.0]  # floor(3.5)


def _mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 3)
    ).eval()


def _mean_channel_error(snn: dtif.SpikingNetwork, x: torch.Tensor, steps: int) -> list[float]:
    acts = ann_activations(snn.ann, x)
    snn.profile(tuple(x.shape[1:]))  # its fan-out pass runs the layers too: before the hooks
    sums = [torch.zeros_like(a) for a in acts]

    def keep(i: int, _m: nn.Module, _a: object, y: torch.Tensor) -> None:  # None: y unchanged
        sums[i] += y.view(-1, *acts[i].shape).sum(0)

    handles = [m.register_forward_hook(partial(keep, i)) for i, m in enumerate(snn.neurons())]
    snn.simulate(x, steps, batch_chunk=x.shape[0], record=False)
    for h in handles:
        h.remove()
    return [float((a - s / steps).mean(0).abs().mean()) for a, s in zip(acts, sums)]


def test_mean_error_per_channel_falls_in_every_layer() -> None:
    model = _mlp()
    x = torch.rand(128, 8)
    snn = dtif.convert(model, x, neuron=dtif.IF(), norm=dtif.MaxNorm())
    before = _mean_channel_error(snn, x, 4)
    calibrate_biases(snn, x, 4, num_images=128)
    after = _mean_channel_error(snn, x, 4)
    assert all(a < 0.5 * b for a, b in zip(after, before)), (before, after)


class _Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 4, 3, padding=1)
        self.conv = nn.Conv2d(4, 4, 3, padding=1)
        self.head = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.stem(x))
        h = torch.relu(self.conv(h) + h)
        return self.head(h.mean(dim=(2, 3)))


def test_residual_add_finds_the_branch_conv() -> None:
    torch.manual_seed(1)
    model = _Residual().eval()
    x = torch.rand(16, 1, 6, 6)
    snn = dtif.convert(model, x, neuron=dtif.IF(v0=0.5), norm=dtif.MaxNorm())
    layers = bias_layers(snn)
    assert [lay.bias.shape for lay in layers] == [torch.Size([4]), torch.Size([4])]
    assert layers[0] is not layers[1]
    old = [lay.bias.detach().clone() for lay in layers]
    deltas = calibrate_biases(snn, x, 2, persistent=True)
    for lay, b, d in zip(layers, old, deltas):
        assert torch.allclose(lay.bias.detach(), b + d, atol=1e-6)


def test_a_layer_without_bias_is_refused() -> None:
    model = nn.Sequential(nn.Linear(4, 3, bias=False), nn.ReLU(), nn.Linear(3, 2)).eval()
    x = torch.rand(8, 4)
    snn = dtif.convert(model, x)
    with pytest.raises(InputError, match="bias=True"):
        calibrate_biases(snn, x, 4, persistent=True)
    calibrate_biases(snn, x, 4)  # an input offset needs no bias
    assert snn.neurons()[0].input_offset is not None


@pytest.mark.parametrize("steps", [0, -1, 2.5, True])
def test_bad_steps_are_refused(steps: object) -> None:
    model = _mlp()
    x = torch.rand(8, 8)
    snn = dtif.convert(model, x)
    with pytest.raises(InputError, match="integer >= 1"):
        calibrate_biases(snn, x, steps)  # type: ignore[arg-type]


def test_the_network_saves_and_loads_with_its_biases(tmp_path) -> None:  # noqa: ANN001
    from dtif.checkpoint import load_snn, save_snn
    from dtif.models import ModelSpec

    spec = ModelSpec("cnn", in_channels=1, num_classes=10, image_size=28, width=0.25)
    model = spec.build().eval()
    x = torch.rand(16, 1, 28, 28)
    snn = dtif.convert(model, x, neuron=dtif.IF(v0=0.5), norm=dtif.MaxNorm())
    calibrate_biases(snn, x, 4)
    path = save_snn(tmp_path / "snn.pt", snn, spec, method="if-bias")
    back = load_snn(path)
    assert back.meta["bias_calibration"] == {"steps": 4, "persistent": False, "num_images": 16}
    assert all(
        torch.equal(a.input_offset, b.input_offset)  # type: ignore[arg-type]
        for a, b in zip(back.neurons(), snn.neurons())
    )
    assert torch.equal(back.simulate(x, 6).outputs, snn.simulate(x, 6).outputs)


def test_a_method_with_bias_steps(tmp_path) -> None:  # noqa: ANN001
    base = METHODS["if-p99.9-v0.5"]
    spec = {**base.to_dict(), "name": "if-bias4", "bias_steps": 4}
    path = tmp_path / "m.json"
    path.write_text(json.dumps(spec))
    method = get_method(str(path))
    assert method.bias_steps == 4
    assert method.to_dict()["bias_steps"] == 4
    model = _mlp()
    x = torch.rand(32, 8)
    snn = method.build(model, x, "error", target_steps=2)
    plain = base.build(model, x, "error", target_steps=2)
    assert snn.meta["bias_calibration"]["steps"] == 4
    assert all(m.input_offset is not None for m in snn.neurons())
    assert all(m.input_offset is None for m in plain.neurons())
    path.write_text(json.dumps({**spec, "bias_steps": 0}))
    with pytest.raises(InputError, match="bias_steps"):
        get_method(str(path))


def test_methods_without_bias_steps_leave_it_out() -> None:
    assert all("bias_steps" not in m.to_dict() for m in METHODS.values() if m.bias_steps is None)
    assert Method("x", dtif.IF(), dtif.MaxNorm(), "x").bias_steps is None
