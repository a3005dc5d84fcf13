"""DTIF's threshold set by the running mean of its input (`theta_input="mean"`)."""

from __future__ import annotations

import pytest
import torch

import dtif
from dtif.convert.options import to_dict
from dtif.errors import InputError
from dtif.neurons import dtif_initial_state, dtif_step


def _trace(theta_input: str) -> tuple[list[float], list[float], torch.Tensor | None]:
    params = dtif.DTIF(alpha=4.0, v0=0.0, theta_input=theta_input)  # type: ignore[arg-type]
    z = torch.tensor([1.0, 0.3, 0.05], dtype=torch.float64)
    state = dtif_initial_state(z[0], params)
    spikes, thetas = [], []
    for t in range(3):
        n, state = dtif_step(z[t], state, params)
        spikes.append(float(n))
        thetas.append(float(state.theta))
    return spikes, thetas, state.input_sum


def test_hand_trace_present_against_mean() -> None:
    # z = 1, 0.3, 0.05 with alpha 4: both fire at t = 1 (theta 1/5, V 1 -> 0). At t = 2 the
    # present input 0.3 gives theta 1/2.2 > V = 0.3, but the mean 0.65 gives 1/3.6 < 0.3.
    spikes, thetas, total = _trace("present")
    assert spikes == [1.0, 0.0, 0.0]
    assert thetas == pytest.approx([1 / 5, 1 / 2.2, 1 / 1.2])
    assert total is None
    spikes, thetas, total = _trace("mean")
    assert spikes == [1.0, 1.0, 0.0]
    assert thetas == pytest.approx([1 / 5, 1 / 3.6, 1 / 2.8])  # means 1, 0.65, 0.45
    assert total is not None and float(total) == pytest.approx(1.35)


def test_the_sum_stops_at_the_switch() -> None:
    params = dtif.DTIF(alpha=4.0, dynamic_steps=2, theta_input="mean")
    state = dtif_initial_state(torch.zeros(1), params)
    for z in (0.5, 0.25, 3.0, 3.0):
        _, state = dtif_step(torch.tensor([z]), state, params)
    assert float(state.input_sum) == 0.75 and float(state.theta) == 1.0


def test_a_constant_input_gives_the_present_rule() -> None:
    z = torch.full((5,), 0.37, dtype=torch.float64)
    out = {}
    for rule in ("present", "mean"):
        params = dtif.DTIF(alpha=8.0, theta_input=rule)  # type: ignore[arg-type]
        state, counts = dtif_initial_state(z, params), []
        for _ in range(16):
            n, state = dtif_step(z, state, params)
            counts.append(n)
        out[rule] = torch.stack(counts)
    assert torch.equal(out["present"], out["mean"])


def test_spec_and_validation() -> None:
    assert "theta_input" not in to_dict(dtif.DTIF())  # published results still resume
    assert to_dict(dtif.DTIF(theta_input="mean"))["theta_input"] == "mean"
    with pytest.raises(InputError, match="theta_input must be 'present' or 'mean'"):
        dtif.DTIF(theta_input="median")  # type: ignore[arg-type]
