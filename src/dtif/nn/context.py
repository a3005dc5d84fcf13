"""The run context: what a spiking graph needs to know while it is simulated.

Modules that live in time (neurons, the spiking max-pool, the time repeat) read the number of
steps in the present chunk, the batch size and their carried state from a `RunContext` that
the engine binds to them for the length of one run. Outside a run they refuse to work.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from dtif.errors import DtifError

RunMode = Literal["simulate", "fanout"]


@dataclass
class LayerRecord:
    """Per-step statistics of one spiking layer, appended chunk by chunk.

    Attributes:
        spikes: spike counts per step, summed over the batch, one [steps] tensor per chunk.
        synops: synaptic events per step (spikes x fan-out), summed over the batch.
        graded: True when each event carries a non-power-of-two value (it costs a MAC).
        signed: the layer emits negative spikes too; each counts as one event (|n|).
    """

    spikes: list[torch.Tensor] = field(default_factory=list)
    synops: list[torch.Tensor] = field(default_factory=list)
    graded: bool = False
    signed: bool = False


@dataclass
class RunContext:
    """State of one simulation run, shared by the time-aware modules of one network.

    Attributes:
        batch_size: B, the number of samples simulated together.
        num_steps: steps in the present time chunk.
        mode: "simulate", or "fanout" to measure each layer's synaptic fan-out.
        states: carried neuron state by layer name.
        fanout: fan-out per element of each layer's output, [1, ...] by layer name, or None
            when nothing is recorded.
        records: per-layer statistics by layer name.
        fanout_terms: in fanout mode, the tensors whose sum is differentiated.
        fanout_leaves: in fanout mode, the leaf tensor standing for each layer's output.
        overwritable: the spiking layers whose input tensor nothing else reads, made afresh
            for every chunk: they write their spikes over it (see `overwritable_inputs` in
            `dtif.sim.rewrite`).
    """

    batch_size: int
    num_steps: int = 1
    mode: RunMode = "simulate"
    states: dict[str, Any] = field(default_factory=dict)
    fanout: dict[str, torch.Tensor] | None = None
    records: dict[str, LayerRecord] = field(default_factory=dict)
    fanout_terms: list[torch.Tensor] = field(default_factory=list)
    fanout_leaves: dict[str, torch.Tensor] = field(default_factory=dict)
    overwritable: frozenset[str] = frozenset()


class TimeAware(nn.Module):
    """Base of the modules that step through time. `layer_name` keys their state."""

    def __init__(self, layer_name: str) -> None:
        super().__init__()
        self.layer_name = layer_name
        self._ctx: RunContext | None = None

    def context(self) -> RunContext:
        """The bound run context.

        Raises:
            DtifError: the module is called outside `SpikingNetwork.simulate`.
        """
        if self._ctx is None:
            raise DtifError(
                f"{type(self).__name__} '{self.layer_name}' steps through time and runs only "
                "inside a simulation: call snn.simulate(x, num_steps) instead of snn(x)"
            )
        return self._ctx

    def fanout_leaf(self, shape: torch.Size, like: torch.Tensor) -> torch.Tensor:
        """In fanout mode, a leaf of ones that stands for this layer's output."""
        ctx = self.context()
        leaf = torch.ones(shape, dtype=like.dtype, device=like.device, requires_grad=True)
        ctx.fanout_leaves[self.layer_name] = leaf
        return leaf

    def split_time(self, x: torch.Tensor) -> tuple[torch.Tensor, bool]:
        """View a stacked input [steps*B, ...] as [steps, B, ...].

        Returns:
            (x, static): static is True when x is [B, ...], constant over time.
        """
        ctx = self.context()
        if x.shape[0] == ctx.batch_size and ctx.num_steps > 1:
            return x, True
        if x.shape[0] != ctx.num_steps * ctx.batch_size:
            raise DtifError(
                f"{self.layer_name}: got a tensor with leading size {x.shape[0]}, expected "
                f"steps*batch = {ctx.num_steps * ctx.batch_size}; an op in the model mixes the "
                "batch dimension (e.g. view with a fixed batch size)"
            )
        return x.view(ctx.num_steps, ctx.batch_size, *x.shape[1:]), False


def is_channels_last(t: torch.Tensor) -> bool:
    """A 4-D tensor in the channels-last layout (and not also in the default one)."""
    return (
        t.dim() == 4
        and not t.is_contiguous()
        and t.is_contiguous(memory_format=torch.channels_last)
    )


@contextmanager
def bind(modules: list[TimeAware], ctx: RunContext) -> Iterator[RunContext]:
    """Bind `ctx` to every time-aware module for the length of the `with` block."""
    for m in modules:
        m._ctx = ctx
    try:
        yield ctx
    finally:
        for m in modules:
            m._ctx = None
