"""`calibrate_dtif` and the calibrated methods (`dtif-auto`, `if-auto`) on a tiny network."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from dtif.calibrate import ALPHA_GRID, V0_GRID, calibrate_dtif
from dtif.errors import InputError
from dtif.methods import METHODS, get_method
from dtif.neurons import DTIFParams, IFParams
from dtif.nn.neuron import SpikingNeuron
from dtif.report.compare import compare_methods


def _net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.ReLU(),
        nn.AvgPool2d(2),
        nn.Flatten(),
        nn.Linear(4 * 4 * 4, 16),
        nn.ReLU(),
        nn.Linear(16, 3),
    ).eval()


def _calib(n: int = 24, seed: int = 1) -> torch.Tensor:
    return torch.rand(n, 1, 8, 8, generator=torch.Generator().manual_seed(seed))


def _calibrate(seed: int = 0, **kw: Any) -> Any:
    return calibrate_dtif(_net(), _calib(), target_steps=2, num_images=16, seed=seed, **kw)


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


def test_deterministic_with_a_seed() -> None:
    a, b = _calibrate(seed=3), _calibrate(seed=3)
    assert (a.alpha, a.v0, a.loss) == (b.alpha, b.v0, b.loss)
    assert [h["loss"] for h in a.history] == [h["loss"] for h in b.history]


def test_alpha_grid_zero_is_if() -> None:
    cal = _calibrate(alpha_grid=(0.0,))
    assert set(cal.alpha) == {0.0}
    x = _calib(4, seed=7)
    neurons = [m for m in cal.snn.layers() if isinstance(m, SpikingNeuron)]
    out = cal.snn.simulate(x, 6).outputs
    for m, v in zip(neurons, cal.v0):  # DTIF with alpha 0 is IF, bit for bit
        m.params = IFParams(v0=v)
    assert torch.equal(cal.snn.simulate(x, 6).outputs, out)


def test_bad_arguments() -> None:
    with pytest.raises(InputError, match="target_steps"):
        calibrate_dtif(_net(), _calib(), target_steps=0)
    with pytest.raises(InputError, match="alpha_grid"):
        calibrate_dtif(_net(), _calib(), alpha_grid=())


class _Tracked:
    """A test loader that counts how often it is iterated."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.batches = [(x, y)]
        self.reads = 0

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        self.reads += 1
        return iter(self.batches)


def test_calibrated_methods_never_read_the_test_loader(monkeypatch: pytest.MonkeyPatch) -> None:
    import dtif.methods

    seen: list[int] = []
    real = dtif.methods.calibrate_dtif

    def spy(model: nn.Module, calib: object, **kw: Any) -> Any:
        seen.append(loader.reads)
        assert torch.equal(torch.as_tensor(calib), calib_x)  # only the calibration images
        return real(model, calib, **kw)

    monkeypatch.setattr(dtif.methods, "calibrate_dtif", spy)
    calib_x = _calib()
    gen = torch.Generator().manual_seed(5)
    loader = _Tracked(torch.rand(10, 1, 8, 8, generator=gen), torch.randint(0, 3, (10,)))
    results = compare_methods(
        _net(),
        calib_x,
        loader,
        [METHODS["if-max"], METHODS["dtif-auto"], METHODS["if-auto"]],
        num_steps=8,
        num_test=10,
        progress=False,
        log=lambda _: None,
    )
    assert seen == [1, 2]  # each calibration ran before that method's evaluation
    # The chosen values do not depend on the test data: another test set, same choice.
    other = _Tracked(torch.rand(10, 1, 8, 8, generator=gen), torch.randint(0, 3, (10,)))
    again = compare_methods(
        _net(), calib_x, other, [METHODS["dtif-auto"]], 8, 10, progress=False, log=lambda _: None
    )
    used = results["methods"]["dtif-auto"]["neuron_used"]
    assert again["methods"]["dtif-auto"]["neuron_used"] == used
    assert set(results["methods"]["if-auto"]["neuron_used"]["alpha"]) == {0.0}


def test_alpha_grid_in_a_spec_file(tmp_path: Path) -> None:
    spec = {
        "name": "mine",
        "neuron": {"type": "DTIF", "alpha": 4.0},
        "norm": {"type": "PercentileNorm", "p": 99.9},
        "auto": True,
        "alpha_grid": [0, 2],
    }
    path = tmp_path / "mine.json"
    path.write_text(json.dumps(spec))
    method = get_method(str(path))
    assert method.auto and method.alpha_grid == (0.0, 2.0)
    assert method.to_dict()["alpha_grid"] == [0.0, 2.0]
    assert "alpha_grid" not in METHODS["dtif-auto"].to_dict()  # old results still resume
    path.write_text(json.dumps({**spec, "alpha_grid": "big"}))
    with pytest.raises(InputError, match="alpha_grid"):
        get_method(str(path))
