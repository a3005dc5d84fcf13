"""The simulation engine: time-major, layer by layer, chunked over time and batch.

Every linear op runs once over a time-stacked tensor [steps*B, ...]; only the neuron
recurrence loops over t. The static prefix (up to the first spiking layer) runs once per
batch. One run to T_max gives the output at every T <= T_max. How runs are chunked is in
`dtif.sim.chunks`; what is prepared on the graph (event-driven Linear layers on CPU, spikes
written over inputs that nothing else reads) in `dtif.sim.rewrite`.

Channels-last (opt-in): after `snn.to(memory_format=torch.channels_last)`, images are laid
out the same way and every chunk buffer follows its input's layout, so the convolutions run
in channels-last without conversions. Results equal the default layout's up to the
convolutions' float rounding, so it is not the default.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

import torch
from torch import fx

from dtif.errors import InputError
from dtif.metrics.energy import EnergyModel
from dtif.nn.context import LayerRecord, RunContext, TimeAware, bind, is_channels_last
from dtif.sim.chunks import budget_bytes, choose_chunks, cpu_time_chunk
from dtif.sim.early_exit import EarlyExit, compact_states
from dtif.sim.profile import Profile
from dtif.sim.result import SimulationResult, assemble
from dtif.sim.rewrite import event_driven, overwritable_inputs


class Simulatable(Protocol):
    """What `simulate` needs of a network (`dtif.SpikingNetwork` has it)."""

    static: fx.GraphModule
    dynamic: fx.GraphModule
    input_shape: tuple[int, ...]

    @property
    def device(self) -> torch.device: ...

    def parameters(self, recurse: bool = True) -> Iterator[torch.nn.Parameter]: ...

    def profile(self, sample_shape: tuple[int, ...]) -> Profile: ...

    def layers(self) -> list[TimeAware]: ...


def check_input(x: object, input_shape: tuple[int, ...]) -> torch.Tensor:
    """Validate a simulation input.

    Raises:
        InputError: not a float tensor [B, *input_shape], or not finite.
    """
    if not isinstance(x, torch.Tensor):
        raise InputError(f"input must be a tensor [B, {input_shape}], got {type(x).__name__}")
    if not x.is_floating_point():
        raise InputError(f"input must be a float tensor, got dtype {x.dtype}")
    if tuple(x.shape[1:]) != tuple(input_shape):
        raise InputError(
            f"input has shape {tuple(x.shape)}; expected [B, {', '.join(map(str, input_shape))}]"
        )
    if x.shape[0] == 0:
        raise InputError("input batch is empty")
    if not torch.isfinite(x).all():
        raise InputError("input contains NaN or Inf values; clean the data before simulating")
    return x


def _channels_last(snn: Simulatable) -> bool:
    """True when the network's convolutions were moved to channels-last by the user."""
    return any(is_channels_last(p) for p in snn.parameters())


def _chunk_sizes(
    snn: Simulatable,
    x: torch.Tensor,
    num_steps: int,
    time_chunk: int | None,
    batch_chunk: int | None,
) -> tuple[int, int]:
    """(time_chunk, batch_chunk): the given ones, or the rule of `dtif.sim.chunks`."""
    device, batch = x.device, x.shape[0]
    profile = snn.profile(tuple(x.shape[1:]))
    auto_t, auto_b = choose_chunks(
        batch, num_steps, profile.sample_step_bytes, budget_bytes(device)
    )
    if device.type != "cuda":
        layer_bytes = x.element_size() * max(profile.layer_sizes.values(), default=1)
        auto_t = min(auto_t, cpu_time_chunk(auto_b, num_steps, layer_bytes))
    tc = time_chunk if time_chunk is not None else auto_t
    bc = batch_chunk if batch_chunk is not None else (auto_b if time_chunk is None else batch)
    if tc < 1 or bc < 1:
        raise InputError(f"time_chunk and batch_chunk must be >= 1, got {tc} and {bc}")
    return tc, bc


def simulate(
    snn: Simulatable,
    x: torch.Tensor,
    num_steps: int,
    *,
    time_chunk: int | None = None,
    batch_chunk: int | None = None,
    energy: EnergyModel | None = None,
    record: bool = True,
    exit: EarlyExit | None = None,
) -> SimulationResult:
    """Simulate `snn` for `num_steps` steps on the analog input `x` (direct coding).

    Args:
        snn: the converted network.
        x: [B, ...] analog input, constant in time.
        num_steps: T_max >= 1.
        time_chunk: steps simulated together (default: the rule of `dtif.sim.chunks`).
        batch_chunk: samples simulated together (default: as many as the budget allows).
        energy: the energy model (default `EnergyModel()`).
        record: record spikes, SOPs and energy (costs a little time).
        exit: an early-exit policy. Each image then stops at its exit step
            (`SimulationResult.exit_steps`) and leaves the batch: the state of every layer
            is compacted to the images still running, one step at a time. Its outputs stay
            at their exit values after it, and its SOPs and energy stop growing, so the
            last step holds every image's answer and cost at exit.

    Returns:
        The outputs at every T <= num_steps, with spike, SOP and energy counts.

    Raises:
        InputError: a bad input, num_steps < 1, or chunk sizes < 1.
    """
    if not isinstance(num_steps, int) or num_steps < 1:
        raise InputError(f"num_steps must be an int >= 1, got {num_steps!r}")
    x = check_input(x, snn.input_shape)
    dtype = next((p.dtype for p in snn.parameters()), x.dtype)
    if x.dtype != dtype:
        raise InputError(f"input has dtype {x.dtype}, the network {dtype}; pass x.to({dtype})")
    energy = energy or EnergyModel()
    device = snn.device
    x = x.to(device)
    if x.dim() == 4 and _channels_last(snn):
        x = x.contiguous(memory_format=torch.channels_last)
    tc, bc = _chunk_sizes(snn, x, num_steps, time_chunk, batch_chunk)
    if exit is not None:
        tc = 1  # an exit is decided after every step
    profile = snn.profile(tuple(x.shape[1:]))
    layers = snn.layers()
    dynamic = event_driven(snn.dynamic) if device.type == "cpu" else snn.dynamic
    overwritable = overwritable_inputs(dynamic)
    batch = x.shape[0]
    outputs: torch.Tensor | None = None
    steps = None if exit is None else torch.full((batch,), num_steps, device=device)
    per_chunk: list[dict[str, LayerRecord]] = []
    with torch.inference_mode():
        for b0 in range(0, batch, bc):
            xb = x[b0 : b0 + bc]
            ctx = RunContext(
                batch_size=xb.shape[0],
                fanout=profile.fanout if record else None,
                overwritable=overwritable,
            )
            with bind(layers, ctx):
                if exit is None:
                    run = _run_batch(snn.static, dynamic, ctx, xb, num_steps, tc)
                else:
                    run = _run_exiting(snn.static, dynamic, ctx, xb, num_steps, exit)
                for t0, cum, dt, rows, done in run:
                    if outputs is None:
                        shape = (num_steps, batch, *cum.shape[2:])
                        outputs = torch.empty(shape, dtype=dt, device=device)
                    if rows is None:
                        outputs[t0 : t0 + cum.shape[0], b0 : b0 + xb.shape[0]] = cum
                    else:
                        outputs[t0, b0 + rows] = cum[0].to(dt)
                    if steps is not None and rows is not None and done is not None:
                        steps[b0 + rows[done]] = t0 + 1
            per_chunk.append(ctx.records)
    assert outputs is not None  # noqa: S101 - batch >= 1 and num_steps >= 1
    if steps is not None:
        outputs = _hold_after_exit(outputs, steps)
    result = assemble(outputs, per_chunk, profile.static_macs, profile.layer_sizes, energy)
    result.exit_steps = steps
    return result


# (first step, accumulated outputs [steps, b, ...] in float64, the output's dtype, the rows of
# the batch they belong to and which of them exit there: None, None for every row, no exit)
Chunk = tuple[int, torch.Tensor, torch.dtype, "torch.Tensor | None", "torch.Tensor | None"]


def _run_batch(
    static: fx.GraphModule,
    dynamic: fx.GraphModule,
    ctx: RunContext,
    xb: torch.Tensor,
    num_steps: int,
    tc: int,
) -> Iterator[Chunk]:
    """Yield a `Chunk` for each time chunk of a batch (every row, no exit)."""
    nb = xb.shape[0]
    boundary = static(xb)
    acc: torch.Tensor | None = None
    for t0 in range(0, num_steps, tc):
        steps = min(tc, num_steps - t0)
        ctx.num_steps = steps
        y = dynamic(*boundary)
        if y.shape[0] == nb and steps > 1:
            y = y.unsqueeze(0).expand(steps, *y.shape)
        else:
            y = y.reshape(steps, nb, *y.shape[1:])
        # Carry the running sum in float64 and scan it with the chunk, so that every time
        # chunking adds in the same order as one unchunked scan.
        if acc is None:
            acc = torch.zeros_like(y[0], dtype=torch.float64)
        cum = torch.cumsum(torch.cat([acc[None], y.double()]), dim=0)[1:]
        acc = cum[-1]
        yield t0, cum, y.dtype, None, None


def _run_exiting(
    static: fx.GraphModule,
    dynamic: fx.GraphModule,
    ctx: RunContext,
    xb: torch.Tensor,
    num_steps: int,
    policy: EarlyExit,
) -> Iterator[Chunk]:
    """One step at a time with early exit: yield a `Chunk` per step for the b images in the
    batch (their rows, and a [b] mask of those that exit at this step).

    Exited images leave the batch: the static boundary, the carried state of every layer and
    the accumulated outputs keep only the other rows, so later steps compute on fewer images.
    When SOPs are recorded this happens after every step with an exit, so that no image adds
    events after its exit. Without recording, exited images are dropped once they are an
    eighth of the batch (each drop copies every state); until then they run on, and their
    outputs after the exit step are discarded (`_hold_after_exit`).
    """
    boundary = static(xb)
    rows = torch.arange(xb.shape[0], device=xb.device)
    acc: torch.Tensor | None = None
    streak = torch.zeros(xb.shape[0], dtype=torch.long, device=xb.device)
    gone = torch.zeros(xb.shape[0], dtype=torch.bool, device=xb.device)
    ctx.num_steps = 1
    for t in range(num_steps):
        y = dynamic(*boundary)
        y = y.reshape(1, rows.shape[0], *y.shape[1:])
        acc = y[0].double() if acc is None else acc + y[0].double()
        # decided on the output as a fixed-T run stores it, so that `exit_steps` on a
        # fixed-T run's outputs (as calibration uses it) gives the same steps
        streak = policy.update(streak, acc.to(y.dtype), t + 1)
        new = (streak >= policy.k) & ~gone
        gone |= new
        yield t, acc[None], y.dtype, rows, new
        n_gone = int(gone.sum()) if t + 1 < num_steps else 0
        if n_gone == 0 or (ctx.fanout is None and 8 * n_gone < rows.shape[0]):
            continue
        if n_gone == rows.shape[0]:
            return
        keep = (~gone).nonzero().squeeze(1)
        boundary = tuple(b[keep] if b.shape[0] == rows.shape[0] else b for b in boundary)
        compact_states(ctx, keep, rows.shape[0])
        rows, acc, streak, gone = rows[keep], acc[keep], streak[keep], gone[keep]
        ctx.batch_size = rows.shape[0]


def _hold_after_exit(outputs: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
    """Outputs [T, B, ...] where each image keeps its exit-step value at every later step."""
    t = torch.arange(outputs.shape[0], device=outputs.device)[:, None]
    idx = torch.minimum(t, (steps - 1)[None])  # [T, B]
    idx = idx.view(*idx.shape, *([1] * (outputs.dim() - 2))).expand(outputs.shape)
    return outputs.gather(0, idx)
