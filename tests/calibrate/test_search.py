"""`calibrate_dtif`, DTIF's per-layer search of alpha and v0, on a tiny network."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from dtif.calibrate import ALPHA_GRID, V0_GRID, calibrate_dtif
from dtif.errors import InputError
from dtif.neurons import DTIFParams, IFParams
from dtif.nn.neuron import SpikingNeuron
from tests.helpers.nets import calibration_images, calibration_net


def _calibrate(seed: int = 0, **kw: Any) -> Any:
    return calibrate_dtif(
        calibration_net(), calibration_images(), target_steps=2, num_images=16, seed=seed, **kw
    )


def test_returns_valid_per_layer_values() -> None:
    cal = _calibrate()
    neurons = [m for m in cal.snn.layers() if isinstance(m, SpikingNeuron)]
    assert len(cal.alpha) == len(cal.v0) == len(neurons) == 2
    assert all(a in ALPHA_GRID for a in cal.alpha)
    assert all(v in V0_GRID for v in cal.v0)
    for m, a, v in zip(neurons, cal.alpha, cal.v0):  # the network runs with what it reports
        assert isinstance(m.params, DTIFParams)
        assert (m.params.alpha, m.params.v0) == (a, v)
    assert cal.snn.meta["neuron"].alpha == cal.alpha
    assert 0.0 <= cal.loss < float("inf")
    assert len(cal.history) == 2 * len(ALPHA_GRID) * len(V0_GRID)
    # The greedy search never ends worse than the best candidate of the last layer it tried.
    last = [h["loss"] for h in cal.history if h["layer"] == neurons[-1].layer_name]
    assert cal.loss == pytest.approx(min(last))


def test_search_never_ends_above_its_start() -> None:
    """It starts from IF with v0 = 0.5 everywhere, a grid point, so it can only improve on it."""
    cal = _calibrate()
    first = cal.history[0]["layer"]
    start = [
        h["loss"]
        for h in cal.history
        if h["layer"] == first and (h["alpha"], h["v0"]) == (0.0, 0.5)
    ]
    assert len(start) == 1 and cal.loss <= start[0] + 1e-9
    own = _calibrate(start=None)  # from the base's values: a different path, same grid
    assert all(a in ALPHA_GRID for a in own.alpha)


def test_signed_base_searches_signed_neurons(monkeypatch: pytest.MonkeyPatch) -> None:
    import dtif.calibrate.search as search

    tried: list[bool] = []
    real = search._loss

    def spy(snn: Any, *args: Any) -> Any:
        tried.extend(m.params.signed for m in snn.neurons())
        return real(snn, *args)

    monkeypatch.setattr(search, "_loss", spy)
    cal = _calibrate(base=DTIFParams(signed=True, theta_neg=0.25))
    assert tried and all(tried)  # every candidate was measured with signed neurons
    assert cal.snn.meta["neuron"].signed and cal.snn.meta["neuron"].theta_neg == 0.25
    assert all(m.params.signed for m in cal.snn.neurons())


def test_deterministic_with_a_seed() -> None:
    a, b = _calibrate(seed=3), _calibrate(seed=3)
    assert (a.alpha, a.v0, a.loss) == (b.alpha, b.v0, b.loss)
    assert [h["loss"] for h in a.history] == [h["loss"] for h in b.history]


def test_alpha_grid_zero_is_if() -> None:
    cal = _calibrate(alpha_grid=(0.0,))
    assert set(cal.alpha) == {0.0}
    x = calibration_images(4, seed=7)
    neurons = [m for m in cal.snn.layers() if isinstance(m, SpikingNeuron)]
    out = cal.snn.simulate(x, 6).outputs
    for m, v in zip(neurons, cal.v0):  # DTIF with alpha 0 is IF, bit for bit
        m.params = IFParams(v0=v)
    assert torch.equal(cal.snn.simulate(x, 6).outputs, out)


def test_bad_arguments() -> None:
    with pytest.raises(InputError, match="target_steps"):
        calibrate_dtif(calibration_net(), calibration_images(), target_steps=0)
    with pytest.raises(InputError, match="alpha_grid"):
        calibrate_dtif(calibration_net(), calibration_images(), alpha_grid=())


def test_dynamic_steps_grid_keeps_the_lowest_loss() -> None:
    plain = _calibrate(base=DTIFParams(signed=True, theta_neg=0.25))
    cal = _calibrate(base=DTIFParams(signed=True, theta_neg=0.25), dynamic_steps_grid=(1, 2, 3))
    assert (cal.alpha, cal.v0) == (plain.alpha, plain.v0)  # the same search first
    tried = {h["dynamic_steps"]: h["loss"] for h in cal.history if h["layer"] == "*"}
    assert set(tried) == {None, 1, 2, 3}
    assert tried[None] == pytest.approx(plain.loss)
    k = cal.snn.meta["neuron"].dynamic_steps
    assert cal.loss == tried[k] == min(tried.values())
    assert all(m.params.dynamic_steps == k for m in cal.snn.neurons())
    with pytest.raises(InputError, match="dynamic_steps"):
        _calibrate(dynamic_steps_grid=(0,))


def test_spread_grid_keeps_the_lowest_loss() -> None:
    base = DTIFParams(signed=True, theta_neg=0.25)
    plain = _calibrate(base=base)
    cal = _calibrate(base=base, spread_grid=(0.25, 1.0))
    assert (cal.alpha, cal.v0) == (plain.alpha, plain.v0)  # the same search first
    tried = {h["v0_spread"]: h["loss"] for h in cal.history if h["layer"] == "*"}
    assert set(tried) == {0.0, 0.25, 1.0}
    assert tried[0.0] == pytest.approx(plain.loss)
    spread = cal.snn.meta["neuron"].v0_spread
    assert cal.loss == tried[spread] == min(tried.values())
    assert all(m.params.v0_spread == spread for m in cal.snn.neurons())


def test_bad_spread_grid_is_refused_before_the_search(monkeypatch: pytest.MonkeyPatch) -> None:
    import dtif.calibrate.search as search

    def never(*args: Any) -> Any:
        raise AssertionError("the search ran")

    monkeypatch.setattr(search, "_loss", never)
    for bad in ((0.5, 1.5), (-0.25,), (True,)):
        with pytest.raises(InputError, match="spread_grid"):
            _calibrate(spread_grid=bad)


def test_theta_input_grid_keeps_the_lowest_loss() -> None:
    base = DTIFParams(signed=True, theta_neg=0.25)
    plain = _calibrate(base=base)
    cal = _calibrate(base=base, theta_input_grid=("mean",))
    assert (cal.alpha, cal.v0) == (plain.alpha, plain.v0)  # the same search first
    tried = {h["theta_input"]: h["loss"] for h in cal.history if "theta_input" in h}
    assert set(tried) == {"present", "mean"}
    assert tried["present"] == pytest.approx(plain.loss)
    rule = cal.snn.meta["neuron"].theta_input
    assert cal.loss == tried[rule] == min(tried.values())
    assert all(m.params.theta_input == rule for m in cal.snn.neurons())
    with pytest.raises(InputError, match="theta_input_grid"):
        _calibrate(theta_input_grid=("median",))
