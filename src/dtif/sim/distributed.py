"""Multi-process runs with `torch.distributed`: `torchrun --nproc_per_node=N -m dtif ...`.

torchrun starts N copies of the command and describes the group in the environment
(`WORLD_SIZE`, `RANK`, `LOCAL_RANK`, `MASTER_ADDR`, `MASTER_PORT`). `init_from_env` joins it
(NCCL for CUDA, gloo on the CPU); without torchrun every helper here is a no-op, so one code
path serves both.

Evaluation: each rank simulates a disjoint shard of the test set (`shard`), made of whole
batches of the single-process loader, so every image is simulated exactly once and in the
same batch as in a single-process run. Each rank sums its batches into `Totals` of
integer-valued float64 counts (correct predictions, SOPs, spikes, images); `all_reduce_totals`
adds them over ranks in one `all_reduce` of O(T) numbers. Integer sums below 2**53 are exact
in any order, so the results equal the single-process ones exactly.

Calibration: every rank calibrates on the same (small) full calibration set, then
`broadcast_snn` copies rank 0's converted network (scales, thresholds, calibrated neuron
parameters) to every rank, so all ranks simulate identical networks even where floating-point
reductions differ between devices.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sized
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import Dataset, Subset

from dtif.errors import DtifError, InputError
from dtif.nn.neuron import SpikingNeuron
from dtif.sim.evaluate import Totals

__all__ = [
    "all_reduce_totals",
    "barrier",
    "broadcast_object",
    "broadcast_snn",
    "destroy",
    "init_from_env",
    "is_main",
    "rank",
    "shard",
    "world_size",
]

T = TypeVar("T")


def _active() -> bool:
    return dist.is_available() and dist.is_initialized()


def init_from_env(device: torch.device | str = "cpu") -> bool:
    """Join the process group that torchrun describes in the environment.

    A no-op when `WORLD_SIZE` is unset or 1, or when a group is already initialized. The
    backend is NCCL when `device` is a CUDA device (and CUDA is available), gloo otherwise;
    with NCCL the process uses GPU `LOCAL_RANK`.

    Args:
        device: the device the run computes on.

    Returns:
        True when this call initialized a group (the caller then calls `destroy`).

    Raises:
        InputError: `WORLD_SIZE` or `LOCAL_RANK` is not an integer.
    """
    if _active():
        return False
    try:
        size = int(os.environ.get("WORLD_SIZE", "1"))
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    except ValueError as err:
        raise InputError(f"WORLD_SIZE and LOCAL_RANK must be integers: {err}") from None
    if size <= 1:
        return False
    nccl = torch.device(device).type == "cuda" and torch.cuda.is_available()
    if nccl:
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend="nccl" if nccl else "gloo")
    return True


def rank() -> int:
    """This process's rank (0 without a group)."""
    return dist.get_rank() if _active() else 0


def world_size() -> int:
    """The number of processes (1 without a group)."""
    return dist.get_world_size() if _active() else 1


def is_main() -> bool:
    """True on rank 0, the one process that prints and writes files."""
    return rank() == 0


def barrier() -> None:
    """Wait for every rank (a no-op without a group)."""
    if _active():
        dist.barrier()


def destroy() -> None:
    """Leave the process group (a no-op without one)."""
    if _active():
        dist.destroy_process_group()


def _collective_device() -> torch.device:
    if _active() and dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def shard(
    dataset: Dataset[Any],
    batch_size: int = 1,
    *,
    part: int | None = None,
    num_parts: int | None = None,
) -> Dataset[Any]:
    """This rank's contiguous shard of `dataset`, made of whole batches.

    The `ceil(N / batch_size)` batches of a single-process loader over `dataset` are split
    into `num_parts` contiguous runs whose lengths differ by at most one batch; a loader with
    the same `batch_size` over rank r's shard yields exactly the batches of run r. Nothing is
    padded or repeated: the shards are disjoint and cover every sample once. A rank may get
    an empty shard when there are fewer batches than ranks.

    Args:
        dataset: a sized dataset, e.g. the test split.
        batch_size: images per batch of the evaluation loader, >= 1.
        part: the shard to return (default: this process's rank).
        num_parts: the number of shards (default: the number of processes).

    Returns:
        `dataset` itself with one shard, else a `Subset` of consecutive samples.

    Raises:
        InputError: batch_size < 1, a part outside [0, num_parts), or no `__len__`.
    """
    r = rank() if part is None else part
    w = world_size() if num_parts is None else num_parts
    if batch_size < 1 or not 0 <= r < w:
        raise InputError(
            f"shard needs batch_size >= 1 and 0 <= part < num_parts, got {batch_size}, {r}, {w}"
        )
    if not isinstance(dataset, Sized):
        raise InputError(f"cannot shard {type(dataset).__name__}: it has no __len__")
    if w == 1:
        return dataset
    n = len(dataset)
    batches = math.ceil(n / batch_size)
    first, last = r * batches // w, (r + 1) * batches // w
    return Subset(dataset, range(first * batch_size, min(last * batch_size, n)))


def _layout(totals: Totals) -> tuple[int, list[str], bool]:
    return int(totals.correct.shape[0]), list(totals.spikes), totals.exits is not None


def all_reduce_totals(totals: Totals | None) -> Totals:
    """Sum `Totals` over all ranks; every rank gets the sum.

    The tensors are packed into one float64 vector of (3 + layers) * T + 2 numbers (spikes in
    one agreed key order; T more for the early-exit histogram) and added with one `all_reduce(SUM)`. The counts are integers, so
    the sum is exact in any order (below 2**53). A rank with an empty shard passes None; it
    learns T and the layer names from the others. Without a group, `totals` is returned.

    Args:
        totals: this rank's sums over its batches, or None when it had no batch.

    Returns:
        The totals of all ranks.

    Raises:
        DtifError: every rank is empty, or the ranks disagree on T or the layer names.
    """
    if not _active():
        if totals is None:
            raise DtifError("no test batch to evaluate")
        return totals
    layouts: list[tuple[int, list[str], bool] | None] = [None] * dist.get_world_size()
    dist.all_gather_object(layouts, None if totals is None else _layout(totals))
    known = [x for x in layouts if x is not None]
    if not known:
        raise DtifError("no rank had a test batch to evaluate")
    if any(x != known[0] for x in known):
        raise DtifError(f"ranks disagree on (num_steps, spiking layers): {known}")
    steps, names, exits = known[0]
    device = totals.count.device if totals is not None else _collective_device()
    if totals is None:
        zeros = torch.zeros(steps, dtype=torch.float64, device=device)
        one = torch.zeros((), dtype=torch.float64, device=device)
        totals = Totals(
            correct=zeros,
            ann_correct=one,
            synops=zeros,
            synops_graded=zeros,
            spikes={k: zeros for k in names},
            count=one,
            exits=zeros if exits else None,
        )
    parts = [
        totals.correct,
        totals.synops,
        totals.synops_graded,
        *(totals.spikes[k] for k in names),
        *([totals.exits] if totals.exits is not None else []),
        totals.ann_correct.reshape(1),
        totals.count.reshape(1),
    ]
    flat = torch.cat([p.to(device=device, dtype=torch.float64) for p in parts])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    chunks = list(flat[: (3 + len(names) + exits) * steps].split(steps))
    return Totals(
        correct=chunks[0],
        synops=chunks[1],
        synops_graded=chunks[2],
        spikes=dict(zip(names, chunks[3 : 3 + len(names)])),
        ann_correct=flat[-2],
        count=flat[-1],
        exits=chunks[-1] if exits else None,
    )


def broadcast_object(obj: T) -> T:
    """Rank 0's `obj` (picklable), on every rank; `obj` itself without a group."""
    if not _active():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0, device=_collective_device())
    return box[0]  # type: ignore[no-any-return]  # rank 0's object of the same type


def broadcast_snn(snn: nn.Module) -> None:
    """Copy rank 0's network into every rank's, in place (a no-op without a group).

    Every parameter and buffer (the per-layer scales) is broadcast from rank 0, and so are the
    neuron parameters (thresholds, DTIF's calibrated alpha and v0). `snn.meta` stays
    rank-local: it only describes the network, and rank 0's is the one written. Every rank
    must call it, on networks of the same structure.

    Args:
        snn: a converted network (`SpikingNetwork`), or any module.
    """
    if not _active():
        return
    with torch.no_grad():
        for t in [*snn.parameters(), *snn.buffers()]:
            dist.broadcast(t.data, src=0)
    neurons = [m for m in snn.modules() if isinstance(m, SpikingNeuron)]
    for m, p in zip(neurons, broadcast_object([m.params for m in neurons])):
        m.params = p
