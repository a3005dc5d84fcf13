"""Seeded, resumable training of the model-zoo ANNs, with a checkpoint at every epoch.

``train(config, out_dir)`` writes two files, each atomically after every epoch:

- ``out_dir/checkpoint.pt``: the weights and metadata (see ``dtif.checkpoint``) plus the
  optimizer and scheduler state, the history and the config, for ``resume=True``;
- ``out_dir/train.json``: the config and per-epoch loss, train and test accuracy, and times.

Determinism: the model is initialised after ``torch.manual_seed(seed)``, and each epoch
reseeds torch's global generator and the loader's shuffling (and augmentation) generators
from ``(seed, epoch)`` alone. An epoch therefore does not depend on how the run got there, so
a resumed run continues bit-identically to an uninterrupted one on the same machine with
the same thread count (other thread counts change the last bits of float sums).

Distributed (``torchrun --nproc_per_node=N -m dtif train ...``, once
``dtif.distributed.init_from_env`` has joined the group): the model is wrapped in
``DistributedDataParallel``. Every rank draws the same global batches of ``batch_size``
images as one process would, and trains on its contiguous part of each (parts differ by at
most one image), with the loss weighted so that DDP's gradient average is the gradient of the
mean loss over the global batch. Steps, learning-rate schedule and checkpoints are those of a
single-process run; batch norm sees per-rank statistics, so the weights are not bit-identical
to it. Rank 0 alone evaluates, logs and writes the files. One process is unchanged.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn
from tqdm import tqdm

from dtif import distributed
from dtif.checkpoint import load_checkpoint, save_checkpoint
from dtif.data import (
    DEFAULT_DATASET,
    ImageDataset,
    dataset_info,
    load_dataset,
    make_loader,
    test_subset,
)
from dtif.errors import CheckpointError, InputError
from dtif.io import atomic_write_text, ensure_writable_dir
from dtif.models import ModelSpec, model_names

__all__ = ["CHECKPOINT_NAME", "SUMMARY_NAME", "TrainConfig", "train"]

CHECKPOINT_NAME = "checkpoint.pt"
SUMMARY_NAME = "train.json"

Optimizer = Literal["sgd", "adam"]
_OPTIMIZERS: tuple[Optimizer, ...] = ("sgd", "adam")
#: Default learning rate of each optimizer.
DEFAULT_LR: dict[Optimizer, float] = {"sgd": 0.05, "adam": 1e-3}
#: Config fields that do not change the result, so a run may resume with other values.
_RESUMABLE_FIELDS = frozenset({"data_dir", "num_threads", "device"})
#: Batch size of the test-accuracy evaluation.
_EVAL_BATCH = 1000
#: Steps between progress-bar postfix updates.
_POSTFIX_EVERY = 10


@dataclass(frozen=True)
class TrainConfig:
    """What to train and how.

    Attributes:
        dataset: registered dataset name (``dtif.data.dataset_names()``).
        model: registered model name (``dtif.models.model_names()``).
        width: channel multiplier of the model.
        epochs: training epochs, ``>= 1``.
        batch_size: images per step, ``>= 1``.
        optimizer: ``"sgd"`` (with momentum) or ``"adam"``. Both follow a cosine schedule
            from ``lr`` to 0 over all steps of the run, updated every step.
        lr: peak learning rate; ``None`` uses ``DEFAULT_LR`` (0.05 for sgd, 1e-3 for adam).
        momentum: SGD momentum in ``[0, 1)`` (ignored by adam).
        weight_decay: L2 penalty, ``>= 0``.
        label_smoothing: cross-entropy label smoothing in ``[0, 1)``.
        seed: seed of the initialisation, shuffling, dropout and augmentation.
        train_limit: train on a seeded subset of this many training images (quick runs);
            ``None`` uses the whole split.
        test_limit: measure test accuracy on a seeded subset of this many test images (the
            same subset as ``dtif.data.test_subset(test, test_limit)``); ``None``: all.
        data_dir: dataset folder (default: ``$DTIF_DATA`` or the dataset's default folder).
        augment: random crop and flip of the training images; ``None``: on for the CIFAR
            datasets only.
        num_threads: torch CPU threads during training; ``None`` keeps torch's default.
        device: torch device to train on, e.g. ``"cpu"`` or ``"cuda"``. Bit-identical
            results are promised on the CPU only.

    Raises:
        InputError: a value is out of range or a name is unknown.
    """

    dataset: str = DEFAULT_DATASET
    model: str = "cnn"
    width: float = 1.0
    epochs: int = 3
    batch_size: int = 128
    optimizer: Optimizer = "sgd"
    lr: float | None = None
    momentum: float = 0.9
    weight_decay: float = 5e-4
    label_smoothing: float = 0.0
    seed: int = 0
    train_limit: int | None = None
    test_limit: int | None = None
    data_dir: str | None = None
    augment: bool | None = None
    num_threads: int | None = None
    device: str = "cpu"

    def __post_init__(self) -> None:
        dataset_info(self.dataset)  # raises InputError listing the valid names
        if self.model not in model_names():
            raise InputError(
                f"unknown model {self.model!r}; valid names: {', '.join(model_names())}"
            )
        if self.optimizer not in _OPTIMIZERS:
            raise InputError(f"optimizer must be one of {_OPTIMIZERS}, got {self.optimizer!r}")
        for name in ("epochs", "batch_size"):
            _check_int(name, getattr(self, name), minimum=1)
        for name in ("train_limit", "test_limit", "num_threads"):
            if getattr(self, name) is not None:
                _check_int(name, getattr(self, name), minimum=1)
        _check_int("seed", self.seed, minimum=0)
        _check_float("width", self.width, low=0.0, low_open=True)
        if self.lr is not None:
            _check_float("lr", self.lr, low=0.0, low_open=True)
        _check_float("momentum", self.momentum, low=0.0, high=1.0)
        _check_float("weight_decay", self.weight_decay, low=0.0)
        _check_float("label_smoothing", self.label_smoothing, low=0.0, high=1.0)
        if self.augment is not None and not isinstance(self.augment, bool):
            raise InputError(f"augment must be True, False or None, got {self.augment!r}")
        try:
            torch.device(self.device)
        except (RuntimeError, TypeError) as err:
            raise InputError(f"invalid device {self.device!r}: {err}") from None

    @property
    def learning_rate(self) -> float:
        """``lr``, or the optimizer's default when ``lr`` is ``None``."""
        return self.lr if self.lr is not None else DEFAULT_LR[self.optimizer]

    @property
    def use_augment(self) -> bool:
        """``augment``, or ``True`` for the CIFAR datasets when ``augment`` is ``None``."""
        return self.augment if self.augment is not None else self.dataset.startswith("cifar")

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-friendly dict of the fields."""
        return dataclasses.asdict(self)


def _check_int(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InputError(f"{name} must be an int >= {minimum}, got {value!r}")


def _check_float(
    name: str,
    value: object,
    low: float,
    high: float | None = None,
    low_open: bool = False,
) -> None:
    number = (
        float(value)
        if isinstance(value, (int, float)) and not isinstance(value, bool)
        else math.nan
    )
    above = number > low if low_open else number >= low
    if not (math.isfinite(number) and above and (high is None or number < high)):
        interval = f"{'(' if low_open else '['}{low}, {'inf' if high is None else high})"
        raise InputError(f"{name} must be a finite number in {interval}, got {value!r}")


# ---------------------------------------------------------------------------------------------
# Data


def _epoch_seed(seed: int, epoch: int) -> int:
    """Seed of epoch ``epoch`` (0-based). Even, so the loader's ``seed + 1`` never collides."""
    return (seed + 1) * 1_000_003 * 2 + 2 * epoch


def _materialize(dataset: Any, base: ImageDataset) -> tuple[torch.Tensor, torch.Tensor]:
    """Images and labels of ``base`` or of a ``Subset`` of it, as tensors."""
    if dataset is base:
        return base.images, base.labels
    index = torch.as_tensor(dataset.indices, dtype=torch.long)
    return base.images[index], base.labels[index]


def _train_subset(train: ImageDataset, limit: int | None, seed: int) -> ImageDataset:
    """A seeded subset of ``limit`` training images, kept as a fast ``ImageDataset``."""
    images, labels = _materialize(test_subset(train, limit, seed), train)
    if images is train.images:
        return train
    return ImageDataset(images, labels, train.info, "train")


# ---------------------------------------------------------------------------------------------
# Steps


def _train_step(
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


def _train_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    criterion: nn.Module,
    loader: Iterable[tuple[torch.Tensor, ...]],
    device: torch.device,
    bar: tqdm[Any],
) -> tuple[float, float]:
    """Train one epoch. Returns (mean loss, train accuracy) over the epoch's images.

    ``loader`` yields ``(images, labels)``, or ``(images, labels, loss_weight)`` (one rank's
    part of each batch, see ``_rank_batches``); the means are then over all ranks.
    """
    model.train()
    total_loss, correct, seen = 0.0, 0, 0
    for step, (images, labels, *weight) in enumerate(loader, start=1):
        loss, hits = _train_step(
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


def _rank_batches(
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


def _data_parallel(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` wrapped in ``DistributedDataParallel`` (which broadcasts rank 0's state)."""
    from torch.nn.parallel import DistributedDataParallel

    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return DistributedDataParallel(model, device_ids=[index])
    return DistributedDataParallel(model)


def _silent(line: str) -> None:
    """A ``log`` that drops its line (ranks other than 0)."""


@torch.inference_mode()
def _accuracy(
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


# ---------------------------------------------------------------------------------------------
# Run state


@contextlib.contextmanager
def _deterministic(num_threads: int | None) -> Iterator[None]:
    """Deterministic kernels (and optionally a thread count) inside, restored on exit."""
    enabled = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    threads = torch.get_num_threads()
    torch.use_deterministic_algorithms(True, warn_only=True)
    if num_threads is not None:
        torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(enabled, warn_only=warn_only)
        torch.set_num_threads(threads)


def _make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            model.parameters(),
            lr=config.learning_rate,
            momentum=config.momentum,
            weight_decay=config.weight_decay,
        )
    return torch.optim.Adam(
        model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )


def _config_changes(saved: object, config: TrainConfig) -> list[str]:
    """``field: saved -> now`` for each result-changing field that differs from the saved run."""
    if not isinstance(saved, dict):
        return ["(no config recorded)"]
    now = config.to_dict()
    return [
        f"{key}: {saved.get(key)!r} -> {now[key]!r}"
        for key in now
        if key not in _RESUMABLE_FIELDS and saved.get(key) != now[key]
    ]


def _summary(
    config: TrainConfig,
    spec: ModelSpec,
    history: list[dict[str, Any]],
    num_train: int,
    num_test: int,
) -> dict[str, Any]:
    from dtif import __version__

    return {
        "dtif_version": __version__,
        "config": config.to_dict(),
        "model": spec.to_dict(),
        "dataset": config.dataset,
        "num_train": num_train,
        "num_test": num_test,
        "epochs_done": len(history),
        "finished": len(history) >= config.epochs,
        "test_accuracy": history[-1]["test_accuracy"] if history else None,
        "time_s": round(sum(h["time_s"] for h in history), 3),
        "checkpoint": CHECKPOINT_NAME,
        "history": history,
    }


def _write_summary(path: Path, summary: dict[str, Any]) -> None:
    atomic_write_text(path, json.dumps(summary, indent=2) + "\n")


# ---------------------------------------------------------------------------------------------
# Training


def train(
    config: TrainConfig,
    out_dir: str | Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Train ``config.model`` on ``config.dataset``, checkpointing every epoch.

    Loss: cross-entropy with ``config.label_smoothing``. After each epoch the test accuracy
    is measured (on the ``test_limit`` subset if set), then ``out_dir/checkpoint.pt`` and
    ``out_dir/train.json`` are written atomically, so an interruption loses at most the
    running epoch. A tqdm bar per epoch shows the running loss and accuracy.

    Args:
        config: what to train and how.
        out_dir: output folder, created if missing.
        resume: continue the run in ``out_dir`` from its last completed epoch (bit-identical
            to an uninterrupted run on the same machine and thread count); a finished run is
            returned as is, without loading the data; with no checkpoint there, start a new
            run. ``data_dir``, ``num_threads`` and ``device`` may differ from the saved run's.
        overwrite: replace an existing run in ``out_dir`` (ignored with ``resume``).
        progress: show the tqdm progress bars.
        log: receives one line per epoch (and resume/finish notes).

    Returns:
        The content of ``train.json``: ``dtif_version``, ``config``, ``model`` (spec dict),
        ``dataset``, ``num_train``, ``num_test``, ``epochs_done``, ``finished``,
        ``test_accuracy`` (fraction, last epoch), ``time_s`` (training time summed over
        epochs), ``checkpoint`` (file name) and ``history``: one dict per epoch with
        ``epoch`` (1-based), ``loss``, ``train_accuracy``, ``test_accuracy``, ``lr`` (at the
        epoch's end) and ``time_s``.

    Raises:
        InputError: ``out_dir`` already holds a run and neither ``resume`` nor
            ``overwrite`` is set.
        CheckpointError: ``resume`` with a checkpoint that is corrupt, lacks training state,
            or was trained with a different config (the differing fields are listed).
        DatasetError: the dataset files are missing or corrupt.
        OutputError: ``out_dir`` cannot be created or written.
        KeyboardInterrupt: passed on after logging how to resume.
    """
    out = ensure_writable_dir(out_dir)
    ckpt_path, summary_path = out / CHECKPOINT_NAME, out / SUMMARY_NAME
    if ckpt_path.exists() and not resume and not overwrite:
        raise InputError(
            f"{out} already holds a training run ({CHECKPOINT_NAME}); continue it with "
            "resume=True (--resume), replace it with overwrite=True, or choose another output "
            "directory"
        )

    with _deterministic(config.num_threads):
        return _run(config, ckpt_path, summary_path, resume, progress, log)


@dataclass
class _Resumed:
    """What a checkpoint gives back for ``resume=True``."""

    model: nn.Module
    history: list[dict[str, Any]]
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    num_train: int
    num_test: int


_TRAIN_STATE_KEYS = frozenset(
    {"config", "optimizer", "scheduler", "history", "num_train", "num_test"}
)


def _load_resumable(ckpt_path: Path, config: TrainConfig, spec: ModelSpec) -> _Resumed:
    """Load ``ckpt_path`` for resuming and check that it belongs to this config."""
    ckpt = load_checkpoint(ckpt_path)
    state = ckpt.train_state
    if state is None or not _TRAIN_STATE_KEYS.issubset(state):
        raise CheckpointError(
            f"cannot resume from {ckpt_path}: it holds no training state (optimizer, "
            "scheduler, history); it was not written by dtif train. Train into another "
            "output directory."
        )
    changes = _config_changes(state["config"], config)
    if ckpt.spec != spec:
        changes.append(f"model spec: {ckpt.spec.to_dict()} -> {spec.to_dict()}")
    if changes:
        raise CheckpointError(
            f"cannot resume {ckpt_path} with a different config ({'; '.join(changes)}). "
            "Resume with the run's own settings, or train into a new output directory."
        )
    return _Resumed(
        model=ckpt.model,
        history=list(state["history"])[: ckpt.epoch],
        optimizer=state["optimizer"],
        scheduler=state["scheduler"],
        num_train=int(state["num_train"]),
        num_test=int(state["num_test"]),
    )


def _run(
    config: TrainConfig,
    ckpt_path: Path,
    summary_path: Path,
    resume: bool,
    progress: bool,
    log: Callable[[str], None],
) -> dict[str, Any]:
    device = torch.device(config.device)
    main, world = distributed.is_main(), distributed.world_size()
    if not main:
        log, progress = _silent, False
    info = dataset_info(config.dataset)
    spec = ModelSpec(
        config.model,
        num_classes=info.num_classes,
        in_channels=info.in_channels,
        image_size=info.image_size,
        width=config.width,
    )
    resumed = _load_resumable(ckpt_path, config, spec) if resume and ckpt_path.exists() else None
    if resumed is not None and len(resumed.history) >= config.epochs:
        log(f"{ckpt_path}: the run is finished ({len(resumed.history)}/{config.epochs} epochs)")
        summary = _summary(config, spec, resumed.history, resumed.num_train, resumed.num_test)
        if main:
            _write_summary(summary_path, summary)
        return summary

    train_set = _train_subset(
        load_dataset(config.dataset, "train", config.data_dir), config.train_limit, config.seed
    )
    test_full = load_dataset(config.dataset, "test", config.data_dir)
    test_images, test_labels = _materialize(test_subset(test_full, config.test_limit), test_full)
    num_train, num_test = len(train_set), int(test_images.shape[0])

    torch.manual_seed(config.seed)
    model = (spec.build() if resumed is None else resumed.model).to(device)
    optimizer = _make_optimizer(model, config)
    steps_per_epoch = math.ceil(num_train / config.batch_size)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
        optimizer, T_max=config.epochs * steps_per_epoch
    )
    history: list[dict[str, Any]] = []
    if resumed is not None:
        optimizer.load_state_dict(resumed.optimizer)
        scheduler.load_state_dict(resumed.scheduler)
        history = resumed.history
        log(f"resuming {ckpt_path} after epoch {len(history)}/{config.epochs}")
    criterion = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    net = model if world == 1 else _data_parallel(model, device)

    for epoch in range(len(history), config.epochs):
        start = time.perf_counter()
        seed = _epoch_seed(config.seed, epoch)
        torch.manual_seed(seed)
        loader: Iterable[tuple[torch.Tensor, ...]] = make_loader(
            train_set, config.batch_size, shuffle=True, seed=seed, augment=config.use_augment
        )
        if world > 1:
            loader = _rank_batches(loader, distributed.rank(), world)  # type: ignore[arg-type]  # pairs from make_loader
        bar = tqdm(
            total=steps_per_epoch,
            desc=f"epoch {epoch + 1}/{config.epochs}",
            unit="batch",
            disable=not progress,
            dynamic_ncols=True,
        )
        try:
            with bar:
                loss, train_acc = _train_epoch(
                    net, optimizer, scheduler, criterion, loader, device, bar
                )
            test_acc = _accuracy(model, test_images, test_labels, device) if main else 0.0
            if world > 1:
                test_acc = distributed.broadcast_object(test_acc)  # rank 0's weights and stats
            elapsed = time.perf_counter() - start
            record = {
                "epoch": epoch + 1,
                "loss": loss,
                "train_accuracy": train_acc,
                "test_accuracy": test_acc,
                "lr": scheduler.get_last_lr()[0],
                "time_s": round(elapsed, 3),
            }
            if main:
                save_checkpoint(
                    ckpt_path,
                    model,
                    spec,
                    dataset=config.dataset,
                    mean=info.mean,
                    std=info.std,
                    test_accuracy=test_acc,
                    epoch=epoch + 1,
                    train_state={
                        "config": config.to_dict(),
                        "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(),
                        "history": [*history, record],
                        "num_train": num_train,
                        "num_test": num_test,
                    },
                )
        except KeyboardInterrupt:
            done = f"epoch {epoch} is saved in {ckpt_path}" if epoch else "no epoch was saved"
            log(f"interrupted during epoch {epoch + 1}; {done}. Rerun with --resume to continue.")
            raise
        history.append(record)
        if main:
            _write_summary(summary_path, _summary(config, spec, history, num_train, num_test))
        log(
            f"epoch {epoch + 1}/{config.epochs}: loss {loss:.4f}, train acc {train_acc:.2%}, "
            f"test acc {test_acc:.2%} ({num_test} images), {elapsed:.0f} s"
        )
    model.eval()
    distributed.barrier()  # the checkpoint is written before any rank returns
    return _summary(config, spec, history, num_train, num_test)
