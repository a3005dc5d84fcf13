"""How a simulation is cut into chunks of time and batch, to bound its working memory.

A chunk is `tc` steps of `bc` samples; the dynamic part runs once per chunk on [tc*bc, ...]
tensors.

1. Memory budget: bc is the whole batch, unless bc x `Profile.sample_step_bytes` (the
   working memory of one sample for one step) exceeds the budget (a quarter of the free
   memory on CUDA, `DEFAULT_CPU_BUDGET_BYTES` on CPU); then bc = budget // sample_step_bytes
   and tc = 1. Otherwise tc = min(T, budget // (bc x sample_step_bytes)).
2. On CPU, also tc <= max(1, `CPU_CHUNK_BYTES` // (bc x bytes of the largest layer per
   sample)): each layer's stacked tensor stays within a few MiB, which keeps the per-step
   recurrence in cache (docs/results.md measures the effect). On CUDA, large chunks keep the
   kernels few and big, so rule 1 alone applies.

So the working memory is bounded by the chunk, never by T.
"""

from __future__ import annotations

import torch

DEFAULT_CPU_BUDGET_BYTES = 1 << 30
CPU_CHUNK_BYTES = 5 << 20
"""On CPU, the target size in bytes of one layer's tensor in one chunk (rule 2 above)."""


def budget_bytes(device: torch.device) -> int:
    """The memory a simulation may use on `device` (rule 1)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return max(free // 4, 1 << 28)
    return DEFAULT_CPU_BUDGET_BYTES


def choose_chunks(
    batch: int, num_steps: int, sample_step_bytes: int, budget_bytes: int
) -> tuple[int, int]:
    """(time_chunk, batch_chunk) such that chunk samples x steps x bytes fits the budget.

    Time is chunked first (so that the whole batch shares each step's kernels), then batch.
    """
    per_step = max(1, budget_bytes // max(sample_step_bytes, 1))
    if per_step >= batch:
        return max(1, min(num_steps, per_step // batch)), batch
    return 1, per_step


def cpu_time_chunk(
    batch_chunk: int, num_steps: int, layer_bytes: int, target_bytes: int = CPU_CHUNK_BYTES
) -> int:
    """Steps per chunk on CPU: the largest layer's chunk tensor stays about `target_bytes`.

    Args:
        batch_chunk: samples per chunk.
        num_steps: T.
        layer_bytes: bytes of the largest layer for one sample and one step.
        target_bytes: the target size of one layer's chunk tensor.

    Returns:
        max(1, min(T, target_bytes // (batch_chunk x layer_bytes))).
    """
    return max(1, min(num_steps, target_bytes // max(batch_chunk * layer_bytes, 1)))
