"""What the commands share: the device, output files, and the checkpoint with its data."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dtif.checkpoint.user_model import UserModel
from dtif.errors import InputError, OutputError
from dtif.models import ModelSpec
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


@dataclass
class Source:
    """The ANN a command works on: from a checkpoint, or the user's own model file.

    Attributes:
        model: the model, in eval mode.
        spec: the zoo spec that rebuilds it (None for a --model-file model).
        dataset: the dataset name.
        mean, std: the input normalisation (a checkpoint's, or None: from the data).
        described: what results.json records as the model.
        recipe: what an SNN file records to rebuild it (a spec, or the model file's recipe).
    """

    model: nn.Module
    spec: ModelSpec | None
    dataset: str
    mean: tuple[float, ...] | None
    std: tuple[float, ...] | None
    described: dict[str, Any]
    recipe: ModelSpec | UserModel


def _output_key(text: str | None) -> int | str | None:
    if text is None:
        return None
    return int(text) if text.lstrip("-").isdigit() else text


def model_source(args: argparse.Namespace) -> Source:
    """The checkpoint's model, or the --model-file model with its --weights.

    Raises:
        InputError: neither or both of --checkpoint and --model-file; a model file without
            --weights or --dataset; --model-kwargs or --weights without --model-file.
    """
    from dtif.checkpoint import load_checkpoint
    from dtif.checkpoint.user_model import load_user_model, parse_model_kwargs
    from dtif.convert import pick_output

    if args.checkpoint is not None and args.model_file is not None:
        raise InputError("give --checkpoint or --model-file (with --weights), not both")
    if args.model_file is None:
        if args.checkpoint is None:
            listing = " (or --list-methods)" if args.command == "compare" else ""
            raise InputError(
                f"dtif {args.command} needs --checkpoint{listing}, or --model-file "
                "PATH.py:FACTORY with --weights and --dataset"
            )
        for flag in ("model_kwargs", "weights"):
            if getattr(args, flag) is not None:
                raise InputError(f"--{flag.replace('_', '-')} goes with --model-file")
        ckpt = load_checkpoint(args.checkpoint)
        model = (
            ckpt.model if args.output is None else pick_output(ckpt.model, _output_key(args.output))
        )
        dataset = args.dataset or ckpt.dataset
        return Source(
            model, ckpt.spec, dataset, ckpt.mean, ckpt.std, ckpt.spec.to_dict(), ckpt.spec
        )
    if args.dataset is None:
        raise InputError(
            "--model-file needs --dataset (a built-in name, folder or npz) and its --data-dir"
        )
    kwargs = parse_model_kwargs(args.model_kwargs)
    model = load_user_model(args.model_file, kwargs, args.weights)
    if args.output is not None:
        model = pick_output(model, _output_key(args.output))
    described = {
        "model_file": args.model_file,
        "model_kwargs": kwargs,
        "weights": str(args.weights),
        "output": args.output,
    }
    recipe = UserModel(args.model_file, kwargs, _output_key(args.output))
    return Source(model, None, args.dataset, None, None, described, recipe)


def workload(args: argparse.Namespace) -> tuple[Source, torch.Tensor, Any, int]:
    """(model source, calibration images, test loader, number of test images).

    Calibration images come from the training split only; when it holds fewer than
    --calib-size, all of them are used and the run says so. Under torchrun the loader covers
    this rank's shard of the test set (whole batches); the number of images is the whole set's.
    """
    from dtif.data import USER_DATASETS, calibration_subset, load_splits, make_loader, test_subset

    source = model_source(args)
    dev = device(args.device)
    source.model.to(dev)
    user_data = source.dataset in USER_DATASETS
    image_size = args.image_size
    if user_data and image_size is None and source.spec is not None:
        image_size = source.spec.image_size  # the size the checkpoint was trained at
    mean = args.mean if args.mean is not None else (source.mean if user_data else None)
    std = args.std if args.std is not None else (source.std if user_data else None)
    train, test_full = load_splits(source.dataset, args.data_dir, image_size, mean, std)
    test = test_subset(test_full, args.test_limit, seed=args.seed)
    if len(train) < args.calib_size and distributed.is_main():
        print(
            f"note: the training split holds {len(train)} images, fewer than --calib-size "
            f"{args.calib_size}; all {len(train)} calibrate the thresholds",
            file=sys.stderr,
        )
    calib = calibration_subset(train, min(args.calib_size, len(train)), seed=args.seed).to(dev)
    part = distributed.shard(test, args.batch_size)
    loader = make_loader(part, batch_size=args.batch_size, shuffle=False, seed=args.seed)
    return source, calib, loader, len(test)  # type: ignore[arg-type]  # Subset has __len__
