"""The spiking layer that stands in for a ReLU: scaling, the time loop of one chunk, recording.

The time loop is the hot path of a simulation. For IF and DTIF neurons it runs in-place twins
of `if_step` and `dtif_step` (`_run_if`, `_run_dtif`): the same floating-point operations in
the same order, so the results are bit-identical to the step functions, but every step writes
into tensors that the layer owns for the run (the potential, and one chunk-sized spike buffer,
which for DTIF first holds the input current, and for DTIF one for theta(t), computed for
the whole chunk before the loop) instead of allocating four or five new ones per step. When
nothing else reads the layer's input (`RunContext.overwritable`), the spikes go over the input
itself and the layer keeps no spike buffer.
An IF step is three passes: V += x / lambda (`addcdiv_`, rounded as z = x / lambda; V + z),
n = [V >= 1] (clamp(floor(V), 0, 1) with one spike per step), V -= n. Spike counts and SOPs
are recorded once per chunk. A neuron type added to `_DYNAMICS` without a twin runs its pure
step function.
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
from dtif.sim.context import LayerRecord, TimeAware, is_channels_last

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
    """The generic loop: one call of the pure step function per step (see `_run_if`)."""
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
    divisor: torch.Tensor | None,
    static: bool,
    state: IFState,
    spikes: torch.Tensor,
    params: IFParams,
) -> tuple[IFState, None]:
    """`if_step` for every step of one chunk, in place.

    Args:
        z: input current, [steps, B, ...], or [B, ...] when constant in time. It may share
            memory with `spikes`: z(t) is read before n(t) is written. With a `divisor`, z is
            the layer's input x, and the current is x(t) / divisor.
        divisor: None, or the scale lambda shaped to broadcast over one step, [B, ...]. Then
            V += x(t) / lambda is one pass (`addcdiv_`), rounded as z = x / lambda; V + z.
        static: z is the same at every step.
        state: the state after the previous chunk; it belongs to the run and is updated in
            place.
        spikes: [steps, B, ...], receives n(t).
        params: neuron parameters.

    Returns:
        (the state after the last step, None: an IF spike carries one threshold).
    """
    v = state.v
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
        if params.reset == "subtract":
            v.sub_(n)
        else:
            v.masked_fill_(n > 0, 0.0)
    return state, None


def _run_dtif(
    z: torch.Tensor,
    static: bool,
    state: DTIFState,
    spikes: torch.Tensor,
    params: DTIFParams,
    run: _LayerRun,
) -> tuple[DTIFState, torch.Tensor | None]:
    """`dtif_step` for every step of one chunk, in place (arguments as `_run_if`).

    theta(t) is computed before the loop, for the whole chunk, into a buffer the layer keeps
    for the run (`_LayerRun.thresholds`): once per run when z is constant in time.

    Returns:
        (the state after the last step, the payload per spike theta(t) when graded, [steps,
        B, ...] or [B, ...] when constant in time; else None).
    """
    v = state.v
    binary = params.payload == "binary"
    graded = params.payload == "graded"
    theta = run.thresholds(z, static, params)  # None: alpha = 0, theta(t) = 1 exactly
    product = None if binary else torch.empty_like(v)
    for t in range(spikes.shape[0]):
        n = spikes[t]
        th = 1.0 if theta is None else (theta if static else theta[t])
        v.add_(z if static else z[t])  # V(t) = V(t-1) + z(t)
        if binary:
            if params.burst == 1:
                torch.ge(v, th, out=n)  # clamp(floor(V - theta) + 1, 0, 1) == [V >= theta]
            else:
                torch.sub(v, th, out=n).floor_().add_(1.0).clamp_(0, params.burst)
            v.sub_(n)
            continue
        torch.div(v, th, out=n)
        if params.burst == 1:
            n.ge_(1.0)  # clamp(floor(V / theta), 0, 1) == [V / theta >= 1]
        else:
            n.floor_().clamp_(0, params.burst)
        v.sub_(torch.mul(n, th, out=product))
    if theta is None:
        return state, None
    last = theta if static else theta[-1]
    return DTIFState(v=v, theta=last), theta if graded else None


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

    scale: torch.Tensor

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
            The output, [steps*B, ...], in the ANN's units. It is a view of this layer's spike
            buffer, valid until the layer's next call in the same run, or of `x` itself when
            the run lists this layer in `RunContext.overwritable` (x is then overwritten; not
            when the layer has forward hooks, which may read x).
        """
        ctx = self.context()
        if ctx.mode == "fanout":
            ctx.fanout_terms.append(x.sum())
            return self.fanout_leaf(x.shape, x)
        xt, static = self.split_time(x)
        steps, batch = ctx.num_steps, ctx.batch_size
        params = self.params
        run = ctx.states.get(self._run_key)
        if run is None:
            run = ctx.states[self._run_key] = _LayerRun()
        if not static and self.layer_name in ctx.overwritable and not self._forward_hooks:
            spikes = xt  # nothing else reads x: n(t) goes where x(t) was (see `_run_if`)
        else:
            spikes = run.spike_buffer(xt, steps if static else 0)
        scale = self.scale.to(x.dtype)
        divisor = None
        if static:
            z = run.static_current(xt, channel_view(scale, xt.ndim, 1))
        elif type(params) is IFParams:
            z, divisor = xt, channel_view(scale, xt.ndim - 1, 1)  # divided step by step
        else:
            z = torch.div(xt, channel_view(scale, xt.ndim, 2), out=spikes)  # z(t) in n(t)'s slot
        init, step = _DYNAMICS[type(params)]
        state = ctx.states.get(self.layer_name)
        if state is None:
            state = init(z if static else z[0], params)  # IF and DTIF use only its shape
        theta: torch.Tensor | None
        if type(params) is IFParams:
            state, theta = _run_if(z, divisor, static, state, spikes, params)
        elif type(params) is DTIFParams:
            state, theta = _run_dtif(z, static, state, spikes, params, run)
        else:
            state, theta = _run_steps(step, z, static, state, spikes, params)
        ctx.states[self.layer_name] = state
        if ctx.fanout is not None:
            rec = ctx.records.get(self.layer_name)
            if rec is None:
                rec = ctx.records[self.layer_name] = LayerRecord(graded=is_graded(params))
            run.record(spikes, ctx.fanout[self.layer_name], rec)
        out = spikes.mul_(theta) if theta is not None else spikes  # the payload, in place
        out = out.mul_(channel_view(scale, out.ndim, 2))
        return out.view(steps * batch, *out.shape[2:])

    @property
    def _run_key(self) -> str:
        return f"{self.layer_name}.run"


def _like_steps(x: torch.Tensor, steps: int) -> torch.Tensor:
    """An empty [steps, B, ...] tensor whose every step is laid out like x (channels-last too)."""
    if is_channels_last(x):
        flat = torch.empty(
            (steps * x.shape[0], *x.shape[1:]),
            dtype=x.dtype,
            device=x.device,
            memory_format=torch.channels_last,
        )
        return flat.view(steps, *x.shape)
    return x.new_empty((steps, *x.shape))


def _neuron_major(t: torch.Tensor, lead: int) -> tuple[torch.Tensor, bool]:
    """`t` with its channel dim (at `lead`) moved last when that makes it contiguous.

    Returns (the tensor to flatten, whether it was permuted): channels-last chunks flatten
    without a copy in (H, W, C) order, and their fan-out must be flattened the same way.
    """
    if t.dim() == lead + 3 and not t.is_contiguous():
        moved = t.movedim(lead, -1)
        if moved.is_contiguous():
            return moved, True
    return t, False


class _LayerRun:
    """What one spiking layer keeps for the length of a run, besides its neuron state.

    Attributes:
        spikes: the spike buffer [steps, B, ...]. It is reused by every chunk of the same
            shape (the layer's output is read downstream before the layer's next call), so
            that a simulation does not allocate, and fault in, a chunk-sized tensor per layer
            and chunk.
        current: (x, z = x / scale) for an input constant in time, computed once.
        current_theta: (z, theta(z)) of DTIF for that input, computed once.
        theta: DTIF's theta(t) buffer, [steps, B, ...], for an input that varies in time.
        fanout: the flattened fan-out [N], float64.
    """

    __slots__ = ("current", "current_theta", "fanout", "spikes", "theta")

    def __init__(self) -> None:
        self.spikes: torch.Tensor | None = None
        self.current: tuple[torch.Tensor, torch.Tensor] | None = None
        self.fanout: torch.Tensor | None = None
        self.theta: torch.Tensor | None = None
        self.current_theta: tuple[torch.Tensor, torch.Tensor] | None = None

    def spike_buffer(self, xt: torch.Tensor, static_steps: int) -> torch.Tensor:
        """[steps, B, ...] laid out like `xt` (static_steps > 0: xt is [B, ...])."""
        spikes = self.spikes
        shape = (static_steps, *xt.shape) if static_steps else xt.shape
        if (
            spikes is None
            or spikes.shape != shape
            or spikes.dtype != xt.dtype
            or (not static_steps and spikes.stride() != xt.stride())
        ):
            spikes = _like_steps(xt, static_steps) if static_steps else torch.empty_like(xt)
            self.spikes = spikes
        return spikes

    def static_current(self, xt: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        """z = x / scale for an input constant in time, [B, ...], once per run."""
        if self.current is None or self.current[0] is not xt:
            self.current = (xt, xt / scale)
        return self.current[1]

    def thresholds(self, z: torch.Tensor, static: bool, params: DTIFParams) -> torch.Tensor | None:
        """theta(t) = `dtif_threshold`(z(t)) for every step of the chunk, into a kept buffer.

        None when alpha = 0: then theta(t) = 1 exactly for every g and level rule (1 / 1,
        exp(-0), 2^0), and the loop compares with the number 1, as IF does.

        For a constant z ([B, ...]) it is computed once per run. The rational g without
        levels runs in place over the whole chunk: clamp, multiply, add, reciprocal and clamp
        are exactly rounded, so the result is bit-identical to `dtif_threshold` step by step
        (which computes 1 / x as a reciprocal too). exp and log2 are computed step by step,
        on the same slices as `dtif_step`, since their vectorized and scalar code may round
        differently.
        """
        if float(params.alpha) == 0.0:  # type: ignore[arg-type]  # resolved per layer
            return None
        if static:
            if self.current_theta is None or self.current_theta[0] is not z:
                self.current_theta = (z, dtif_threshold(z, params))
            return self.current_theta[1]
        buf = self.theta
        if buf is None or buf.shape != z.shape or buf.dtype != z.dtype:
            buf = self.theta = torch.empty_like(z)
        if params.g == "rational" and params.theta_levels is None:
            alpha = float(params.alpha)  # type: ignore[arg-type]  # resolved per layer
            torch.clamp(z, min=0.0, out=buf)
            return buf.mul_(alpha).add_(1.0).reciprocal_().clamp_(params.theta_min, 1.0)
        for t in range(z.shape[0]):
            buf[t] = dtif_threshold(z[t], params)
        return buf

    def record(self, spikes: torch.Tensor, fanout: torch.Tensor, rec: LayerRecord) -> None:
        """Append this chunk's spike counts and synaptic events per step to `rec`."""
        steps, batch = spikes.shape[0], spikes.shape[1]
        # One pass over the chunk: spikes per neuron and step, summed over the batch (whole
        # numbers, exact). The SOPs are then a small [steps, N] x [N] product, in float64.
        flat, moved = _neuron_major(spikes, 2)
        per_neuron = flat.reshape(steps, batch, -1).sum(dim=1)
        if self.fanout is None:
            self.fanout = (fanout.movedim(1, -1) if moved else fanout).reshape(-1).double()
        counts = per_neuron.sum(dim=1)
        synops = torch.mv(per_neuron.double(), self.fanout)
        if not rec.spikes:
            rec.spikes.append(counts)
            rec.synops.append(synops)
            return
        # One growing tensor per run instead of one small tensor per chunk: small tensors
        # that live for the whole run, allocated between the chunk-sized ones, fragment the
        # C heap, which then grows with T (measured: 8x the chunk memory at T = 256).
        rec.spikes[-1] = torch.cat((rec.spikes[-1], counts))
        rec.synops[-1] = torch.cat((rec.synops[-1], synops))
