"""Hand-computed traces of the IF and DTIF step functions (see DTIF.md).

Traces run in float64 so that the hand arithmetic in the comments is what the code computes.
Inputs are chosen so that no potential lands within rounding error of a threshold, except
where the values are exact binary fractions (0.25, 0.5, 0.75, ...).
"""

from __future__ import annotations

import math

import pytest
import torch

from dtif.errors import InputError
from dtif.neurons import (
    DTIF,
    IF,
    DTIFParams,
    IFParams,
    dtif_initial_state,
    dtif_payload,
    dtif_step,
    dtif_threshold,
    if_initial_state,
    if_step,
)
from dtif.nn.neuron import is_graded


def run_if(inputs: list[float], params: IFParams) -> tuple[list[float], list[float]]:
    """(spikes, V after reset) at steps 1..T for a sequence of scalar inputs."""
    z0 = torch.tensor(inputs[0], dtype=torch.float64)
    state = if_initial_state(z0, params)
    spikes, vs = [], []
    for z in inputs:
        n, state = if_step(torch.tensor(z, dtype=torch.float64), state, params)
        spikes.append(float(n))
        vs.append(float(state.v))
    return spikes, vs


def run_dtif(
    inputs: list[float], params: DTIFParams
) -> tuple[list[float], list[float], list[float]]:
    """(spike counts, payloads, V after reset) at steps 1..T."""
    z0 = torch.tensor(inputs[0], dtype=torch.float64)
    state = dtif_initial_state(z0, params)
    spikes, payloads, vs = [], [], []
    for z in inputs:
        n, state = dtif_step(torch.tensor(z, dtype=torch.float64), state, params)
        spikes.append(float(n))
        payloads.append(float(dtif_payload(n, state, params)))
        vs.append(float(state.v))
    return spikes, payloads, vs


def spike_steps(spikes: list[float]) -> list[int]:
    """1-based steps at which at least one spike was emitted."""
    return [t + 1 for t, n in enumerate(spikes) if n > 0]


# ---------------------------------------------------------------------------------------------
# IF


def test_if_subtractive_reset_trace() -> None:
    # z = 0.3, theta = 1, V(0) = 0, V -= 1 per spike:
    # t: 1    2    3    4         5    6    7         8    9
    # V: 0.3  0.6  0.9  1.2->0.2  0.5  0.8  1.1->0.1  0.4  0.7
    spikes, vs = run_if([0.3] * 9, IF())
    assert spike_steps(spikes) == [4, 7]
    assert spikes == [0, 0, 0, 1, 0, 0, 1, 0, 0]
    expected_v = [0.3, 0.6, 0.9, 0.2, 0.5, 0.8, 0.1, 0.4, 0.7]
    assert vs == pytest.approx(expected_v, abs=1e-12)


def test_if_reset_to_zero_trace() -> None:
    # z = 0.3, reset to zero: V = 0.3 0.6 0.9 1.2->0 0.3 0.6 0.9 1.2->0 0.3
    # The residue 0.2 is lost at each spike, so the second spike comes one step later (8, not 7).
    spikes, vs = run_if([0.3] * 9, IF(reset="zero"))
    assert spike_steps(spikes) == [4, 8]
    expected_v = [0.3, 0.6, 0.9, 0.0, 0.3, 0.6, 0.9, 0.0, 0.3]
    assert vs == pytest.approx(expected_v, abs=1e-12)


def test_if_v0_half_trace() -> None:
    # z = 0.25, V(0) = 0.5: V = 0.75, 1.0->0 (spike), 0.25, 0.5, 0.75, 1.0->0 (spike), 0.25, 0.5
    # Spikes at 2 and 6 (against 4 and 8 for V(0) = 0): the count after T is round(zT)
    # instead of floor(zT).
    spikes, vs = run_if([0.25] * 8, IF(v0=0.5))
    assert spike_steps(spikes) == [2, 6]
    assert vs == [0.75, 0.0, 0.25, 0.5, 0.75, 0.0, 0.25, 0.5]
    plain, _ = run_if([0.25] * 8, IF())
    assert spike_steps(plain) == [4, 8]


def test_if_initial_state_is_v0() -> None:
    state = if_initial_state(torch.zeros(2, 3), IF(v0=0.5))
    assert torch.equal(state.v, torch.full((2, 3), 0.5))


def test_if_burst_trace() -> None:
    # z = 2.5, burst = 3: V = 2.5 -> n = 2, V = 0.5; V = 3.0 -> n = 3, V = 0; then it repeats.
    # Five spikes per two steps: the rate 2.5 is represented exactly.
    spikes, vs = run_if([2.5] * 4, IF(burst=3))
    assert spikes == [2, 3, 2, 3]
    assert vs == [0.5, 0.0, 0.5, 0.0]


def test_if_burst_cap_and_binary_saturation() -> None:
    # z = 2.5, burst = 1: one spike per step, V grows by 1.5 per step: 1.5, 3.0, 4.5.
    spikes, vs = run_if([2.5] * 3, IF())
    assert spikes == [1, 1, 1]
    assert vs == [1.5, 3.0, 4.5]
    # z = 5, burst = 3: three spikes per step at most, V = 5-3 = 2, 7-3 = 4.
    spikes, vs = run_if([5.0] * 2, IF(burst=3))
    assert spikes == [3, 3]
    assert vs == [2.0, 4.0]


def test_if_negative_input_never_spikes_and_is_remembered() -> None:
    # z = -0.5, -0.5, then 0.75 x 3: V = -0.5, -1.0, -0.25, 0.5, 1.25->0.25.
    # The deficit is paid back before the first spike (at step 5, not step 3).
    spikes, vs = run_if([-0.5, -0.5, 0.75, 0.75, 0.75], IF())
    assert spike_steps(spikes) == [5]
    assert vs == [-0.5, -1.0, -0.25, 0.5, 0.25]


@pytest.mark.parametrize("x", [0.0, 0.1, 0.37, 0.5, 0.93, 1.0])
@pytest.mark.parametrize("num_steps", [1, 7, 64])
def test_if_rate_within_one_over_t(x: float, num_steps: int) -> None:
    spikes, _ = run_if([x] * num_steps, IF())
    assert abs(sum(spikes) / num_steps - x) <= 1.0 / num_steps + 1e-12


def test_if_step_is_pure() -> None:
    v = torch.tensor([0.9, 0.2])
    state = if_initial_state(v, IF())
    state.v = v
    n, new = if_step(torch.tensor([0.3, 0.3]), state, IF())
    assert torch.equal(v, torch.tensor([0.9, 0.2]))  # the old state is not modified
    assert torch.equal(n, torch.tensor([1.0, 0.0]))
    assert new.v is not v


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"reset": "hard"}, "reset"), ({"burst": 0}, "burst")],
)
def test_if_params_validated(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(InputError, match=match):
        IF(**kwargs)  # type: ignore[arg-type]  # deliberately bad values


# ---------------------------------------------------------------------------------------------
# DTIF threshold


def test_threshold_rational_and_exp() -> None:
    z = torch.tensor([-3.0, 0.0, 0.25, 0.3, 1.0], dtype=torch.float64)
    # rational, alpha = 4: 1/(1 + 4u) with u = max(z, 0): 1, 1, 1/2, 1/2.2, 1/5
    rational = dtif_threshold(z, DTIF(alpha=4.0, theta_min=0.05))
    expected = torch.tensor([1.0, 1.0, 0.5, 1 / 2.2, 0.2], dtype=torch.float64)
    torch.testing.assert_close(rational, expected)
    # exp, alpha = 2: exp(-2u): 1, 1, e^-0.5 = 0.6065, e^-0.6 = 0.5488, e^-2 = 0.1353
    expo = dtif_threshold(z, DTIF(alpha=2.0, g="exp", theta_min=0.05))
    expected = torch.tensor(
        [1.0, 1.0, math.exp(-0.5), math.exp(-0.6), math.exp(-2.0)], dtype=torch.float64
    )
    torch.testing.assert_close(expo, expected)


def test_threshold_is_clipped_at_theta_min() -> None:
    z = torch.tensor([0.5, 2.0], dtype=torch.float64)
    # rational, alpha = 100: 1/51 = 0.0196 and 1/201: both below 0.05, so both clip to 0.05
    torch.testing.assert_close(
        dtif_threshold(z, DTIF(alpha=100.0, theta_min=0.05)),
        torch.tensor([0.05, 0.05], dtype=torch.float64),
    )
    # exp, alpha = 1: e^-0.5 = 0.607 is kept, e^-2 = 0.135 clips to theta_min = 0.25
    torch.testing.assert_close(
        dtif_threshold(z, DTIF(alpha=1.0, g="exp", theta_min=0.25)),
        torch.tensor([math.exp(-0.5), 0.25], dtype=torch.float64),
    )
    # theta_min = 1 pins the threshold at 1 (IF), whatever alpha is
    torch.testing.assert_close(
        dtif_threshold(z, DTIF(alpha=100.0, theta_min=1.0)),
        torch.ones(2, dtype=torch.float64),
    )


def test_threshold_pow2_levels_round_down() -> None:
    # rational, alpha = 1, z = 0, 0.6, 1, 2.4, 100:
    # theta = 1, 1/1.6 = 0.625, 1/2 = 0.5, 1/3.4 = 0.294, 1/101 -> clip 0.05
    # rounded down to a power of two: 1, 0.5, 0.5, 0.25, 2^floor(log2 0.05) = 2^-5 = 0.03125
    z = torch.tensor([0.0, 0.6, 1.0, 2.4, 100.0], dtype=torch.float64)
    theta = dtif_threshold(z, DTIF(alpha=1.0, theta_levels="pow2"))
    assert theta.tolist() == [1.0, 0.5, 0.5, 0.25, 0.03125]


def test_threshold_decreases_in_input() -> None:
    z = torch.linspace(0, 3, 50, dtype=torch.float64)
    for g in ("rational", "exp"):
        theta = dtif_threshold(z, DTIF(alpha=3.0, g=g, theta_min=0.01))  # type: ignore[arg-type]  # literal from the loop
        assert (theta[1:] <= theta[:-1]).all()
        assert theta[0] == 1.0


# ---------------------------------------------------------------------------------------------
# DTIF payload modes


def test_dtif_binary_trace() -> None:
    # alpha = 4, rational, z = 0.25: theta = 1/(1 + 1) = 0.5. Spike when V >= theta, V -= 1.
    # t: 1     2             3      4    5     6             7
    # V: 0.25  0.5->-0.5     -0.25  0    0.25  0.5->-0.5     -0.25
    # First spike at step 2 (IF: step 4); spikes at 2, 6, 10, ...: the long-run rate 1/4 = z.
    # The count after T is floor(zT + 1 - theta) = floor(T/4 + 1/2).
    params = DTIF(alpha=4.0)
    spikes, payloads, vs = run_dtif([0.25] * 7, params)
    assert spike_steps(spikes) == [2, 6]
    assert payloads == spikes  # binary: every spike delivers 1
    assert vs == [0.25, -0.5, -0.25, 0.0, 0.25, -0.5, -0.25]
    long_run, _, _ = run_dtif([0.25] * 400, params)
    assert sum(long_run) == math.floor(0.25 * 400 + 0.5)


def test_dtif_graded_trace() -> None:
    # alpha = 4, z = 0.25: theta = 0.5; n = floor(V / theta) (burst 1), V -= n * theta.
    # V: 0.25, 0.5->0, 0.25, 0.5->0, ...: a spike every other step, each carrying 0.5,
    # so the rate is exactly z = 0.25.
    spikes, payloads, vs = run_dtif([0.25] * 6, DTIF(alpha=4.0, payload="graded"))
    assert spike_steps(spikes) == [2, 4, 6]
    assert payloads == [0.0, 0.5, 0.0, 0.5, 0.0, 0.5]
    assert vs == [0.25, 0.0, 0.25, 0.0, 0.25, 0.0]


def test_dtif_graded_saturates_without_burst() -> None:
    # alpha = 4, z = 0.75: theta = 1/(1 + 3) = 0.25, and one spike per step carries at most
    # 0.25 < z: V = 0.75->0.5, 1.25->1.0, 1.75->1.5 grows, and the rate is stuck at 0.25.
    spikes, payloads, vs = run_dtif([0.75] * 3, DTIF(alpha=4.0, payload="graded"))
    assert spikes == [1, 1, 1]
    assert payloads == [0.25, 0.25, 0.25]
    assert vs == [0.5, 1.0, 1.5]


def test_dtif_graded_burst_trace() -> None:
    # Same input, burst = 4: n = min(floor(0.75 / 0.25), 4) = 3 spikes of 0.25 per step, V = 0.
    spikes, payloads, vs = run_dtif([0.75] * 3, DTIF(alpha=4.0, payload="graded", burst=4))
    assert spikes == [3, 3, 3]
    assert payloads == [0.75, 0.75, 0.75]
    assert vs == [0.0, 0.0, 0.0]
    # burst = 2 caps it: n = min(3, 2) = 2, V = 0.75 - 0.5 = 0.25; then V = 1.0: min(4, 2) = 2,
    # V = 0.5; then V = 1.25: min(5, 2) = 2, V = 0.75.
    spikes, payloads, vs = run_dtif([0.75] * 3, DTIF(alpha=4.0, payload="graded", burst=2))
    assert spikes == [2, 2, 2]
    assert payloads == [0.5, 0.5, 0.5]
    assert vs == [0.25, 0.5, 0.75]


def test_dtif_binary_burst_trace() -> None:
    # alpha = 2, z = 1.5: theta = 1/(1 + 3) = 0.25; binary burst n = clamp(floor(V - theta) + 1,
    # 0, burst): spikes fire at V >= theta, theta + 1, theta + 2, ...; each subtracts 1.
    # burst 3: V = 1.5 -> floor(1.25) + 1 = 2, V = -0.5; V = 1.0 -> floor(0.75) + 1 = 1, V = 0;
    # then it repeats: 2, 1, 2, 1: three spikes per two steps, rate 1.5 = z.
    spikes, payloads, vs = run_dtif([1.5] * 4, DTIF(alpha=2.0, burst=3))
    assert spikes == [2, 1, 2, 1]
    assert payloads == spikes
    assert vs == [-0.5, 0.0, -0.5, 0.0]
    # burst 1: one spike per step, V = 0.5, 1.0, 1.5 grows (saturated at rate 1).
    spikes, _, vs = run_dtif([1.5] * 3, DTIF(alpha=2.0))
    assert spikes == [1, 1, 1]
    assert vs == [0.5, 1.0, 1.5]


def test_binary_dtif_bursts_only_after_the_switch() -> None:
    # alpha = 2, z = 1.5, burst 3, K = 2. While dynamic (theta 0.25) one spike a step:
    # V = 1.5 -> 1, V = 0.5; V = 2.0 -> 1, V = 1.0. At the switch V += 0.5 - v0 = 0.5:
    # V = 3.0, theta 1 -> floor(3 - 1) + 1 = 3, V = 0; then IF bursts: 1.5 -> 1, 2.0 -> 2.
    spikes, _, vs = run_dtif([1.5] * 5, DTIF(alpha=2.0, burst=3, dynamic_steps=2))
    assert spikes == [1, 1, 3, 1, 2]
    assert vs == [0.5, 1.0, 0.0, 0.5, 0.0]
    assert sum(spikes) == 8  # the 7.5 summed input plus the switch's 0.5, all carried
    # graded payloads keep their bursts while dynamic (the MSAT reading)
    graded = DTIF(alpha=2.0, burst=3, dynamic_steps=2, payload="graded")
    assert run_dtif([1.5], graded)[0] == [3]


def test_dtif_binary_biased_trace() -> None:
    # alpha = 4, z = 0.25, theta = 0.5: the reset subtracts theta, the spike delivers 1.
    # V: 0.25, 0.5->0, 0.25, 0.5->0, ...: spikes at 2, 4, 6, so the rate is 1/2 = z / theta,
    # inflated by 1/g = 2 (the ablation's bias).
    spikes, payloads, vs = run_dtif([0.25] * 6, DTIF(alpha=4.0, payload="binary-biased"))
    assert spike_steps(spikes) == [2, 4, 6]
    assert payloads == [0.0, 1.0, 0.0, 1.0, 0.0, 1.0]
    assert vs == [0.25, 0.0, 0.25, 0.0, 0.25, 0.0]


def test_dtif_binary_biased_burst_trace() -> None:
    # alpha = 4, z = 0.75, theta = 0.25, burst 4: n = floor(0.75/0.25) = 3 spikes of payload 1
    # each step (rate 3 = z / theta), V = 0.
    spikes, payloads, vs = run_dtif([0.75] * 2, DTIF(alpha=4.0, payload="binary-biased", burst=4))
    assert spikes == [3, 3]
    assert payloads == [3.0, 3.0]
    assert vs == [0.0, 0.0]


def test_dtif_rational_and_exp_traces_differ() -> None:
    # alpha = 2, z = 0.3, binary payload.
    # rational: theta = 1/1.6 = 0.625. V: 0.3, 0.6 (< 0.625), 0.9->-0.1, 0.2, 0.5, 0.8->-0.2
    # exp:      theta = e^-0.6 = 0.5488. V: 0.3, 0.6->-0.4, -0.1, 0.2, 0.5 (< 0.5488), 0.8->-0.2
    rational, _, v_r = run_dtif([0.3] * 6, DTIF(alpha=2.0, g="rational"))
    expo, _, v_e = run_dtif([0.3] * 6, DTIF(alpha=2.0, g="exp"))
    assert spike_steps(rational) == [3, 6]
    assert spike_steps(expo) == [2, 6]
    assert v_r == pytest.approx([0.3, 0.6, -0.1, 0.2, 0.5, -0.2], abs=1e-12)
    assert v_e == pytest.approx([0.3, -0.4, -0.1, 0.2, 0.5, -0.2], abs=1e-12)


def test_dtif_exp_graded_trace() -> None:
    # alpha = 4, exp, z = 0.25: theta = e^-1 = 0.367879. n = floor(V / theta), V -= n theta.
    # t1: V = 0.25 < theta                      -> 0
    # t2: V = 0.5,      n = 1, V = 0.132121      -> payload 0.367879
    # t3: V = 0.382121, n = 1, V = 0.014241
    # t4: V = 0.264241 < theta                   -> 0
    # t5: V = 0.514241, n = 1, V = 0.146362
    theta = math.exp(-1.0)
    spikes, payloads, vs = run_dtif([0.25] * 5, DTIF(alpha=4.0, g="exp", payload="graded"))
    assert spike_steps(spikes) == [2, 3, 5]
    assert payloads == pytest.approx([0, theta, theta, 0, theta], abs=1e-12)
    assert vs == pytest.approx(
        [0.25, 0.5 - theta, 0.75 - 2 * theta, 1.0 - 2 * theta, 1.25 - 3 * theta], abs=1e-12
    )


def test_dtif_theta_min_clip_in_trace() -> None:
    # alpha = 100, z = 0.5: g = 1/51, clipped to theta_min = 0.25; graded burst 4:
    # n = floor(0.5 / 0.25) = 2 spikes of 0.25 each step, V = 0 (rate 0.5 = z).
    spikes, payloads, vs = run_dtif(
        [0.5] * 3, DTIF(alpha=100.0, theta_min=0.25, payload="graded", burst=4)
    )
    assert spikes == [2, 2, 2]
    assert payloads == [0.5, 0.5, 0.5]
    assert vs == [0.0, 0.0, 0.0]


def test_dtif_pow2_graded_trace() -> None:
    # alpha = 1, z = 0.75: theta = 1/1.75 = 0.571, rounded down to 0.5; graded burst 2:
    # t1: V = 0.75 -> n = floor(1.5) = 1, V = 0.25 (payload 0.5)
    # t2: V = 1.0  -> n = floor(2.0) = 2, V = 0.0  (payload 1.0)
    # and it repeats: 1.5 per two steps, the rate 0.75 = z exactly.
    params = DTIF(alpha=1.0, payload="graded", burst=2, theta_levels="pow2")
    spikes, payloads, vs = run_dtif([0.75] * 4, params)
    assert spikes == [1, 2, 1, 2]
    assert payloads == [0.5, 1.0, 0.5, 1.0]
    assert vs == [0.25, 0.0, 0.25, 0.0]
    # power-of-two payloads cost a shift and an add, so they count as AC, not MAC
    assert not is_graded(params)
    assert is_graded(DTIF(alpha=1.0, payload="graded"))
    assert not is_graded(DTIF(alpha=1.0, payload="binary"))
    assert not is_graded(IF())


def test_dtif_v0_and_initial_state() -> None:
    params = DTIF(alpha=4.0, v0=0.5)
    state = dtif_initial_state(torch.zeros(3), params)
    assert torch.equal(state.v, torch.full((3,), 0.5))
    assert torch.equal(state.theta, torch.ones(3))
    # z = 0.25, theta = 0.5, V(0) = 0.5: V = 0.75 -> spike, V = -0.25; 0; 0.25; 0.5 -> spike
    spikes, _, vs = run_dtif([0.25] * 4, params)
    assert spike_steps(spikes) == [1, 4]
    assert vs == [-0.25, 0.0, 0.25, -0.5]


def test_dtif_strong_input_fires_sooner_than_if() -> None:
    # z = 0.4: IF first fires at step 3 (V = 1.2). Binary DTIF with alpha = 4:
    # theta = 1/2.6 = 0.385 <= V = 0.4, so it fires at step 1.
    if_spikes, _ = run_if([0.4] * 3, IF())
    dt_spikes, _, _ = run_dtif([0.4] * 3, DTIF(alpha=4.0))
    assert spike_steps(if_spikes)[0] == 3
    assert spike_steps(dt_spikes)[0] == 1


@pytest.mark.parametrize("payload", ["binary", "graded", "binary-biased"])
@pytest.mark.parametrize("g", ["rational", "exp"])
@pytest.mark.parametrize("burst", [1, 3])
def test_dtif_alpha_zero_is_if(payload: str, g: str, burst: int) -> None:
    # alpha = 0: theta = g(u) = 1 for every u, so every payload mode is the IF neuron.
    gen = torch.Generator().manual_seed(0)
    z = torch.rand(40, 16, generator=gen, dtype=torch.float64) * 3 - 1  # in [-1, 2]
    dparams = DTIF(alpha=0.0, g=g, payload=payload, burst=burst)  # type: ignore[arg-type]  # parametrized literals
    iparams = IF(burst=burst)
    dstate, istate = dtif_initial_state(z[0], dparams), if_initial_state(z[0], iparams)
    for t in range(z.shape[0]):
        dn, dstate = dtif_step(z[t], dstate, dparams)
        inn, istate = if_step(z[t], istate, iparams)
        assert torch.equal(dn, inn)
        assert torch.equal(dtif_payload(dn, dstate, dparams), inn)
        torch.testing.assert_close(dstate.v, istate.v, rtol=0, atol=1e-12)


@pytest.mark.parametrize("z", [0.05, 0.2, 0.5, 0.8, 1.0])
def test_dtif_binary_long_run_rate_equals_if(z: float) -> None:
    # "Fires early and pays back later": the count is floor(zT + 1 - theta), within 1 of IF's
    num_steps = 200
    dt_spikes, _, _ = run_dtif([z] * num_steps, DTIF(alpha=8.0, theta_min=0.1))
    if_spikes, _ = run_if([z] * num_steps, IF())
    assert abs(sum(dt_spikes) - sum(if_spikes)) <= 1
    theta = max(1.0 / (1.0 + 8.0 * z), 0.1)
    assert sum(dt_spikes) == math.floor(z * num_steps + 1 - theta + 1e-9)


def test_dtif_state_theta_records_last_threshold() -> None:
    params = DTIF(alpha=4.0, payload="graded")
    state = dtif_initial_state(torch.zeros(2, dtype=torch.float64), params)
    _, state = dtif_step(torch.tensor([0.25, -1.0], dtype=torch.float64), state, params)
    assert state.theta.tolist() == [0.5, 1.0]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"alpha": -1.0}, "alpha"),
        ({"alpha": float("nan")}, "alpha"),
        ({"g": "tanh"}, "g must"),
        ({"payload": "analog"}, "payload"),
        ({"theta_min": 0.0}, "theta_min"),
        ({"theta_min": 1.5}, "theta_min"),
        ({"burst": 0}, "burst"),
        ({"theta_levels": "pow3"}, "theta_levels"),
    ],
)
def test_dtif_params_validated(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(InputError, match=match):
        DTIF(**kwargs)  # type: ignore[arg-type]  # deliberately bad values


def test_dtif_per_layer_alpha() -> None:
    params = DTIF(alpha=[1.0, 2.0, 3.0])  # type: ignore[arg-type]  # a list is accepted too
    assert params.alpha == (1.0, 2.0, 3.0)
    assert params.for_layer(1, 3).alpha == 2.0
    assert DTIF(alpha=5.0).for_layer(2, 3).alpha == 5.0
    with pytest.raises(InputError, match="per-layer alpha"):
        params.for_layer(0, 2)
