"""Time-aware layers besides neurons: the time repeat and the spiking max-pool gate."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dtif.sim.context import LayerRecord, TimeAware


class RepeatTime(TimeAware):
    """Repeat a value that is constant in time, [B, ...], to the stacked [steps*B, ...]."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ctx = self.context()
        if ctx.mode == "fanout":
            return x
        return x.unsqueeze(0).expand(ctx.num_steps, *x.shape).reshape(-1, *x.shape[1:])


class SpikeMaxPool(TimeAware):
    """Spiking max-pool gate (Rueckauer et al. 2017).

    In each window it passes, at step t, the input of the unit with the highest output
    accumulated over steps 1..t (its spike count times its payload). The selected unit is kept
    until another unit's accumulated output strictly exceeds it; the new leader is the first
    such unit. With binary spikes of one payload, the gate's accumulated output is then exactly
    the window's largest accumulated input, so its rate converges to the max of the rates
    (switching on ties would pass the spikes of two units that take turns, up to twice the
    max). Synaptic events are counted at the gate's output: one per nonzero output value,
    times the output's fan-out.

    Args:
        pool: the ANN's MaxPool1d/MaxPool2d, whose window it uses.
        layer_name: the name of this layer in results.
    """

    def __init__(self, pool: nn.MaxPool1d | nn.MaxPool2d, layer_name: str) -> None:
        super().__init__(layer_name)
        self.pool = pool

    def _window_max(self, acc: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(max, index of the first maximum) of each window."""
        p = self.pool
        fn = F.max_pool1d if isinstance(p, nn.MaxPool1d) else F.max_pool2d
        top, idx = fn(
            acc, p.kernel_size, p.stride, p.padding, p.dilation, p.ceil_mode, return_indices=True
        )
        return top, idx

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ctx = self.context()
        if ctx.mode == "fanout":
            out = self.pool(torch.zeros_like(x))
            return self.fanout_leaf(out.shape, x)
        xt, static = self.split_time(x)
        if static:
            xt = xt.unsqueeze(0).expand(ctx.num_steps, *xt.shape)
        key, sel_key = f"{self.layer_name}.acc", f"{self.layer_name}.sel"
        acc = ctx.states.get(key)
        acc = torch.zeros_like(xt[0]) if acc is None else acc
        sel = ctx.states.get(sel_key)
        outs = []
        for t in range(ctx.num_steps):
            acc = acc + xt[t]
            top, idx = self._window_max(acc)
            if sel is not None:  # keep the selected unit unless it is strictly beaten
                held = acc.flatten(2).gather(2, sel.flatten(2)).view(sel.shape)
                idx = torch.where(held >= top, sel, idx)
            sel = idx
            flat = xt[t].flatten(2)
            outs.append(flat.gather(2, idx.flatten(2)).view(idx.shape))
        ctx.states[key] = acc
        ctx.states[sel_key] = sel
        out = torch.stack(outs)
        if ctx.fanout is not None:
            rec = ctx.records.setdefault(self.layer_name, LayerRecord())
            flat_out = (out != 0).to(out.dtype).reshape(out.shape[0], out.shape[1], -1)
            rec.spikes.append(flat_out.sum(dim=(1, 2)))
            fan = ctx.fanout[self.layer_name].reshape(-1).to(out.dtype)
            rec.synops.append((flat_out @ fan).sum(dim=1))
        return out.reshape(-1, *out.shape[2:])
