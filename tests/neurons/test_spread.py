"""Initial potentials spread across a layer's neurons (`v0_spread`): pattern, traces, checks."""

from __future__ import annotations

import math

import pytest
import torch

import dtif
from dtif.convert.options import from_dict, to_dict
from dtif.errors import InputError
from dtif.neurons import dtif_initial_state, dtif_step, if_initial_state, if_step
from dtif.neurons.if_neuron import initial_potential


def test_no_spread_is_v0_everywhere() -> None:
    z = torch.randn(3, 4, 5, 5)
    assert torch.equal(initial_potential(z, 0.5, 0.0), torch.full_like(z, 0.5))
    assert torch.equal(if_initial_state(z, dtif.IF(v0=0.5)).v, torch.full_like(z, 0.5))


def test_spread_pattern() -> None:
    z = torch.zeros(2, 8, 6, 6)
    v = initial_potential(z, 0.5, 0.5)
    assert torch.equal(v[0], v[1])  # the same for every image
    assert float(v.min()) >= 0.25 and float(v.max()) < 0.75  # v0 +- spread / 2
    assert abs(float(v.mean()) - 0.5) < 0.01  # centred on v0
    # evenly spread: each quarter of the range holds a quarter of the neurons (within 2%)
    counts = torch.histc(v[0], bins=4, min=0.25, max=0.75)
    assert torch.all((counts / v[0].numel() - 0.25).abs() < 0.02)
    # u_i = frac((i + 1/2) * golden) over the flat index of one image's neurons
    golden = (math.sqrt(5) - 1) / 2
    for i in (0, 1, 17, 287):
        u = ((i + 0.5) * golden) % 1.0
        assert float(v[0].flatten()[i]) == pytest.approx(0.5 + 0.5 * (u - 0.5), abs=1e-6)
    # a batch of one gives the same pattern (nothing depends on the batch size)
    assert torch.equal(initial_potential(z[:1], 0.5, 0.5)[0], v[0])


def test_if_spread_trace_counts_floor_of_start_plus_charge() -> None:
    """Unsigned IF with subtractive reset: the count after t steps is floor(V(0) + t z)."""
    z = torch.full((1, 5), 0.3)
    params = dtif.IF(v0=0.5, v0_spread=1.0)
    state = if_initial_state(z, params)
    v0 = state.v.clone()
    total = torch.zeros_like(z)
    for t in range(1, 7):
        n, state = if_step(z, state, params)
        total += n
        assert torch.equal(total, torch.floor(v0 + t * 0.3 + 1e-6))
    # spread 1: at step 1 the neurons fire where u_i >= 1 - z, so about a fraction z of them
    first = (initial_potential(torch.zeros(1, 1000), 0.5, 1.0) + 0.3 >= 1).float().mean()
    assert float(first) == pytest.approx(0.3, abs=0.01)


def test_dtif_spread_trace() -> None:
    """DTIF: V(0) per neuron, then the usual step; a neuron starting higher fires first."""
    z = torch.full((1, 4), 0.2)
    params = dtif.DTIF(alpha=4.0, v0=0.25, v0_spread=1.0)
    state = dtif_initial_state(z, params)
    v0 = initial_potential(z, 0.25, 1.0)
    assert torch.equal(state.v, v0)
    theta = 1 / (1 + 4.0 * 0.2)  # 0.556
    n, state = dtif_step(z, state, params)
    assert torch.equal(n, (v0 + 0.2 >= theta).float())
    assert torch.allclose(state.v, v0 + 0.2 - n)


@pytest.mark.parametrize("bad", [-0.1, 1.5, True, "0.5", float("nan")])
def test_bad_spread_is_refused(bad: object) -> None:
    with pytest.raises(InputError, match="v0_spread"):
        dtif.IF(v0_spread=bad)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="v0_spread"):
        dtif.DTIF(v0_spread=bad)  # type: ignore[arg-type]


def test_dict_leaves_out_no_spread_and_round_trips() -> None:
    assert "v0_spread" not in to_dict(dtif.IF(v0=0.5))
    spread = dtif.DTIF(alpha=2.0, v0_spread=0.25)
    d = to_dict(spread)
    assert d["v0_spread"] == 0.25
    assert from_dict(d, "neuron", "test") == spread
