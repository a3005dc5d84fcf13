"""What a training run keeps between epochs: determinism, the optimizer, the summary, resuming."""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dtif.checkpoint import load_checkpoint
from dtif.errors import CheckpointError
from dtif.io import atomic_write_text
from dtif.models import ModelSpec
from dtif.train.config import TrainConfig
from dtif.version import __version__

CHECKPOINT_NAME = "checkpoint.pt"
SUMMARY_NAME = "train.json"
#: Config fields that do not change the result, so a run may resume with other values.
_RESUMABLE_FIELDS = frozenset({"data_dir", "num_threads", "device"})


@contextlib.contextmanager
def deterministic(num_threads: int | None) -> Iterator[None]:
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


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
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


def config_changes(saved: object, config: TrainConfig) -> list[str]:
    """``field: saved -> now`` for each result-changing field that differs from the saved run."""
    if not isinstance(saved, dict):
        return ["(no config recorded)"]
    now = config.to_dict()
    # A run saved before a field existed ran with that field's default.
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    saved = {**defaults, **saved}
    return [
        f"{key}: {saved.get(key)!r} -> {now[key]!r}"
        for key in now
        if key not in _RESUMABLE_FIELDS and saved.get(key) != now[key]
    ]


def run_summary(
    config: TrainConfig,
    spec: ModelSpec,
    history: list[dict[str, Any]],
    num_train: int,
    num_test: int,
) -> dict[str, Any]:
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


def write_summary(path: Path, summary: dict[str, Any]) -> None:
    atomic_write_text(path, json.dumps(summary, indent=2) + "\n")


@dataclass
class Resumed:
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


def load_resumable(ckpt_path: Path, config: TrainConfig, spec: ModelSpec) -> Resumed:
    """Load ``ckpt_path`` for resuming and check that it belongs to this config."""
    ckpt = load_checkpoint(ckpt_path)
    state = ckpt.train_state
    if state is None or not _TRAIN_STATE_KEYS.issubset(state):
        raise CheckpointError(
            f"cannot resume from {ckpt_path}: it holds no training state (optimizer, "
            "scheduler, history); it was not written by dtif train. Train into another "
            "output directory."
        )
    changes = config_changes(state["config"], config)
    if ckpt.spec != spec:
        changes.append(f"model spec: {ckpt.spec.to_dict()} -> {spec.to_dict()}")
    if changes:
        raise CheckpointError(
            f"cannot resume {ckpt_path} with a different config ({'; '.join(changes)}). "
            "Resume with the run's own settings, or train into a new output directory."
        )
    return Resumed(
        model=ckpt.model,
        history=list(state["history"])[: ckpt.epoch],
        optimizer=state["optimizer"],
        scheduler=state["scheduler"],
        num_train=int(state["num_train"]),
        num_test=int(state["num_test"]),
    )
