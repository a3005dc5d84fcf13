"""What the commands share: the device, output files, and the checkpoint with its data."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch

from dtif.errors import InputError, OutputError
from dtif.sim import distributed


def device(name: str) -> torch.device:
    """The torch device of `--device` (auto picks CUDA when present).

    Raises:
        InputError: CUDA is asked for and torch sees none.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise InputError("--device cuda asked for, but torch sees no CUDA device")
    return torch.device(name)


def out_file(path: str | Path) -> Path:
    """`path` with its folder created up front (as train and compare create theirs)."""
    out = Path(path)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputError(
            f"cannot create output directory {out.parent} ({err.strerror or err}); "
            "choose another --out"
        ) from err
    return out


# ---- shared pieces -------------------------------------------------------------------------


def workload(args: argparse.Namespace) -> tuple[Any, torch.Tensor, Any, int]:
    """(checkpoint, calibration images, test loader, number of test images).

    Under torchrun the loader covers this rank's shard of the test set (whole batches); the
    number of images is the whole set's.
    """
    from dtif.checkpoint import load_checkpoint
    from dtif.data import calibration_subset, load_dataset, make_loader, test_subset

    ckpt = load_checkpoint(args.checkpoint)
    dev = device(args.device)
    ckpt.model.to(dev)
    train = load_dataset(ckpt.dataset, "train", args.data_dir)
    test = test_subset(
        load_dataset(ckpt.dataset, "test", args.data_dir), args.test_limit, seed=args.seed
    )
    calib = calibration_subset(train, min(args.calib_size, len(train)), seed=args.seed).to(dev)
    part = distributed.shard(test, args.batch_size)
    loader = make_loader(part, batch_size=args.batch_size, shuffle=False, seed=args.seed)
    return ckpt, calib, loader, len(test)  # type: ignore[arg-type]  # Subset has __len__
