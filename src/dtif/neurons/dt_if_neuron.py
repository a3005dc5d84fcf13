"""Dynamic-threshold integrate-and-fire (DTIF) neuron, after Wu et al. (2023).

The threshold is set anew at every step and falls as the present input rises, so a strongly
driven neuron fires sooner. See docs/dtif.md for the equations and the payload rules.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal, get_args

import torch

from dtif.errors import InputError
from dtif.neurons.if_neuron import (
    check_signed,
    check_spread,
    initial_potential,
    negative_spikes,
)

SWITCH_V0 = 0.5
"""At the switch of `dynamic_steps`, V moves by SWITCH_V0 - v0: IF with v0 = 0.5 rounds."""
ThresholdFn = Literal["rational", "exp"]
Payload = Literal["binary", "graded", "binary-biased"]
ThetaLevels = Literal["pow2"]
ThetaInput = Literal["present", "mean"]


def check_theta_input(who: str, value: object, what: str = "theta_input") -> None:
    """Raise InputError unless `value` is a `ThetaInput`."""
    if value not in get_args(ThetaInput):
        raise InputError(f"{who} {what} must be 'present' or 'mean', got {value!r}")


@dataclass(frozen=True)
class DTIFParams:
    """Parameters of the DTIF neuron, in threshold units (the IF threshold is 1).

    Attributes:
        alpha: input sensitivity of the threshold (alpha = 0 gives IF back); one float, or one
            value per spiking layer, resolved by `for_layer`.
        g: "rational" g(u) = 1 / (1 + alpha u) or "exp" g(u) = exp(-alpha u); g(u) = 1 for u <= 0.
        payload: "binary" (spike carries 1, reset subtracts 1), "graded" (spike carries theta(t),
            reset subtracts theta(t)) or "binary-biased" (carries 1, subtracts theta(t); ablation).
        theta_min: lower clip of the threshold, in (0, 1].
        burst: most spikes per step; with the binary payload and `dynamic_steps`, from the
            switch on only (`burst_at`).
        theta_levels: None, or "pow2" to round theta(t) down to a power of two.
        v0: initial potential V(0) = v0; one float, or one value per spiking layer.
        signed: emit a negative correction spike (n = -1) when V < -theta_neg while the net
            spike count is positive; it undoes what a positive spike does (V += 1 when
            binary, V += theta(t) otherwise) and delivers minus the payload.
        theta_neg: the negative firing level, in IF thresholds (>= 0); used when signed.
        dynamic_steps: None (the threshold is dynamic at every step), or K >= 1: dynamic for
            the first K steps of a run, then fixed at 1 (IF), which rounds better once the
            early spikes have carried the first estimate (docs/dtif.md).
        v0_spread: in [0, 1]; V(0) = v0 + v0_spread * (u - 1/2), u a fixed pattern across
            the neurons of a layer (`dtif.neurons.if_neuron.initial_potential`).
        theta_input: the input that sets theta(t): "present", z(t), or "mean", the mean
            m(t) = (z(1) + ... + z(t)) / t, the neuron's estimate of its input level, which
            one step's sum of binary spikes is not (docs/dtif.md).
    """

    alpha: float | tuple[float, ...] = 4.0
    g: ThresholdFn = "rational"
    payload: Payload = "binary"
    theta_min: float = 0.05
    burst: int = 1
    theta_levels: ThetaLevels | None = None
    v0: float | tuple[float, ...] = 0.0
    signed: bool = False
    theta_neg: float = 0.5
    dynamic_steps: int | None = None
    v0_spread: float = 0.0
    theta_input: ThetaInput = "present"

    def __post_init__(self) -> None:
        check_signed("DTIF", self.signed, self.theta_neg)
        check_spread("DTIF", self.v0_spread)
        k = self.dynamic_steps
        if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
            raise InputError(f"DTIF dynamic_steps must be None or an integer >= 1, got {k!r}")
        for name in ("alpha", "v0"):
            if isinstance(getattr(self, name), list):
                object.__setattr__(self, name, tuple(float(a) for a in getattr(self, name)))
        v0s = self.v0 if isinstance(self.v0, tuple) else (self.v0,)
        if not v0s or any(not math.isfinite(v) for v in v0s):
            raise InputError(f"DTIF v0 must be finite, got {self.v0!r}")
        alphas = self.alpha if isinstance(self.alpha, tuple) else (self.alpha,)
        if not alphas or any(not math.isfinite(a) or a < 0 for a in alphas):
            raise InputError(f"DTIF alpha must be finite and >= 0, got {self.alpha!r}")
        if self.g not in ("rational", "exp"):
            raise InputError(f"DTIF g must be 'rational' or 'exp', got {self.g!r}")
        if self.payload not in ("binary", "graded", "binary-biased"):
            raise InputError(
                f"DTIF payload must be 'binary', 'graded' or 'binary-biased', got {self.payload!r}"
            )
        if not 0.0 < self.theta_min <= 1.0:
            raise InputError(f"DTIF theta_min must be in (0, 1], got {self.theta_min}")
        if self.burst < 1:
            raise InputError(f"DTIF burst must be >= 1, got {self.burst}")
        if self.theta_levels not in (None, "pow2"):
            raise InputError(f"DTIF theta_levels must be None or 'pow2', got {self.theta_levels!r}")
        check_theta_input("DTIF", self.theta_input)

    def for_layer(self, index: int, num_layers: int) -> DTIFParams:
        """The parameters of spiking layer `index` (0-based) of `num_layers`: scalar alpha and v0.

        Raises:
            InputError: a per-layer alpha or v0 whose length is not `num_layers`.
        """
        resolved = {}
        for name in ("alpha", "v0"):
            value = getattr(self, name)
            if not isinstance(value, tuple):
                continue
            if len(value) != num_layers:
                raise InputError(
                    f"DTIF got {len(value)} per-layer {name} values, but the network has "
                    f"{num_layers} spiking layers: give one value per spiking layer or one float"
                )
            resolved[name] = value[index]
        return replace(self, **resolved) if resolved else self


@dataclass
class DTIFState:
    """State of a layer of DTIF neurons.

    Attributes:
        v: membrane potential in threshold units.
        theta: the threshold used at the last step.
        count: the net spike count so far of a signed neuron; None when not signed.
        steps: the steps run so far (for `DTIFParams.dynamic_steps`).
        input_sum: z(1) + ... + z(t) while the threshold is dynamic, when theta_input is
            "mean"; else None.
    """

    v: torch.Tensor
    theta: torch.Tensor
    count: torch.Tensor | None = None
    steps: int = 0
    input_sum: torch.Tensor | None = None


def dtif_initial_state(z: torch.Tensor, params: DTIFParams) -> DTIFState:
    """Initial state V(0) (`initial_potential`), theta = 1 (net count 0 when signed, input
    sum 0 when theta_input is "mean"), like `z`."""
    count = torch.zeros_like(z) if params.signed else None
    total = torch.zeros_like(z) if params.theta_input == "mean" else None
    v = initial_potential(z, params.v0, params.v0_spread)  # type: ignore[arg-type]  # resolved per layer
    return DTIFState(v=v, theta=torch.ones_like(z), count=count, input_sum=total)


def threshold_input(
    z: torch.Tensor, total: torch.Tensor | None, step: int
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(the input that sets theta at `step` (0-based), the input sum after it): z itself, or
    with a sum (theta_input "mean") the mean (total + z) / (step + 1)."""
    if total is None:
        return z, None
    total = total + z
    return total / (step + 1), total


def is_dynamic(params: DTIFParams, step: int) -> bool:
    """Whether the threshold is dynamic at `step` (0-based) of a run."""
    return params.dynamic_steps is None or step < params.dynamic_steps


def burst_at(params: DTIFParams, step: int) -> int:
    """The most positive spikes at `step` (0-based): binary DTIF with `dynamic_steps` fires one
    a step while its threshold is dynamic, and bursts only as the IF it becomes."""
    if params.payload == "binary" and params.dynamic_steps is not None:
        return 1 if step < params.dynamic_steps else params.burst
    return params.burst


def dtif_threshold(z: torch.Tensor, params: DTIFParams) -> torch.Tensor:
    """theta(t) = clip(g(z(t)), theta_min, 1), optionally rounded down to a power of two.

    Args:
        z: present input current in threshold units.
        params: neuron parameters (scalar alpha).

    Returns:
        The threshold, shaped like `z`.
    """
    alpha = float(params.alpha)  # type: ignore[arg-type]  # for_layer resolved it to a float
    u = torch.clamp(z, min=0.0)
    theta = 1.0 / (1.0 + alpha * u) if params.g == "rational" else torch.exp(-alpha * u)
    theta = torch.clamp(theta, params.theta_min, 1.0)
    if params.theta_levels == "pow2":
        theta = torch.exp2(torch.floor(torch.log2(theta)))
    return theta


def dtif_step(
    z: torch.Tensor, state: DTIFState, params: DTIFParams
) -> tuple[torch.Tensor, DTIFState]:
    """One step of the DTIF neuron.

    V(t) = V(t-1) + z(t);  theta(t) = clip(g(u(t)), theta_min, 1) (1 after dynamic_steps),
    u(t) = z(t), or the mean of z(1..t) when theta_input is "mean".
    - binary:        n = clamp(floor(V - theta) + 1, 0, burst); V -= n;          payload 1
                     (burst 1 while dynamic when dynamic_steps is set: `burst_at`)
    - graded:        n = clamp(floor(V / theta), 0, burst);     V -= n * theta;  payload theta
    - binary-biased: n = clamp(floor(V / theta), 0, burst);     V -= n * theta;  payload 1
    Signed: where n = 0, V < -theta_neg and the net count N > 0, n = -1 (the same reset
    formula then adds 1 or theta); N += n.

    Args:
        z: input current in threshold units, any shape.
        state: the state after step t-1.
        params: neuron parameters (scalar alpha).

    Returns:
        (spikes, new_state): the spike count n(t). What a spike delivers is `dtif_payload`.
    """
    v = state.v + z
    if state.steps == params.dynamic_steps:  # IF from now on, rounding as IF with v0 = 0.5
        v = v + (SWITCH_V0 - float(params.v0))  # type: ignore[arg-type]  # resolved per layer
    total = state.input_sum
    if is_dynamic(params, state.steps):
        u, total = threshold_input(z, total, state.steps)
        theta = dtif_threshold(u, params)
    else:
        theta = torch.ones_like(z)
    if params.payload == "binary":
        n = torch.clamp(torch.floor(v - theta) + 1.0, 0, burst_at(params, state.steps))
    else:
        n = torch.clamp(torch.floor(v / theta), 0, params.burst)
    count = state.count
    if params.signed:
        assert count is not None  # noqa: S101 - dtif_initial_state makes it when signed
        n = n - negative_spikes(v, count, params.theta_neg, n.dtype)
        count = count + n
    v = v - n if params.payload == "binary" else v - n * theta
    return n, DTIFState(v=v, theta=theta, count=count, steps=state.steps + 1, input_sum=total)


def dtif_payload(spikes: torch.Tensor, state: DTIFState, params: DTIFParams) -> torch.Tensor:
    """What the spikes of the last step deliver, in threshold units: n * theta(t) when graded."""
    return spikes * state.theta if params.payload == "graded" else spikes
