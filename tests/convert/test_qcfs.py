"""Converting QCFS networks: exact at T = L with IF and v0 = 0.5, TrainedScale, clear errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import dtif
from dtif.convert import MaxNorm, TrainedScale
from dtif.convert.options import from_dict, to_dict
from dtif.errors import ConversionError, InputError
from dtif.methods import get_method
from dtif.models import create_model
from dtif.models.qcfs import QCFS, qcfs_modules


@pytest.mark.parametrize("levels", [1, 2, 4, 8])
def test_one_hidden_layer_is_exact_at_t_equals_l(levels: int) -> None:
    torch.manual_seed(levels)
    net = nn.Sequential(nn.Linear(6, 40), QCFS(levels, 1.7), nn.Linear(40, 3)).eval()
    x = torch.randn(64, 6) * 2
    snn = dtif.convert(net, x, neuron=dtif.IF(v0=0.5), norm=TrainedScale())
    with torch.no_grad():
        ann = net(x)
    # Constant input: after L steps an IF neuron with threshold lambda and V(0) = lambda / 2
    # has fired clip(floor(z L / lambda + 1/2), 0, L) times, which is the QCFS level.
    torch.testing.assert_close(snn(x, num_steps=levels), ann, rtol=0, atol=1e-5)
    assert (ann - net[2].bias).abs().amax() > 0.1  # the hidden layer does fire


def test_trained_scale_is_the_default_for_qcfs_networks() -> None:
    net = nn.Sequential(nn.Linear(4, 8), QCFS(4, 2.5), nn.Linear(8, 2))
    snn = dtif.convert(net.eval(), torch.randn(16, 4), neuron=dtif.IF(v0=0.5))
    assert snn.meta["norm"] == TrainedScale()
    relu = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)).eval()
    assert dtif.convert(relu, torch.randn(16, 4)).meta["norm"] == MaxNorm()


def test_qcfs_zoo_model_reference_ann_is_quantized() -> None:
    torch.manual_seed(0)
    model = create_model("cnn", width=0.125, activation="qcfs", levels=4).eval()
    for i, act in enumerate(qcfs_modules(model).values()):
        act.scale.data.fill_(0.5 + i)
    x = torch.randn(8, 1, 28, 28)
    snn = dtif.convert(model, x, neuron=dtif.IF(v0=0.5))
    with torch.no_grad():
        torch.testing.assert_close(snn.ann(x), model(x))
    scales = [float(n.scale) for n in snn.neurons()]
    assert scales == pytest.approx([0.5, 1.5, 2.5, 3.5])
    # Max and percentile norms still run on a QCFS network, on its quantized outputs.
    assert dtif.convert(model, x, norm=dtif.PercentileNorm(99.9)).meta["norm"].p == 99.9


def test_if_qcfs_on_a_relu_model_is_a_clear_error() -> None:
    relu = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)).eval()
    with pytest.raises(ConversionError, match="TrainedScale needs a QCFS network"):
        get_method("if-qcfs").build(relu, torch.randn(8, 4), "error", 8)


def test_trained_scale_round_trips_through_the_options_table() -> None:
    assert to_dict(TrainedScale()) == {"type": "TrainedScale", "channelwise": False}
    assert from_dict({"type": "TrainedScale"}, "norm", "test") == TrainedScale()
    with pytest.raises(InputError, match="one lambda per layer"):
        TrainedScale(channelwise=True)
