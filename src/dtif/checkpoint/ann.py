"""ANN checkpoints (format "dtif-checkpoint"): a trained model's weights and how to rebuild it."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from dtif.checkpoint.files import (
    CHECKPOINT_FORMAT,
    check_plain,
    field,
    floats,
    header,
    load_weights,
    plain_state_dict,
    read_payload,
    read_spec,
    read_state_dict,
)
from dtif.io import atomic_torch_save
from dtif.models import ModelSpec


@dataclass
class Checkpoint:
    """A loaded ANN checkpoint.

    Attributes:
        model: the rebuilt model with the saved weights, in eval mode.
        spec: name and arguments that rebuild the architecture.
        dataset: name of the dataset it was trained on.
        mean: per-channel normalisation mean of the inputs, ``C`` values.
        std: per-channel normalisation std of the inputs, ``C`` values.
        test_accuracy: test accuracy (fraction in ``[0, 1]``) when saved, or ``None``.
        epoch: number of completed training epochs.
        dtif_version: dtif version that wrote the file.
        train_state: optimizer/scheduler state etc. for resuming, or ``None``.
        path: the file it was loaded from.
    """

    model: nn.Module
    spec: ModelSpec
    dataset: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    test_accuracy: float | None
    epoch: int
    dtif_version: str
    train_state: dict[str, Any] | None
    path: Path


_CHECKPOINT_FIX = (
    "Train a new one with `dtif train --out DIR` (it writes DIR/checkpoint.pt) or pass the "
    "right --checkpoint."
)


def save_checkpoint(
    path: str | os.PathLike[str],
    model: nn.Module,
    spec: ModelSpec,
    *,
    dataset: str,
    mean: Sequence[float],
    std: Sequence[float],
    test_accuracy: float | None,
    epoch: int,
    train_state: dict[str, Any] | None = None,
) -> Path:
    """Write an ANN checkpoint atomically (temp file, fsync, rename).

    Args:
        path: target file; its directory must exist.
        model: the model; its ``state_dict()`` is saved (moved to the CPU).
        spec: the spec that rebuilds ``model`` (``spec.build()``).
        dataset: name of the training dataset.
        mean: per-channel input normalisation mean.
        std: per-channel input normalisation std.
        test_accuracy: test accuracy as a fraction in ``[0, 1]``, or ``None``.
        epoch: completed training epochs.
        train_state: state for resuming (optimizer, scheduler, ...): plain values only.

    Returns:
        ``path`` as a ``Path``.

    Raises:
        InputError: ``train_state`` or the spec's kwargs hold a non-plain value.
        OutputError: the file cannot be written; any previous file is unchanged.
    """
    payload: dict[str, Any] = {
        **header(CHECKPOINT_FORMAT),
        "model": spec.to_dict(),
        "dataset": str(dataset),
        "mean": [float(m) for m in mean],
        "std": [float(s) for s in std],
        "test_accuracy": None if test_accuracy is None else float(test_accuracy),
        "epoch": int(epoch),
        "state_dict": plain_state_dict(model),
        "train_state": train_state,
    }
    check_plain(payload, "checkpoint")
    return atomic_torch_save(payload, path)


def load_checkpoint(path: str | os.PathLike[str], map_location: Any = "cpu") -> Checkpoint:
    """Load an ANN checkpoint written by :func:`save_checkpoint`, safely.

    Reads with ``torch.load(weights_only=True)`` only, rebuilds the model from the recorded
    spec, and loads the weights strictly.

    Args:
        path: the checkpoint file.
        map_location: where to put the tensors (as ``torch.load``).

    Returns:
        The :class:`Checkpoint`, its model in eval mode.

    Raises:
        CheckpointError: the file is missing, truncated or corrupt, carries a pickle payload,
            is not a dtif checkpoint, was written by a newer dtif, or its weights do not match
            the architecture it names (the first mismatches are listed). Each message names
            the file and the fix.
    """
    file = Path(path)
    payload = read_payload(file, CHECKPOINT_FORMAT, "checkpoint", _CHECKPOINT_FIX, map_location)
    spec = read_spec(payload, file, _CHECKPOINT_FIX)
    state = read_state_dict(payload, file)
    model = spec.build()
    load_weights(model, state, file, f"model {spec.name!r} (width {spec.width})", _CHECKPOINT_FIX)
    model.eval()
    accuracy = field(payload, "test_accuracy", (float, int, type(None)), file)
    train_state = field(payload, "train_state", (dict, type(None)), file)
    return Checkpoint(
        model=model,
        spec=spec,
        dataset=field(payload, "dataset", (str,), file),
        mean=floats(payload, "mean", file),
        std=floats(payload, "std", file),
        test_accuracy=None if accuracy is None else float(accuracy),
        epoch=field(payload, "epoch", (int,), file),
        dtif_version=str(payload["dtif_version"]),
        train_state=train_state,
        path=file,
    )
