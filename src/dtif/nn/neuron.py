"""`SpikingNeuron`: the spiking layer that stands in for a ReLU, with threshold balancing.

An IF step is three passes over the layer: V += x / lambda, n = [V >= 1], V -= n. The time
loop of a chunk is in `dtif.nn.loops` (in place, bit-identical to the step functions); spike
counts and SOPs are recorded once per chunk. When nothing else reads the layer's input
(`RunContext.overwritable`), the spikes go over the input itself and the layer keeps no
spike buffer.
"""

from __future__ import annotations

import torch
from torch.nn.modules import module as torch_module

from dtif.errors import InputError
from dtif.neurons import DTIFParams, NeuronParams
from dtif.nn.buffers import LayerRun, channel_view
from dtif.nn.context import LayerRecord, RunContext, TimeAware
from dtif.nn.loops import CHUNK_RUNNERS


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

    scale: torch.Tensor
    input_offset: torch.Tensor | None

    def __init__(self, params: NeuronParams, scale: torch.Tensor, layer_name: str) -> None:
        super().__init__(layer_name)
        self.params = params
        self.register_buffer("scale", scale.detach().clone().float())
        self.register_buffer("input_offset", None)

    def set_input_offset(self, offset: torch.Tensor | None) -> None:
        """Add offset[k] to the input x (ANN units) at step k + 1, for the first K steps.

        Args:
            offset: [K] for a layer of shape [B, N] or a per-layer value, [K, C] per channel
                (dim 1), or None to remove it. After step K the input is x alone.
        """
        if offset is not None:
            if offset.ndim not in (1, 2) or offset.shape[0] < 1:
                raise InputError(
                    f"{self.layer_name}: an input offset is [K] or [K, C] with K >= 1, got "
                    f"shape {tuple(offset.shape)}"
                )
            offset = offset.detach().clone().to(self.scale.device, torch.float32)
        self.input_offset = offset

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
            when a forward hook, of the layer or global, may read x).
        """
        ctx = self.context()
        if ctx.mode == "fanout":
            ctx.fanout_terms.append(x.sum())
            return self.fanout_leaf(x.shape, x)
        xt, static = self.split_time(x)
        run = ctx.states.get(self._run_key)
        if run is None:
            run = ctx.states[self._run_key] = LayerRun()
        if self.input_offset is not None and run.steps < self.input_offset.shape[0]:
            xt, static = self._offset(ctx, run, xt, static)
        run.steps += ctx.num_steps
        spikes = self._spike_buffer(ctx, run, xt, static)
        scale = self.scale.to(x.dtype)
        runner = CHUNK_RUNNERS[type(self.params)]
        state = ctx.states.get(self.layer_name)
        state, payload = runner(xt, static, scale, state, spikes, self.params, run)
        ctx.states[self.layer_name] = state
        if ctx.fanout is not None:
            self._record(ctx, run, spikes)
        out = spikes.mul_(payload) if payload is not None else spikes  # in place
        out = out.mul_(channel_view(scale, out.ndim, 2))
        return out.view(ctx.num_steps * ctx.batch_size, *out.shape[2:])

    def _offset(
        self, ctx: RunContext, run: LayerRun, xt: torch.Tensor, static: bool
    ) -> tuple[torch.Tensor, bool]:
        """The input of this chunk with `input_offset` added at the steps it covers."""
        assert self.input_offset is not None  # noqa: S101 - checked by the caller
        start, num = run.steps, ctx.num_steps
        rows = self.input_offset[start : start + num].to(xt.dtype)
        n, features = rows.shape[0], xt.ndim - (1 if static else 2)
        if rows.ndim == 1:  # one value per step for the whole layer
            rows = rows.view(n, 1, *([1] * features))
        else:  # per channel (dim 1 of the layer's output)
            rows = rows.view(n, 1, rows.shape[1], *([1] * (features - 1)))
        if static:
            if rows.shape[0] == num and bool((rows == rows[0]).all()):
                return xt + rows[0][0], True  # the same offset at every step: still static
            xt = xt.expand(num, *xt.shape)
        elif self.layer_name in ctx.overwritable and not self._hooked():
            xt[: rows.shape[0]] += rows  # nothing else reads x
            return xt, False
        out = xt.clone()
        out[: rows.shape[0]] += rows
        return out, False

    @property
    def _run_key(self) -> str:
        return f"{self.layer_name}.run"

    def _spike_buffer(
        self, ctx: RunContext, run: LayerRun, xt: torch.Tensor, static: bool
    ) -> torch.Tensor:
        """Where n(t) goes: over x itself when nothing else reads it, else a kept buffer."""
        if not static and self.layer_name in ctx.overwritable and not self._hooked():
            return xt
        return run.spike_buffer(xt, ctx.num_steps if static else 0)

    def _hooked(self) -> bool:
        """A forward hook (this layer's or a global one) would see the input after the call."""
        return bool(self._forward_hooks or torch_module._global_forward_hooks)

    def _record(self, ctx: RunContext, run: LayerRun, spikes: torch.Tensor) -> None:
        assert ctx.fanout is not None  # noqa: S101 - checked by the caller
        rec = ctx.records.get(self.layer_name)
        if rec is None:
            rec = ctx.records[self.layer_name] = LayerRecord(
                graded=is_graded(self.params), signed=self.params.signed
            )
        run.record(spikes, ctx.fanout[self.layer_name], rec)
