"""The spiking layer that stands in for a ReLU: scaling, the time loop of one chunk, recording."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from dtif.neurons.dt_if_neuron import DTIFParams, dtif_initial_state, dtif_step
from dtif.neurons.if_neuron import IFParams, if_initial_state, if_step
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
        z = xt / channel_view(self.scale.to(x.dtype), xt.ndim, lead)
        init, step = _DYNAMICS[type(self.params)]
        steps, batch = ctx.num_steps, ctx.batch_size
        state = ctx.states.get(self.layer_name)
        if state is None:
            state = init(z if static else z[0], self.params)
        spikes = torch.empty((steps, *z.shape[(0 if static else 1) :]), dtype=x.dtype, device=x.device)
        graded = isinstance(self.params, DTIFParams) and self.params.payload == "graded"
        theta = torch.empty_like(spikes) if graded else None
        for t in range(steps):
            n, state = step(z if static else z[t], state, self.params)
            spikes[t] = n
            if theta is not None:
                theta[t] = state.theta
        ctx.states[self.layer_name] = state
        if ctx.fanout is not None:
            self._record(spikes, ctx.fanout[self.layer_name], ctx.records)
        out = spikes * theta if theta is not None else spikes
        out = out * channel_view(self.scale.to(x.dtype), out.ndim, 2)
        return out.view(steps * batch, *out.shape[2:])

    def _record(
        self, spikes: torch.Tensor, fanout: torch.Tensor, records: dict[str, LayerRecord]
    ) -> None:
        rec = records.setdefault(self.layer_name, LayerRecord(graded=is_graded(self.params)))
        flat = spikes.reshape(spikes.shape[0], spikes.shape[1], -1)
        rec.spikes.append(flat.sum(dim=(1, 2)))
        rec.synops.append((flat @ fanout.reshape(-1).to(flat.dtype)).sum(dim=1))
