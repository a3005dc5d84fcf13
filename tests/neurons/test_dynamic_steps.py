"""DTIF with `dynamic_steps`: the dynamic threshold for the first K steps, then IF's."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

import dtif
from dtif.errors import InputError
from dtif.neurons import dtif_initial_state, dtif_step


def _run(params: dtif.DTIF, z: torch.Tensor) -> tuple[torch.Tensor, list]:
    state = dtif_initial_state(z[0], params)
    counts, states = [], []
    for t in range(z.shape[0]):
        n, state = dtif_step(z[t], state, params)
        counts.append(n)
        states.append(state)
    return torch.stack(counts), states


@pytest.mark.parametrize("signed", [False, True])
def test_dtif_for_k_steps_then_if(signed: bool) -> None:
    gen = torch.Generator().manual_seed(0)
    # multiples of 1/64: every sum is exact, so the order of the additions does not matter
    z = torch.randint(-6, 77, (12, 500), generator=gen).double() / 64
    dyn = dtif.DTIF(alpha=8.0, v0=0.25, signed=signed, theta_neg=0.25)
    k = 4
    counts, states = _run(replace(dyn, dynamic_steps=k), z)
    always, _ = _run(dyn, z)
    assert torch.equal(counts[:k], always[:k])
    assert not torch.equal(counts, always)  # the switch changes something here
    # from step K on, the neuron is IF (alpha 0) started from the state after K steps, its
    # potential moved by 0.5 - v0 (IF with v0 = 0.5 rounds its summed input)
    state = replace(states[k - 1], v=states[k - 1].v + (0.5 - dyn.v0))
    for t in range(k, z.shape[0]):
        n, state = dtif_step(z[t], state, replace(dyn, alpha=0.0))
        assert torch.equal(n, counts[t])
    assert states[-1].steps == z.shape[0]


@pytest.mark.parametrize("bad", [0, -2, 1.5, True, "4"])
def test_bad_dynamic_steps_is_refused(bad: object) -> None:
    with pytest.raises(InputError, match="dynamic_steps"):
        dtif.DTIF(dynamic_steps=bad)  # type: ignore[arg-type]


def test_always_dynamic_dict_is_as_before() -> None:
    from dtif.convert.options import from_dict, to_dict

    assert "dynamic_steps" not in to_dict(dtif.DTIF())  # published results still resume
    p = dtif.DTIF(alpha=(1.0, 2.0), dynamic_steps=3)
    assert to_dict(p)["dynamic_steps"] == 3 and from_dict(to_dict(p), "neuron", "x") == p
