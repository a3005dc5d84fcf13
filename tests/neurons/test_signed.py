"""Hand traces of signed correction spikes (IF and DTIF): n = -1 when V < -theta_neg, N > 0.

Inputs are exact binary fractions and the traces run in float64, so the hand arithmetic in the
comments is what the code computes.
"""

from __future__ import annotations

import pytest
import torch

from dtif.convert.options import from_dict, to_dict
from dtif.errors import InputError
from dtif.neurons import (
    DTIF,
    IF,
    NeuronParams,
    dtif_initial_state,
    dtif_payload,
    dtif_step,
    if_initial_state,
    if_step,
)


def trace(inputs: list[float], params: NeuronParams) -> tuple[list[float], ...]:
    """(spike counts, payloads, V after reset, net count N) at steps 1..T."""
    z0 = torch.tensor(inputs[0], dtype=torch.float64)
    dtif = isinstance(params, DTIF)
    state = dtif_initial_state(z0, params) if dtif else if_initial_state(z0, params)  # type: ignore[arg-type]
    spikes, payloads, vs, counts = [], [], [], []
    for z in inputs:
        zt = torch.tensor(z, dtype=torch.float64)
        if dtif:
            n, state = dtif_step(zt, state, params)  # type: ignore[arg-type]
            payloads.append(float(dtif_payload(n, state, params)))  # type: ignore[arg-type]
        else:
            n, state = if_step(zt, state, params)  # type: ignore[arg-type]
            payloads.append(float(n))
        spikes.append(float(n))
        vs.append(float(state.v))
        counts.append(float("nan") if state.count is None else float(state.count))
    return spikes, payloads, vs, counts


def test_if_signed_trace() -> None:
    # v0 = 0.5, theta_neg = 0.25:
    # t1: V = 1.25 -> +1, V = 0.25, N = 1
    # t2: V = -0.25, not below -0.25: no spike
    # t3: V = -0.75 < -0.25 and N = 1 -> -1, V += 1 = 0.25, N = 0
    # t4: V = 0.0
    # t5: V = -1.0 < -0.25 but N = 0: no spike (the net count never goes below 0)
    spikes, _, vs, counts = trace(
        [0.75, -0.5, -0.5, -0.25, -1.0], IF(v0=0.5, signed=True, theta_neg=0.25)
    )
    assert spikes == [1, 0, -1, 0, 0]
    assert vs == [0.25, -0.25, 0.25, 0.0, -1.0]
    assert counts == [1, 1, 0, 0, 0]
    # unsigned, the over-count stays: one spike, V ends at -2.0
    plain, _, plain_v, _ = trace([0.75, -0.5, -0.5, -0.25, -1.0], IF(v0=0.5, signed=False))
    assert plain == [1, 0, 0, 0, 0] and plain_v[-1] == -2.0


def test_dtif_binary_signed_trace() -> None:
    # alpha = 4, theta_neg = 0.5, v0 = 0:
    # t1: z = 1, theta = 1/5: V = 1.0 >= 0.2 -> +1, V = 0.0, N = 1 (over-counts: z/theta)
    # t2: z = -0.5, theta = 1: V = -0.5, not below -0.5: no spike
    # t3: z = -0.25: V = -0.75 < -0.5, N = 1 -> -1, V += 1 = 0.25 (binary: what +1 took), N = 0
    spikes, payloads, vs, counts = trace([1.0, -0.5, -0.25], DTIF(alpha=4.0, signed=True))
    assert spikes == [1, 0, -1]
    assert payloads == [1, 0, -1]
    assert vs == [0.0, -0.5, 0.25]
    assert counts == [1, 1, 0]


def test_dtif_graded_signed_adds_theta_t() -> None:
    # alpha = 1, graded, theta_neg = 0.25:
    # t1: z = 1, theta = 1/2: V = 1 -> n = 1 (burst 1), V -= 0.5 = 0.5, payload 0.5, N = 1
    # t2: z = -1, theta = 1: V = -0.5 < -0.25 -> n = -1, V += theta(t) = 0.5, payload -1, N = 0
    params = DTIF(alpha=1.0, payload="graded", signed=True, theta_neg=0.25)
    spikes, payloads, vs, counts = trace([1.0, -1.0], params)
    assert spikes == [1, -1]
    assert payloads == [0.5, -1.0]
    assert vs == [0.5, 0.5]
    assert counts == [1, 0]


def test_theta_neg_zero_tracks_the_rounded_sum() -> None:
    # theta_neg = 0, v0 = 0.5: N(t) = max(0, floor(0.5 + z(1) + ... + z(t))) while |z| < 1.
    # (V + N = 0.5 + the summed input, and V stays in [0, 1) while N > 0.)
    gen = torch.Generator().manual_seed(0)
    z = torch.randint(-3, 5, (200,), generator=gen).double() / 16  # exact sums
    _, _, _, counts = trace(z.tolist(), IF(v0=0.5, signed=True, theta_neg=0.0))
    expected = torch.clamp(torch.floor(0.5 + torch.cumsum(z, 0)), min=0)
    assert counts == expected.tolist()


def test_unsigned_state_has_no_count() -> None:
    assert if_initial_state(torch.zeros(2), IF()).count is None
    assert dtif_initial_state(torch.zeros(2), DTIF()).count is None
    assert torch.equal(if_initial_state(torch.zeros(2), IF(signed=True)).count, torch.zeros(2))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"signed": True, "theta_neg": -0.1}, "theta_neg must be a finite number >= 0"),
        ({"signed": True, "theta_neg": float("nan")}, "theta_neg must be a finite number >= 0"),
        ({"signed": 1}, "signed must be True or False"),
    ],
)
def test_bad_signed_values(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(InputError, match=match):
        IF(**kwargs)  # type: ignore[arg-type]
    with pytest.raises(InputError, match=match):
        DTIF(**kwargs)  # type: ignore[arg-type]


def test_signed_if_needs_subtractive_reset() -> None:
    with pytest.raises(InputError, match="needs reset='subtract'"):
        IF(signed=True, reset="zero")


def test_to_dict_round_trip() -> None:
    signed = DTIF(alpha=2.0, signed=True, theta_neg=0.75)
    assert from_dict(to_dict(signed), "neuron", "test") == signed
    # a plain neuron's dict is as before signed spikes existed
    assert "signed" not in to_dict(IF()) and "theta_neg" not in to_dict(DTIF())
    assert from_dict(to_dict(IF(v0=0.5)), "neuron", "test") == IF(v0=0.5)
