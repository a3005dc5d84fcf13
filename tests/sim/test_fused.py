"""The fused C++ IF loop (opt-in) is bit-identical to the eager loop, and falls back cleanly."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from torch import nn

import dtif
from dtif.errors import DtifError
from dtif.neurons import fused


@pytest.fixture
def kernel() -> Iterator[None]:
    """The kernel built and switched off again after the test; skip where it cannot build."""
    try:
        fused.enable(True)
    except DtifError as err:
        pytest.skip(str(err))
    fused.enable(False)
    yield
    fused.enable(False)


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(2, 6, 3, padding=1),
        nn.BatchNorm2d(6),
        nn.ReLU(),
        nn.Conv2d(6, 5, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(5 * 5 * 5, 12),
        nn.ReLU(),
        nn.Linear(12, 4),
    ).eval()


def _both(snn: dtif.SpikingNetwork, x: torch.Tensor, **kw: int) -> tuple[object, object]:
    fused.enable(False)
    ref = snn.simulate(x, 23, **kw)
    fused.enable(True)
    new = snn.simulate(x, 23, **kw)
    fused.enable(False)
    return ref, new


def _assert_identical(ref: dtif.SimulationResult, new: dtif.SimulationResult) -> None:
    assert torch.equal(ref.outputs, new.outputs)
    assert torch.equal(ref.synops, new.synops)
    assert ref.spikes.keys() == new.spikes.keys()
    for k in ref.spikes:
        assert torch.equal(ref.spikes[k], new.spikes[k])


@pytest.mark.parametrize("channelwise", [False, True])
@pytest.mark.parametrize("v0", [0.0, 0.5])
@pytest.mark.parametrize("chunks", [{}, {"time_chunk": 4, "batch_chunk": 3}])
def test_bit_identical_to_the_eager_loop(
    kernel: None, channelwise: bool, v0: float, chunks: dict[str, int]
) -> None:
    calib = torch.rand(16, 2, 10, 10, generator=torch.Generator().manual_seed(1))
    x = torch.rand(7, 2, 10, 10, generator=torch.Generator().manual_seed(2)) * 1.5
    snn = dtif.convert(
        _net(), calib, neuron=dtif.IF(v0=v0), norm=dtif.PercentileNorm(99.0, channelwise)
    )
    ref, new = _both(snn, x, **chunks)
    _assert_identical(ref, new)  # type: ignore[arg-type]
    assert float(ref.synops[-1]) > 0  # type: ignore[attr-defined]  # it did spike


@pytest.mark.parametrize("neuron", [dtif.IF(reset="zero"), dtif.IF(burst=2), dtif.DTIF(alpha=4)])
def test_other_neurons_run_the_eager_loop(kernel: None, neuron: object) -> None:
    calib = torch.rand(16, 2, 10, 10, generator=torch.Generator().manual_seed(1))
    snn = dtif.convert(_net(), calib, neuron=neuron)
    ref, new = _both(snn, calib[:5])
    _assert_identical(ref, new)  # type: ignore[arg-type]


def test_env_switch_warns_and_falls_back_when_it_cannot_build(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(fused, "_state", {"module": None, "error": "no compiler"})
    monkeypatch.setenv(fused.ENV_SWITCH, "1")
    with pytest.warns(UserWarning, match="no compiler"):
        assert not fused.enabled()
    with pytest.raises(DtifError, match="ninja"):
        fused.enable(True)
