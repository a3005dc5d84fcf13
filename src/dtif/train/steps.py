"""One epoch of training: seeded data, the optimisation steps, and each rank's part of a batch."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import nullcontext
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from dtif.data import ImageDataset, test_subset
from dtif.models.qcfs import quantized_to
from dtif.sim import distributed

#: Batch size of the test-accuracy evaluation.
_EVAL_BATCH = 1000
#: Steps between progress-bar postfix updates.
_POSTFIX_EVERY = 10


def epoch_seed(seed: int, epoch: int) -> int:
    """Seed of epoch ``epoch`` (0-based). Even, so the loader's ``seed + 1`` never collides."""
    return (seed + 1) * 1_000_003 * 2 + 2 * epoch


def materialize(dataset: Any, base: ImageDataset) -> tuple[torch.Tensor, torch.Tensor]:
    """Images and labels of ``base`` or of a ``Subset`` of it, as tensors."""
    if dataset is base:
        return base.images, base.labels
    index = torch.as_tensor(dataset.indices, dtype=torch.long)
    return base.images[index], base.labels[index]


def train_subset(train: ImageDataset, limit: int | None, seed: int) -> ImageDataset:
    """A seeded subset of ``limit`` training images, kept as a fast ``ImageDataset``."""
    images, labels = materialize(test_subset(train, limit, seed), train)
    if images is train.images:
        return train
    return ImageDataset(images, labels, train.info, "train")


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    criterion: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    loss_weight: float = 1.0,
) -> tuple[float, int]:
    """One optimisation step. Returns (summed loss over the batch, correct predictions).

    ``loss_weight`` scales the loss that is backpropagated (distributed training), not the
    returned one.
    """
    logits = model(images)
    loss = criterion(logits, labels)
    optimizer.zero_grad(set_to_none=True)
    (loss if loss_weight == 1.0 else loss * loss_weight).backward()
    optimizer.step()
    scheduler.step()
    correct = int((logits.detach().argmax(1) == labels).sum())
    return float(loss.detach()) * labels.shape[0], correct


def train_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    criterion: nn.Module,
    loader: Iterable[tuple[torch.Tensor, ...]],
    device: torch.device,
    bar: tqdm[Any],
    train_levels: Sequence[int] = (),
    seed: int = 0,
) -> tuple[float, float]:
    """Train one epoch. Returns (mean loss, train accuracy) over the epoch's images.

    ``loader`` yields ``(images, labels)``, or ``(images, labels, loss_weight)`` (one rank's
    part of each batch, see ``_rank_batches``); the means are then over all ranks. With
    ``train_levels``, each step's QCFS levels are drawn from them by a generator seeded with
    ``seed`` (the same draws on every rank).
    """
    model.train()
    total_loss, correct, seen = 0.0, 0, 0
    draws = torch.Generator().manual_seed(seed)
    for step, (images, labels, *weight) in enumerate(loader, start=1):
        with _levels(model, train_levels, draws):
            loss, hits = train_step(
                model,
                optimizer,
                scheduler,
                criterion,
                images.to(device),
                labels.to(device),
                float(weight[0]) if weight else 1.0,
            )
        total_loss, correct, seen = total_loss + loss, correct + hits, seen + labels.shape[0]
        bar.update(1)
        if step % _POSTFIX_EVERY == 0:
            bar.set_postfix(loss=f"{total_loss / seen:.4f}", acc=f"{correct / seen:.2%}")
    if distributed.world_size() > 1:
        sums = torch.tensor([total_loss, correct, seen], dtype=torch.float64, device=device)
        torch.distributed.all_reduce(sums)
        total_loss, correct, seen = sums[0].item(), int(sums[1].item()), int(sums[2].item())
    bar.set_postfix(loss=f"{total_loss / max(seen, 1):.4f}", acc=f"{correct / max(seen, 1):.2%}")
    return total_loss / max(seen, 1), correct / max(seen, 1)


def _levels(model: nn.Module, choices: Sequence[int], draws: torch.Generator) -> Any:
    if not choices:
        return nullcontext()
    pick = int(torch.randint(len(choices), (1,), generator=draws))
    return quantized_to(model, choices[pick])


def rank_batches(
    loader: Iterable[tuple[torch.Tensor, torch.Tensor]], rank: int, world: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor, float]]:
    """This rank's part of each global batch of ``loader``, with its loss weight.

    Every rank iterates the same loader (the same seeds as one process) and keeps part
    ``rank`` of ``world`` near-equal contiguous parts of each batch. A batch with fewer images
    than ranks is topped up by repeating its images, so that every rank takes the step. The
    weight ``n_rank * world / n_batch`` makes DDP's average of the ranks' gradients the
    gradient of the mean loss over the global batch.
    """
    for images, labels in loader:
        size = labels.shape[0]
        index = torch.arange(max(size, world)) % size
        part = torch.tensor_split(index, world)[rank]
        yield images[part], labels[part], part.numel() * world / index.numel()


def data_parallel(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` wrapped in ``DistributedDataParallel`` (which broadcasts rank 0's state)."""
    from torch.nn.parallel import DistributedDataParallel

    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return DistributedDataParallel(model, device_ids=[index])
    return DistributedDataParallel(model)


def silent(line: str) -> None:
    """A ``log`` that drops its line (ranks other than 0)."""


@torch.inference_mode()
def accuracy(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, device: torch.device
) -> float:
    """Top-1 accuracy of ``model`` (eval mode) on ``images [N, C, H, W]``, as a fraction."""
    model.eval()
    correct = 0
    for start in range(0, images.shape[0], _EVAL_BATCH):
        x = images[start : start + _EVAL_BATCH].to(device)
        y = labels[start : start + _EVAL_BATCH].to(device)
        correct += int((model(x).argmax(1) == y).sum())
    return correct / max(images.shape[0], 1)
