"""The time loops of one chunk, in place: twins of `if_step` and `dtif_step`.

Each loop does the same floating-point operations in the same order as its step function, so
the results are bit-identical to it, but every step writes into tensors that the layer owns for
the run (the potential, the spike buffer, DTIF's theta(t)) instead of allocating new ones.
`CHUNK_RUNNERS` maps a neuron's parameter type to the function that runs one chunk of it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from dtif.neurons import (
    DTIFParams,
    DTIFState,
    IFParams,
    IFState,
    dtif_initial_state,
    if_initial_state,
    is_dynamic,
)
from dtif.neurons.dt_if_neuron import SWITCH_V0, burst_at, dtif_threshold, threshold_input
from dtif.nn.buffers import LayerRun, channel_view


def _run_if(
    z: torch.Tensor,
    divisor: torch.Tensor | None,
    static: bool,
    state: IFState,
    spikes: torch.Tensor,
    params: IFParams,
) -> IFState:
    """`if_step` for every step of one chunk, in place.

    Args:
        z: input current, [steps, B, ...], or [B, ...] when constant in time. It may share
            memory with `spikes`: z(t) is read before n(t) is written. With a `divisor`, z is
            the layer's input x, and the current is x(t) / divisor.
        divisor: None, or the scale lambda shaped to broadcast over one step, [B, ...]. Then
            V += x(t) / lambda is one pass (`addcdiv_`), rounded as z = x / lambda; V + z.
        static: z is the same at every step.
        state: the state after the previous chunk; updated in place.
        spikes: [steps, B, ...], receives n(t).
        params: neuron parameters.

    Returns:
        The state after the last step.
    """
    v = state.v
    neg = _signed_scratch(v, params)
    for t in range(spikes.shape[0]):
        n = spikes[t]
        if divisor is not None:
            v.addcdiv_(z[t], divisor)  # V(t) = V(t-1) + x(t) / lambda
        else:
            v.add_(z if static else z[t])  # V(t) = V(t-1) + z(t)
        if params.burst == 1:
            torch.ge(v, 1.0, out=n)  # clamp(floor(V), 0, 1) == [V >= 1]
        else:
            torch.floor(v, out=n).clamp_(0, params.burst)
        if neg is not None:
            _negative(v, n, state.count, params.theta_neg, neg)
        if params.reset == "subtract":
            v.sub_(n)
        else:
            v.masked_fill_(n > 0, 0.0)
    return state


def _run_dtif(
    z: torch.Tensor,
    static: bool,
    state: DTIFState,
    spikes: torch.Tensor,
    params: DTIFParams,
    theta: torch.Tensor | None,
    theta_per_step: bool,
    start: int = 0,
) -> DTIFState:
    """`dtif_step` for every step of one chunk, in place (arguments as `_run_if`).

    Args:
        theta: theta(t) for the chunk ([steps, B, ...] when `theta_per_step`, else [B, ...]),
            or None when theta = 1 exactly (alpha = 0, or past `dynamic_steps`).
    """
    v = state.v
    binary = params.payload == "binary"
    product = None if binary else torch.empty_like(v)
    neg = _signed_scratch(v, params)
    for t in range(spikes.shape[0]):
        n = spikes[t]
        th = 1.0 if theta is None else (theta[t] if theta_per_step else theta)
        v.add_(z if static else z[t])  # V(t) = V(t-1) + z(t)
        if start + t == params.dynamic_steps:
            v.add_(SWITCH_V0 - float(params.v0))  # type: ignore[arg-type]  # resolved per layer
        if binary:
            burst = burst_at(params, start + t)
            if burst == 1:
                torch.ge(v, th, out=n)  # clamp(floor(V - theta) + 1, 0, 1) == [V >= theta]
            else:
                torch.sub(v, th, out=n).floor_().add_(1.0).clamp_(0, burst)
            if neg is not None:
                _negative(v, n, state.count, params.theta_neg, neg)
            v.sub_(n)
            continue
        torch.div(v, th, out=n)
        if params.burst == 1:
            n.ge_(1.0)  # clamp(floor(V / theta), 0, 1) == [V / theta >= 1]
        else:
            n.floor_().clamp_(0, params.burst)
        if neg is not None:
            _negative(v, n, state.count, params.theta_neg, neg)
        v.sub_(torch.mul(n, th, out=product))
    if theta is None:
        return state
    last = theta[-1] if theta_per_step else theta
    return DTIFState(v=v, theta=last, count=state.count, input_sum=state.input_sum)


def _mean_thresholds(
    z: torch.Tensor, static: bool, state: DTIFState, params: DTIFParams, start: int, num: int
) -> torch.Tensor:
    """theta(t) [num, B, ...] from the running mean of the input (theta_input "mean"), step by
    step as `dtif_step` computes it (1 from the switch on); advances `state.input_sum`."""
    theta = torch.empty((num, *state.v.shape), dtype=state.v.dtype, device=state.v.device)
    k = params.dynamic_steps
    dynamic = num if k is None else max(0, min(num, k - start))
    total = state.input_sum
    for t in range(dynamic):
        u, total = threshold_input(z if static else z[t], total, start + t)
        theta[t] = dtif_threshold(u, params)
    theta[dynamic:] = 1.0
    state.input_sum = total
    return theta


def _signed_scratch(v: torch.Tensor, params: IFParams | DTIFParams) -> torch.Tensor | None:
    """A [B, ...] scratch tensor for the negative spikes of a signed neuron, else None."""
    return torch.empty_like(v, dtype=torch.bool) if params.signed else None


def _negative(
    v: torch.Tensor,
    n: torch.Tensor,
    count: torch.Tensor | None,
    theta_neg: float,
    neg: torch.Tensor,
) -> None:
    """n -= [V < -theta_neg and N > 0]; N += n: `negative_spikes` of the step functions.

    A positive spike and a negative one never meet: V >= theta > 0 where n > 0.
    """
    assert count is not None  # noqa: S101 - the initial state of a signed neuron has one
    torch.lt(v, -theta_neg, out=neg).logical_and_(count > 0)
    n.sub_(neg.to(n.dtype))
    count.add_(n)


def run_if_chunk(
    xt: torch.Tensor,
    static: bool,
    scale: torch.Tensor,
    state: Any,
    spikes: torch.Tensor,
    params: IFParams,
    run: LayerRun,
) -> tuple[IFState, None]:
    """One chunk of IF neurons: the current x / lambda, then `_run_if`.

    Args:
        xt: the layer's input [steps, B, ...], or [B, ...] when static.
        static: the input is constant in time.
        scale: lambda in the input's dtype, [] or [C].
        state: the state after the previous chunk, or None at the first chunk.
        spikes: [steps, B, ...], receives n(t); may be `xt` itself.
        params: neuron parameters.
        run: what the layer keeps for the run.

    Returns:
        (the new state, None: an IF spike carries one threshold).
    """
    if static:
        z, divisor = run.static_current(xt, channel_view(scale, xt.ndim, 1)), None
    else:
        z, divisor = xt, channel_view(scale, xt.ndim - 1, 1)  # divided step by step
    state = state if state is not None else if_initial_state(z if static else z[0], params)
    return _run_if(z, divisor, static, state, spikes, params), None


def run_dtif_chunk(
    xt: torch.Tensor,
    static: bool,
    scale: torch.Tensor,
    state: Any,
    spikes: torch.Tensor,
    params: DTIFParams,
    run: LayerRun,
) -> tuple[DTIFState, torch.Tensor | None]:
    """One chunk of DTIF neurons (arguments as `run_if_chunk`).

    Returns:
        (the new state, the payload per spike theta(t) when graded, else None).
    """
    if static:
        z = run.static_current(xt, channel_view(scale, xt.ndim, 1))
    else:
        z = torch.div(xt, channel_view(scale, xt.ndim, 2), out=spikes)  # z(t) in n(t)'s slot
    state = state if state is not None else dtif_initial_state(z if static else z[0], params)
    start, num, k = state.steps, spikes.shape[0], params.dynamic_steps
    dynamic, per_step = is_dynamic(params, start), not static
    alpha = float(params.alpha)  # type: ignore[arg-type]  # resolved per layer
    if dynamic and params.theta_input == "mean" and alpha != 0.0:  # 1 from the switch on
        theta, per_step = _mean_thresholds(z, static, state, params, start, num), True
    else:  # None: alpha = 0 or past dynamic_steps, theta(t) = 1 exactly
        theta = run.thresholds(z, static, params) if dynamic else None
        if theta is not None and k is not None and start + num > k:  # theta turns 1 here
            if static:
                theta, per_step = theta.expand(num, *theta.shape).clone(), True
            theta[k - start :] = 1.0
    state = _run_dtif(z, static, state, spikes, params, theta, per_step, start)
    state.steps = start + num
    return state, theta if params.payload == "graded" else None


ChunkRunner = Callable[..., tuple[Any, "torch.Tensor | None"]]
CHUNK_RUNNERS: dict[type, ChunkRunner] = {IFParams: run_if_chunk, DTIFParams: run_dtif_chunk}
