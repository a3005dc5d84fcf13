"""The `dtif` argument parser: one sub-parser per command; `main` dispatches on its name."""

from __future__ import annotations

import argparse
from pathlib import Path

from dtif.convert.options import MAXPOOL_POLICIES
from dtif.methods import DEFAULT_METHODS

# The demo trains the cnn at width 0.5: a third of width 1's training time, at nearly its accuracy.
DEMO_WIDTH = 0.5
DEMO_DIR = Path("runs/demo")
# The demo's methods: max norm (the paper's reference), the strongest fixed IF baseline, the
# control of the calibrated search (alpha = 0), and calibrated DTIF. T_max 128 lets if-max
# reach its L_1, so the paper's speed-up and energy ratio print as numbers.
DEMO_METHODS = ("if-max", "if-p99.9-v0.5", "if-auto", "dtif-auto")
DEMO_STEPS = 128
DEMO_EXIT = "auto"
DEMO_EXIT_METHOD = "dtif-auto"


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def limit(text: str) -> int | None:
    return None if text in ("all", "none", "0") else positive(text)


def add_data_args(p: argparse.ArgumentParser) -> None:
    """--image-size, --mean, --std: the user's own images (--dataset folder or npz)."""
    p.add_argument(
        "--image-size", type=positive, default=None, help="folder/npz: resize images to N x N"
    )
    p.add_argument(
        "--mean",
        type=floats,
        default=None,
        help="folder/npz: per-channel mean, e.g. 0.5 or 0.49,0.48,0.45 (default: the train split's)",
    )
    p.add_argument(
        "--std",
        type=floats,
        default=None,
        help="folder/npz: per-channel std (default: the train split's)",
    )


def floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated numbers, got {text!r}"
        ) from None


def levels_list(text: str) -> tuple[int, ...]:
    """A comma list of QCFS levels, e.g. ``2,3,4,5,6,7,8``."""
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated ints >= 1, e.g. 2,3,4,5,6,7,8, got {text!r}"
        ) from None
    return values  # each checked by TrainConfig


def add_model_file_args(p: argparse.ArgumentParser) -> None:
    """Your own model and data in place of --checkpoint."""
    p.add_argument(
        "--model-file",
        default=None,
        metavar="PATH.py:FACTORY",
        help="your own model: FACTORY(**kwargs) in PATH.py builds it. This RUNS the code in "
        "PATH.py; use only files you trust. Needs --weights and --dataset",
    )
    p.add_argument(
        "--model-kwargs", default=None, metavar="JSON", help="keyword arguments of FACTORY"
    )
    p.add_argument(
        "--weights",
        type=Path,
        default=None,
        help="the model's state_dict: a .pt file (loaded as tensors only) or .safetensors",
    )
    p.add_argument(
        "--output",
        default=None,
        help="for a model that returns a tuple/list/dict: the index or key of the logits",
    )
    p.add_argument(
        "--dataset",
        default=None,
        help="a built-in dataset, folder (--data-dir DIR with train/CLASS/*, test/CLASS/*) or "
        "npz (--data-dir FILE.npz); default: the checkpoint's",
    )
    add_data_args(p)


def add_workload_args(p: argparse.ArgumentParser, steps: int = 64) -> None:
    p.add_argument(
        "--checkpoint",
        type=Path,
        default=None,
        help="checkpoint.pt from `dtif train` (or give --model-file and --weights)",
    )
    add_model_file_args(p)
    p.add_argument("--num-steps", type=positive, default=steps, help="T_max (default %(default)s)")
    p.add_argument(
        "--test-limit",
        type=limit,
        default=None,
        help="a seeded subset of N test images ('all' = whole split)",
    )
    p.add_argument(
        "--calib-size",
        type=positive,
        default=1000,
        help="calibration images from the training split",
    )
    p.add_argument("--batch-size", type=positive, default=250)
    p.add_argument("--maxpool", choices=MAXPOOL_POLICIES, default="error")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--data-dir",
        default=None,
        help="dataset directory (default: $DTIF_DATA or the Debian path)",
    )
    p.add_argument("--device", default="auto", help="cpu, cuda, or auto")


def add_exit_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--early-exit",
        nargs="?",
        const="auto",
        default=None,
        metavar="SPEC",
        help="also run with early exit per image: auto (calibrated on the calibration images "
        "for at most 0.5 points of loss against the ANN; the default SPEC), auto:POINTS, "
        "margin:THRESHOLD[:k=K] or confidence:THRESHOLD[:k=K]",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dtif", description="Low-latency ANN-to-SNN conversion with DTIF neurons."
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train an ANN and write a checkpoint")
    p.add_argument("--dataset", default="fashion-mnist")
    p.add_argument("--model", default="cnn")
    p.add_argument("--width", type=float, default=1.0)
    p.add_argument("--epochs", type=positive, default=3)
    p.add_argument("--batch-size", type=positive, default=128)
    p.add_argument("--optimizer", choices=["sgd", "adam"], default="sgd")
    p.add_argument("--lr", type=float, default=None, help="default: 0.05 (sgd) or 1e-3 (adam)")
    p.add_argument("--label-smoothing", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--train-limit", type=limit, default=None)
    p.add_argument("--test-limit", type=limit, default=None)
    p.add_argument(
        "--data-dir", default=None, help="dataset folder; folder: DIR/train/CLASS/*; npz: FILE"
    )
    add_data_args(p)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    p.add_argument("--device", default="auto", help="cpu, cuda, or auto")
    p.add_argument(
        "--activation",
        choices=["relu", "qcfs"],
        default="relu",
        help="qcfs: conversion-aware training (quantization-clip-floor-shift, Bu et al. 2022)",
    )
    p.add_argument("--levels", type=int, default=None, help="QCFS levels L (4 or 8 are usual)")
    p.add_argument(
        "--train-levels",
        type=levels_list,
        default=None,
        help="QCFS: each batch quantizes to levels drawn from this comma list (e.g. "
        "2,3,4,5,6,7,8), so the network is also accurate at small T; the checkpoint keeps --levels",
    )
    p.add_argument(
        "--init-from",
        type=Path,
        default=None,
        help="start from this checkpoint's weights (fine-tune); a ReLU checkpoint trained "
        "with --activation qcfs gets each lambda from its ReLU outputs on training images",
    )
    p.add_argument(
        "--init-percentile",
        type=float,
        default=99.9,
        help="with --init-from: the percentile of each ReLU's outputs that sets lambda",
    )

    p = sub.add_parser("convert", help="convert a checkpoint to an SNN and save it")
    add_workload_args(p)
    p.add_argument("--method", default="dtif")
    p.add_argument("--out", type=Path, required=True)

    p = sub.add_parser("evaluate", help="evaluate one method")
    add_workload_args(p)
    p.add_argument("--method", default="dtif")
    p.add_argument("--out", default=None, help="write the evaluation as JSON")
    add_exit_args(p)

    p = sub.add_parser("compare", help="compare methods: table, JSON, CSV, plots")
    add_workload_args(p)
    p.add_argument(
        "--methods", default=",".join(DEFAULT_METHODS), help="comma-separated names or spec files"
    )
    p.add_argument("--list-methods", action="store_true", help="list the method names and exit")
    p.add_argument("--out", default="runs/compare")
    p.add_argument("--resume", action="store_true", help="reuse methods already in --out")
    p.add_argument("--e-ac", type=float, default=0.9, help="energy of an accumulate, pJ")
    p.add_argument("--e-mac", type=float, default=4.6, help="energy of a MAC, pJ")
    add_exit_args(p)
    p.add_argument(
        "--early-exit-methods",
        default=None,
        help="comma-separated methods that --early-exit applies to (default: all)",
    )
    p.add_argument(
        "--per-image",
        action="store_true",
        help="keep whether each test image is right at each step (OUT/per_image/), for "
        "`dtif paired`; one process only",
    )

    p = sub.add_parser(
        "paired", help="is one method's latency really lower? paired bootstrap of two methods"
    )
    p.add_argument("--run", required=True, help="the --out folder of `dtif compare --per-image`")
    p.add_argument("--methods", required=True, help="two method names of that run: A,B")
    p.add_argument("--delta", type=float, default=1.0, help="L_delta's delta, points")
    p.add_argument("--resamples", type=positive, default=2000)
    p.add_argument("--seed", type=int, default=0, help="seed of the resampling")

    p = sub.add_parser(
        "demo", help="the main job: train (or reuse) the cnn on Fashion-MNIST and compare"
    )
    g = p.add_mutually_exclusive_group()
    g.add_argument("--quick", action="store_true", help="a smoke run (minutes)")
    g.add_argument("--full", action="store_true", help="the whole 10k test split")
    p.add_argument("--epochs", type=positive, default=3)
    p.add_argument("--methods", default=",".join(DEMO_METHODS))
    p.add_argument(
        "--num-steps", type=positive, default=DEMO_STEPS, help="T_max (default %(default)s)"
    )
    p.add_argument(
        "--early-exit",
        default=DEMO_EXIT,
        metavar="SPEC",
        help="the early-exit policy of the demo's exit line ('none' for no line)",
    )
    p.add_argument("--out", default=str(DEMO_DIR))
    p.add_argument("--data-dir", default=None)
    p.add_argument("--device", default="auto")

    p = sub.add_parser("export", help="export a saved SNN (from `dtif convert`)")
    p.add_argument("--snn", type=Path, required=True)
    p.add_argument("--format", choices=["nir"], default="nir")
    p.add_argument(
        "--model-file",
        default=None,
        metavar="PATH.py:FACTORY",
        help="for an SNN converted from your own model file: that file, which is RUN to "
        "rebuild the network; use only files you trust",
    )
    p.add_argument("--out", type=Path, required=True)
    p.add_argument(
        "--no-portable",
        dest="portable",
        action="store_false",
        help="NIR: write dtif's lossless encoding (nir.Scale nodes), which only dtif reads back",
    )
    p.add_argument(
        "--spike-rule",
        choices=["strict", "inclusive"],
        default="strict",
        help="NIR: the reader fires at v > v_threshold (strict: the spec, Norse) or at "
        "v >= v_threshold (inclusive: SpikingJelly)",
    )
    return parser
