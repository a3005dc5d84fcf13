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

import math
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from dtif.checkpoint import save_checkpoint
from dtif.data import (
    USER_DATASETS,
    calibration_subset,
    dataset_info,
    load_splits,
    make_loader,
    test_subset,
)
from dtif.errors import InputError
from dtif.io import ensure_writable_dir
from dtif.models import ModelSpec
from dtif.sim import distributed
from dtif.train.config import TrainConfig
from dtif.train.qcfs import init_from_checkpoint
from dtif.train.state import (
    CHECKPOINT_NAME,
    SUMMARY_NAME,
    deterministic,
    load_resumable,
    make_optimizer,
    run_summary,
    write_summary,
)
from dtif.train.steps import (
    accuracy,
    data_parallel,
    epoch_seed,
    materialize,
    rank_batches,
    silent,
    train_epoch,
    train_subset,
)

#: Training images whose ReLU outputs set each lambda when a ReLU checkpoint becomes QCFS.
_INIT_IMAGES = 1024


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

    with deterministic(config.num_threads):
        return _run(config, ckpt_path, summary_path, resume, progress, log)


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
        log, progress = silent, False
    splits = None
    if config.dataset in USER_DATASETS:  # the data say what the model takes
        splits = load_splits(
            config.dataset, config.data_dir, config.image_size, config.mean, config.std
        )
        info = splits[0].info
        if info.image_size != splits[0].images.shape[-1]:
            raise InputError(
                f"the zoo models take square images; the {config.dataset} images are "
                f"{list(splits[0].images.shape[-2:])} (H, W). Give --image-size N."
            )
    else:
        info = dataset_info(config.dataset)
    spec = ModelSpec(
        config.model,
        num_classes=info.num_classes,
        in_channels=info.in_channels,
        image_size=info.image_size,
        width=config.width,
        kwargs=config.model_kwargs,
    )
    resumed = load_resumable(ckpt_path, config, spec) if resume and ckpt_path.exists() else None
    if resumed is not None and len(resumed.history) >= config.epochs:
        log(f"{ckpt_path}: the run is finished ({len(resumed.history)}/{config.epochs} epochs)")
        summary = run_summary(config, spec, resumed.history, resumed.num_train, resumed.num_test)
        if main:
            write_summary(summary_path, summary)
        return summary

    train_full, test_full = splits or load_splits(
        config.dataset, config.data_dir, config.image_size, config.mean, config.std
    )
    train_set = train_subset(train_full, config.train_limit, config.seed)
    test_images, test_labels = materialize(test_subset(test_full, config.test_limit), test_full)
    num_train, num_test = len(train_set), int(test_images.shape[0])

    torch.manual_seed(config.seed)
    if resumed is not None:
        model = resumed.model
    elif config.init_from is not None:
        calib = calibration_subset(train_set, min(_INIT_IMAGES, num_train), config.seed)
        model = init_from_checkpoint(
            config.init_from, spec, config.dataset, calib, config.init_percentile
        )
        log(f"initialised from {config.init_from}")
    else:
        model = spec.build()
    model = model.to(device)
    optimizer = make_optimizer(model, config)
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
    net = model if world == 1 else data_parallel(model, device)

    for epoch in range(len(history), config.epochs):
        start = time.perf_counter()
        seed = epoch_seed(config.seed, epoch)
        torch.manual_seed(seed)
        loader: Iterable[tuple[torch.Tensor, ...]] = make_loader(
            train_set, config.batch_size, shuffle=True, seed=seed, augment=config.use_augment
        )
        if world > 1:
            loader = rank_batches(loader, distributed.rank(), world)  # type: ignore[arg-type]  # pairs from make_loader
        bar = tqdm(
            total=steps_per_epoch,
            desc=f"epoch {epoch + 1}/{config.epochs}",
            unit="batch",
            disable=not progress,
            dynamic_ncols=True,
        )
        try:
            with bar:
                loss, train_acc = train_epoch(
                    net,
                    optimizer,
                    scheduler,
                    criterion,
                    loader,
                    device,
                    bar,
                    config.train_levels or (),
                    seed,
                )
            test_acc = accuracy(model, test_images, test_labels, device) if main else 0.0
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
            write_summary(summary_path, run_summary(config, spec, history, num_train, num_test))
        log(
            f"epoch {epoch + 1}/{config.epochs}: loss {loss:.4f}, train acc {train_acc:.2%}, "
            f"test acc {test_acc:.2%} ({num_test} images), {elapsed:.0f} s"
        )
    model.eval()
    distributed.barrier()  # the checkpoint is written before any rank returns
    return run_summary(config, spec, history, num_train, num_test)
