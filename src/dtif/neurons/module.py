"""The spiking layer that stands in for a ReLU: scaling, the time loop of one chunk, recording.

The time loop is the hot path of a simulation. For IF and DTIF neurons it runs in-place twins
of `if_step` and `dtif_step` (`_run_if`, `_run_dtif`): the same floating-point operations in
the same order, so the results are bit-identical, but each step writes into preallocated
buffers (the chunk's spike tensor and a private copy of the potential) instead of allocating
four or five new tensors. With one spike per step, clamp(floor(.), 0, 1) is a single
comparison. Any other neuron type registered in `_DYNAMICS` runs its pure step function.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from dtif.neurons.dt_if_neuron import (
    DTIFParams,
    DTIFState,
    dtif_initial_state,
    dtif_step,
    dtif_threshold,
)
from dtif.neurons.if_neuron import IFParams, IFState, if_initial_state, if_step
from dtif.sim.context import LayerRecord, TimeAware

NeuronParams = IFParams | DTIFParams


# params type -> (initial_state, step)
_DYNAMICS: dict[type, tuple[Callable[..., Any], Callable[..., Any]]] = {
    IFParams: (if_initial_state, if_step),
    DTIFParams: (dtif_initial_state, dtif_step),
}


def channel_view(scale: torch.Tensor, ndim: int, lead: int = 1) -> torch.Tensor:
    """Shape a per-layer [] or per-channel [C] scale to broadcast over [lead dims, C, ...]."""
    if scale.ndim == 0:
        return scale
    return scale.view(*([1] * lead), -1, *([1] * (ndim - lead - 1)))


def is_graded(params: NeuronParams) -> bool:
    """True when a spike carries a value that costs a multiply (graded, not power-of-two)."""
    return (
        isinstance(params, DTIFParams)
        and params.payload == "graded"
        and params.theta_levels != "pow2"
    )


def _run_steps(
    step: Callable[..., Any],
    z: torch.Tensor,
    static: bool,
    state: Any,
    spikes: torch.Tensor,
    params: Any,
) -> tuple[Any, torch.Tensor | None]:
    """The generic loop: call the pure step function once per step."""
    graded = getattr(params, "payload", None) == "graded"
    theta = torch.empty_like(spikes) if graded else None
    for t in range(spikes.shape[0]):
        n, state = step(z if static else z[t], state, params)
        spikes[t] = n
        if theta is not None:
            theta[t] = state.theta
    return state, theta


def _run_if(
    z: torch.Tensor,
    static: bool,
    state: IFState,
    fresh: bool,
    spikes: torch.Tensor,
    params: IFParams,
) -> tuple[IFState, None]:
    """`if_step` over the steps of one chunk, in place; writes spikes [steps, B, ...].

    Args:
        z: input current, [steps, B, ...], or [B, ...] when constant in time (`static`).
        static: z is the same at every step.
        state: the state after the previous chunk (never modified: its v is copied).
        fresh: the state was just made for this call (its v may be updated in place).
        spikes: [steps, B, ...] output buffer for n(t).
        params: neuron parameters.

    Returns:
        (the state after the last step, None: IF spikes carry one threshold).
    """
    v = state.v if fresh else state.v.clone()
    subtract = params.reset == "subtract"
    for t in range(spikes.shape[0]):
        n = spikes[t]
        v.add_(z if static else z[t])  # V(t) = V(t-1) + z(t)
        if params.burst == 1:
            torch.ge(v, 1.0, out=n)  # clamp(floor(V), 0, 1) == [V >= 1]
        else:
            torch.floor(v, out=n).clamp_(0, params.burst)
        if subtract:
            v.sub_(n)
        else:
            v.masked_fill_(n > 0, 0.0)
    return IFState(v=v), None


def _run_dtif(
    z: torch.Tensor,
    static: bool,
    state: DTIFState,
    fresh: bool,
    spikes: torch.Tensor,
    params: DTIFParams,
) -> tuple[DTIFState, torch.Tensor | None]:
    """`dtif_step` over the steps of one chunk, in place; writes spikes [steps, B, ...].

    The threshold is computed by `dtif_threshold` on the same per-step slices as `dtif_step`
    does (once when z is constant in time), so even its transcendental functions round alike.

    Args:
        z: input current, [steps, B, ...], or [B, ...] when constant in time (`static`).
        static: z is the same at every step.
        state: the state after the previous chunk (never modified: its v is copied).
        fresh: the state was just made for this call (its v may be updated in place).
        spikes: [steps, B, ...] output buffer for n(t).
        params: neuron parameters (scalar alpha).

    Returns:
        (the state after the last step, the payload per spike theta(t) when graded, [steps,
        B, ...] or [B, ...] when constant in time, else None).
    """
    v = state.v if fresh else state.v.clone()
    binary = params.payload == "binary"
    graded = params.payload == "graded"
    steps = spikes.shape[0]
    theta_const = dtif_threshold(z, params) if static else None
    theta_all = torch.empty_like(spikes) if graded and not static else None
    buf = None if binary else torch.empty_like(v)
    theta = theta_const
    for t in range(steps):
        n = spikes[t]
        if theta_const is None:
            theta = dtif_threshold(z[t], params)
            if theta_all is not None:
                theta_all[t] = theta
        assert theta is not None  # noqa: S101 - set above
        v.add_(z if static else z[t])  # V(t) = V(t-1) + z(t)
        if binary:
            if params.burst == 1:
                torch.ge(v, theta, out=n)  # clamp(floor(V - theta) + 1, 0, 1) == [V >= theta]
            else:
                torch.sub(v, theta, out=n).floor_().add_(1.0).clamp_(0, params.burst)
            v.sub_(n)
            continue
        assert buf is not None  # noqa: S101 - allocated for graded and binary-biased
        torch.div(v, theta, out=n)
        if params.burst == 1:
            n.ge_(1.0)  # clamp(floor(V / theta), 0, 1) == [V / theta >= 1]
        else:
            n.floor_().clamp_(0, params.burst)
        v.sub_(torch.mul(n, theta, out=buf))
    assert theta is not None  # noqa: S101 - steps >= 1
    payload = (theta_const if static else theta_all) if graded else None
    return DTIFState(v=v, theta=theta), payload


class SpikingNeuron(TimeAware):
    """A layer of IF or DTIF neurons in place of a ReLU, with threshold balancing.

    The input x (in the ANN's units) becomes the current z = x / scale, where scale is the
    layer's calibrated lambda (per layer, or per channel along dim 1). Each spike delivers its
    payload times scale, so the next layer sees the ANN's units and residual branches agree.
    Dynamics: `if_step` and `dtif_step`.

    Args:
        params: neuron parameters (a DTIF alpha already resolved to this layer).
        scale: lambda, [] or [C].
        layer_name: the name of this layer in results.
    """

    def __init__(self, params: NeuronParams, scale: torch.Tensor, layer_name: str) -> None:
        super().__init__(layer_name)
        self.params = params
        self.register_buffer("scale", scale.detach().clone().float())

    def extra_repr(self) -> str:
        return f"{self.layer_name!r}, {self.params}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Run the present chunk of steps.

        Args:
            x: input current, [steps*B, ...] stacked time-major, or [B, ...] constant in time.

        Returns:
            The output, [steps*B, ...], in the ANN's units.
        """
        ctx = self.context()
        if ctx.mode == "fanout":
            ctx.fanout_terms.append(x.sum())
            return self.fanout_leaf(x.shape, x)
        xt, static = self.split_time(x)
        lead = 1 if static else 2
        scale = channel_view(self.scale.to(x.dtype), xt.ndim, lead)
        steps, batch = ctx.num_steps, ctx.batch_size
        if static:
            z = xt / scale
            spikes = torch.empty((steps, *z.shape), dtype=x.dtype, device=x.device)
        else:
            # z(t) lives in the slot of n(t) until step t overwrites it: one buffer, one pass.
            spikes = torch.empty_like(xt)
            z = torch.div(xt, scale, out=spikes)
        init, step = _DYNAMICS[type(self.params)]
        state = ctx.states.get(self.layer_name)
        fresh = state is None
        if state is None:
            state = init(z if static else z[0], self.params)
        params = self.params
        theta: torch.Tensor | None
        if isinstance(params, IFParams):
            state, theta = _run_if(z, static, state, fresh, spikes, params)
        elif isinstance(params, DTIFParams):
            state, theta = _run_dtif(z, static, state, fresh, spikes, params)
        else:
            state, theta = _run_steps(step, z, static, state, spikes, params)
        ctx.states[self.layer_name] = state
        if ctx.fanout is not None:
            self._record(spikes, ctx.fanout[self.layer_name], ctx.records)
        # The spike buffer is this call's own: scale it in place (same products as before).
        out = spikes.mul_(theta) if theta is not None else spikes
        out = out.mul_(channel_view(self.scale.to(x.dtype), out.ndim, 2))
        return out.view(steps * batch, *out.shape[2:])

    def _record(
        self, spikes: torch.Tensor, fanout: torch.Tensor, records: dict[str, LayerRecord]
    ) -> None:
        rec = records.setdefault(self.layer_name, LayerRecord(graded=is_graded(self.params)))
        flat = spikes.reshape(spikes.shape[0], spikes.shape[1], -1)
        rec.spikes.append(flat.sum(dim=(1, 2)))
        rec.synops.append((flat @ fanout.reshape(-1).to(flat.dtype)).sum(dim=1))
