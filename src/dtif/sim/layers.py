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
    accumulated over steps 1..t (its spike count times its payload). Ties go to the first unit. Synaptic events are counted at the
    gate's output: one per nonzero output value, times the output's fan-out.

    Args:
        pool: the ANN's MaxPool1d/MaxPool2d, whose window it uses.
        layer_name: the name of this layer in results.
    """

    def __init__(self, pool: nn.MaxPool1d | nn.MaxPool2d, layer_name: str) -> None:
        super().__init__(layer_name)
        self.pool = pool

    def _window_argmax(self, acc: torch.Tensor) -> torch.Tensor:
        p = self.pool
        fn = F.max_pool1d if isinstance(p, nn.MaxPool1d) else F.max_pool2d
        _, idx = fn(
            acc, p.kernel_size, p.stride, p.padding, p.dilation, p.ceil_mode, return_indices=True
        )
        return idx

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ctx = self.context()
        if ctx.mode == "fanout":
            out = self.pool(torch.zeros_like(x))
            return self.fanout_leaf(out.shape, x)
        xt, static = self.split_time(x)
        if static:
            xt = xt.unsqueeze(0).expand(ctx.num_steps, *xt.shape)
        key = f"{self.layer_name}.acc"
        acc = ctx.states.get(key)
        acc = torch.zeros_like(xt[0]) if acc is None else acc
        outs = []
        for t in range(ctx.num_steps):
            acc = acc + xt[t]
            idx = self._window_argmax(acc)
            flat = xt[t].flatten(2)
            outs.append(flat.gather(2, idx.flatten(2)).view(idx.shape))
        ctx.states[key] = acc
        out = torch.stack(outs)
        if ctx.fanout is not None:
            rec = ctx.records.setdefault(self.layer_name, LayerRecord())
            flat_out = (out != 0).to(out.dtype).reshape(out.shape[0], out.shape[1], -1)
            rec.spikes.append(flat_out.sum(dim=(1, 2)))
            fan = ctx.fanout[self.layer_name].reshape(-1).to(out.dtype)
            rec.synops.append((flat_out @ fan).sum(dim=1))
        return out.reshape(-1, *out.shape[2:])
