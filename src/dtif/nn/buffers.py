"""What one spiking layer keeps for the length of a run: buffers, cached currents, fan-out."""

from __future__ import annotations

import torch

from dtif.neurons import DTIFParams, dtif_threshold
from dtif.nn.context import LayerRecord, is_channels_last


def channel_view(scale: torch.Tensor, ndim: int, lead: int = 1) -> torch.Tensor:
    """Shape a per-layer [] or per-channel [C] scale to broadcast over [lead dims, C, ...]."""
    if scale.ndim == 0:
        return scale
    return scale.view(*([1] * lead), -1, *([1] * (ndim - lead - 1)))


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


class LayerRun:
    """What one spiking layer keeps for the length of a run, besides its neuron state.

    Attributes:
        spikes: the spike buffer [steps, B, ...], reused by every chunk of the same shape
            (the layer's output is read downstream before the layer's next call), so that a
            run does not allocate a chunk-sized tensor per layer and chunk.
        current: (x, z = x / scale) for an input constant in time, computed once.
        current_theta: (z, theta(z)) of DTIF for that input, computed once.
        theta: DTIF's theta(t) buffer, [steps, B, ...], for an input that varies in time.
        fanout: the flattened fan-out [N], float64.
        steps: the steps run so far (kept when exited images are dropped).
    """

    __slots__ = ("current", "current_theta", "fanout", "spikes", "steps", "theta")

    def __init__(self) -> None:
        self.spikes: torch.Tensor | None = None
        self.current: tuple[torch.Tensor, torch.Tensor] | None = None
        self.fanout: torch.Tensor | None = None
        self.theta: torch.Tensor | None = None
        self.current_theta: tuple[torch.Tensor, torch.Tensor] | None = None
        self.steps = 0

    def forget_batch(self) -> None:
        """Drop what depends on the batch (buffers and cached currents); keep the fan-out."""
        self.spikes = self.current = self.current_theta = self.theta = None

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
        are exactly rounded, so the result is bit-identical to `dtif_threshold` step by step.
        exp and log2 are computed step by step, on the same slices as `dtif_step`, since their
        vectorized and scalar code may round differently.
        """
        alpha = float(params.alpha)  # type: ignore[arg-type]  # resolved per layer
        if alpha == 0.0:
            return None
        if static:
            if self.current_theta is None or self.current_theta[0] is not z:
                self.current_theta = (z, dtif_threshold(z, params))
            return self.current_theta[1]
        buf = self.theta
        if buf is None or buf.shape != z.shape or buf.dtype != z.dtype:
            buf = self.theta = torch.empty_like(z)
        if params.g == "rational" and params.theta_levels is None:
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
        per_neuron = flat.reshape(steps, batch, -1)
        # a negative spike is a synaptic event too: count |n|
        per_neuron = (per_neuron.abs() if rec.signed else per_neuron).sum(dim=1)
        if self.fanout is None:
            self.fanout = (fanout.movedim(1, -1) if moved else fanout).reshape(-1).double()
        counts = per_neuron.sum(dim=1)
        synops = torch.mv(per_neuron.double(), self.fanout)
        if not rec.spikes:
            rec.spikes.append(counts)
            rec.synops.append(synops)
            return
        # One growing tensor per run instead of one small tensor per chunk: small long-lived
        # tensors between the chunk-sized ones fragment the C heap, which then grows with T.
        rec.spikes[-1] = torch.cat((rec.spikes[-1], counts))
        rec.synops[-1] = torch.cat((rec.synops[-1], synops))
