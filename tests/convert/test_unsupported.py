"""Unsupported ops fail loudly, all at once; the max-pool policies."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import dtif
from dtif.nn.layers import SpikeMaxPool


def offender_lines(err: pytest.ExceptionInfo[dtif.UnsupportedOpsError]) -> list[str]:
    return [line for line in str(err.value).splitlines() if line.startswith("- ")]


class GeluSigmoid(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3)
        self.act = nn.GELU()
        self.fc = nn.Linear(4 * 3 * 3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.conv(x))
        return torch.sigmoid(self.fc(x.flatten(1)))


class LayerNormMax(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3)
        self.norm = nn.LayerNorm([4, 3, 3])
        self.fc = nn.Linear(3 * 3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.norm(self.conv(x)))
        x = torch.amax(x, dim=1)  # max along a dim
        return self.fc(x.flatten(1))


def test_two_unsupported_ops_raise_one_error_naming_both() -> None:
    model = GeluSigmoid().eval()
    with pytest.raises(dtif.UnsupportedOpsError) as err:
        dtif.convert(model, torch.randn(8, 2, 5, 5))
    lines = offender_lines(err)
    assert len(lines) == 2, str(err.value)
    message = str(err.value)
    assert "2 operation(s)" in message
    # the GELU module: node name, op, type and module path; the sigmoid function by name
    assert "GELU" in lines[0] and "call_module" in lines[0] and "(module act)" in lines[0]
    assert "sigmoid" in lines[1] and "call_function" in lines[1]
    assert all("Fix:" in line for line in lines)


def test_layernorm_and_max_along_dim_named_together() -> None:
    with pytest.raises(dtif.UnsupportedOpsError) as err:
        dtif.convert(LayerNormMax().eval(), torch.randn(8, 2, 5, 5))
    lines = offender_lines(err)
    assert len(lines) == 2, str(err.value)
    assert "LayerNorm" in lines[0] and "(module norm)" in lines[0]
    assert "amax" in lines[1]


def test_torch_max_with_dim_is_reported() -> None:
    class MaxDim(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.max(torch.relu(x), dim=1)[0]

    with pytest.raises(dtif.UnsupportedOpsError) as err:
        dtif.convert(MaxDim().eval(), torch.randn(4, 3, 5))
    assert any("max" in line for line in offender_lines(err))


def test_unknown_leaf_module_is_reported_with_its_path() -> None:
    class Custom(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * torch.sigmoid(x)  # a gate: the product of two tensors

    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Sequential(nn.Tanh(), nn.Linear(4, 2)))
    with pytest.raises(dtif.UnsupportedOpsError) as err:
        dtif.convert(model.eval(), torch.randn(4, 4))
    (line,) = offender_lines(err)
    assert "Tanh" in line and "(module 2.0)" in line
    # a custom module traces through to its ops: the multiply is the offender
    with pytest.raises(dtif.UnsupportedOpsError, match="mul"):
        model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), Custom()).eval()
        dtif.convert(model, torch.randn(4, 4))


def test_untraceable_model_is_an_unsupported_ops_error() -> None:
    class Branchy(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if x.sum() > 0:  # data-dependent control flow
                return self.fc(x)
            return self.fc(-x)

    with pytest.raises(dtif.UnsupportedOpsError, match="could not trace"):
        dtif.convert(Branchy().eval(), torch.randn(4, 4))


def test_unsupported_error_leaves_model_untouched() -> None:
    model = GeluSigmoid().eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(dtif.UnsupportedOpsError):
        dtif.convert(model, torch.randn(8, 2, 5, 5))
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert isinstance(model.act, nn.GELU)


# ---------------------------------------------------------------------------------------------
# max-pool policies


class MaxPoolNet(nn.Module):
    """conv-ReLU-maxpool-conv-ReLU-maxpool(functional)-FC."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(2, 4, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 2 * 2, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(F.relu(self.conv1(x)))
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc(x.flatten(1))


def maxpool_case() -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    return MaxPoolNet().eval(), torch.randn(32, 2, 8, 8, generator=gen)


def test_maxpool_default_raises_naming_both_options() -> None:
    model, x = maxpool_case()
    with pytest.raises(dtif.UnsupportedOpsError) as err:
        dtif.convert(model, x)
    lines = offender_lines(err)
    assert len(lines) == 2  # the module and the functional max-pool, in one error
    assert "MaxPool2d" in lines[0] and "(module pool)" in lines[0]
    assert "max_pool2d" in lines[1]
    for line in lines:
        assert "maxpool='avg'" in line and "maxpool='gate'" in line


def test_maxpool_unknown_policy_rejected() -> None:
    model, x = maxpool_case()
    with pytest.raises(dtif.InputError, match="maxpool"):
        dtif.convert(model, x, maxpool="min")  # type: ignore[arg-type]  # deliberately bad


def test_maxpool_avg_converts_to_average_pooling() -> None:
    model, x = maxpool_case()
    snn = dtif.convert(model, x, maxpool="avg")
    pools = [m for m in snn.ann.modules() if isinstance(m, nn.AvgPool2d)]
    assert len(pools) == 2
    assert not any(isinstance(m, nn.MaxPool2d) for m in snn.modules())
    # the reference ANN is the swapped one, and the SNN approaches it
    with torch.no_grad():
        ann = snn.ann(x)
        h = F.avg_pool2d(F.relu(model.conv1(x)), 2)
        swapped = F.avg_pool2d(F.relu(model.conv2(h)), 2)
        torch.testing.assert_close(ann, model.fc(swapped.flatten(1)))
    num_steps = 512
    out = snn.simulate(x, num_steps, time_chunk=128, record=False).outputs[-1] / num_steps
    assert (out - ann).abs().max() <= 0.02 * ann.abs().max()


def test_maxpool_gate_converts_and_matches_max_at_long_t() -> None:
    # The gate passes the spikes of the unit with the largest accumulated output, so its rate
    # converges to the window max. Looser than IF alone: the gate picks its unit online, and
    # early picks can be wrong. Tolerance 3% of max |logit| at T = 1024.
    model, x = maxpool_case()
    snn = dtif.convert(model, x, maxpool="gate")
    gates = [m for m in snn.modules() if isinstance(m, SpikeMaxPool)]
    assert len(gates) == 2
    with torch.no_grad():
        logits = model(x)
        torch.testing.assert_close(snn.ann(x), logits)  # the ANN keeps its max-pools
    num_steps = 1024
    res = snn.simulate(x, num_steps, time_chunk=128)
    out = res.outputs[-1] / num_steps
    assert (out - logits).abs().max() <= 0.03 * logits.abs().max()
    agree = (out.argmax(1) == logits.argmax(1)).double().mean()
    assert agree >= 0.95
    # the gates are recorded as layers too (spikes passed, and their synaptic events)
    assert set(res.spikes) == {*snn.spiking_layer_names(), *(g.layer_name for g in gates)}


def test_maxpool_gate_rate_is_the_window_max() -> None:
    # Two units in one window, inputs 0.49 and 0.5 (lambda = 1): they spike at different
    # steps and their counts keep tying. The gate must pass the max rate 0.5 (within 1/T), not
    # the spikes of both units (which would give up to 1).
    for window in (2, 4):
        gen = torch.Generator().manual_seed(window)
        x = torch.rand(300, 1, 1, window, generator=gen)
        x[0, 0, 0, :2] = torch.tensor([0.49, 0.5])
        calib = torch.ones(1, 1, 1, window)
        model = nn.Sequential(nn.ReLU(), nn.MaxPool2d((1, window)), nn.Flatten()).eval()
        snn = dtif.convert(model, calib, maxpool="gate")
        num_steps = 500
        out = snn.simulate(x, num_steps, record=False).outputs[-1] / num_steps
        expected = x.flatten(1).amax(dim=1, keepdim=True)
        assert (out - expected).abs().max() <= 1.0 / num_steps + 1e-6
