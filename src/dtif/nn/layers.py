"""Time-aware layers besides neurons: the time repeat and the spiking max-pool gate."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dtif.nn.context import LayerRecord, TimeAware


class RepeatTime(TimeAware):
    """Repeat a value that is constant in time, [B, ...], to the stacked [steps*B, ...]."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ctx = self.context()
        if ctx.mode == "fanout":
            return x
        return x.unsqueeze(0).expand(ctx.num_steps, *x.shape).reshape(-1, *x.shape[1:])


class SpikeMaxPool(TimeAware):
    """Spiking max-pool gate: the accumulated output tracks the max of the accumulated inputs.

    Each window keeps the accumulated input A_i(t) = x_i(1) + ... + x_i(t) of its units. Its
    output at step t is M(t) - M(t-1), with M(t) = max_i A_i(t) and M(0) = 0, so that the
    output accumulated over steps 1..t is exactly the window's largest accumulated input, and
    its rate converges to the max of the input rates.

    With binary spikes of one payload this is the gate of Rueckauer et al. (2017): it passes
    the spikes of the unit with the highest count, switching only when another unit strictly
    exceeds it (M rises by one payload when, and only when, a unit at the max spikes). Unlike
    a gate that passes one selected unit's input, it stays exact when the inputs are analog
    (a max-pool after a conv, before the ReLU): a selected-unit gate overshoots there, since
    each switch between two units whose sums cross passes the new leader's whole input.
    Synaptic events are counted at the gate's output: one per nonzero output value, times the
    output's fan-out.

    Args:
        pool: the ANN's MaxPool1d/MaxPool2d, whose window it uses.
        layer_name: the name of this layer in results.
    """

    def __init__(self, pool: nn.MaxPool1d | nn.MaxPool2d, layer_name: str) -> None:
        super().__init__(layer_name)
        self.pool = pool

    def _window_max(self, acc: torch.Tensor) -> torch.Tensor:
        """The max of each window, [N, C, ...out]."""
        p = self.pool
        fn = F.max_pool1d if isinstance(p, nn.MaxPool1d) else F.max_pool2d
        return fn(acc, p.kernel_size, p.stride, p.padding, p.dilation, p.ceil_mode)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ctx = self.context()
        if ctx.mode == "fanout":
            out = self.pool(torch.zeros_like(x))
            return self.fanout_leaf(out.shape, x)
        xt, static = self.split_time(x)
        if static:
            xt = xt.unsqueeze(0).expand(ctx.num_steps, *xt.shape)
        key, max_key = f"{self.layer_name}.acc", f"{self.layer_name}.max"
        acc = ctx.states.get(key)
        acc = torch.zeros_like(xt[0]) if acc is None else acc
        sums = []
        for t in range(ctx.num_steps):  # one add per step: the same sums however time is chunked
            acc = acc + xt[t]
            sums.append(acc)
        tops = self._window_max(torch.cat(sums))  # [steps*B, C, ...out]
        top = tops.view(ctx.num_steps, -1, *tops.shape[1:])
        prev = ctx.states.get(max_key)
        prev = torch.zeros_like(top[0]) if prev is None else prev
        out = torch.diff(top, dim=0, prepend=prev[None])  # M(t) - M(t-1)
        ctx.states[key] = acc
        ctx.states[max_key] = top[-1]
        if ctx.fanout is not None:
            rec = ctx.records.setdefault(self.layer_name, LayerRecord())
            flat_out = (out != 0).to(out.dtype).reshape(out.shape[0], out.shape[1], -1)
            rec.spikes.append(flat_out.sum(dim=(1, 2)))
            fan = ctx.fanout[self.layer_name].reshape(-1).to(out.dtype)
            rec.synops.append((flat_out @ fan).sum(dim=1))
        return out.reshape(-1, *out.shape[2:])
