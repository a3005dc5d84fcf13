"""The `dtif` command line: parse arguments, call the library, print and write results."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from dtif import distributed
from dtif.errors import DtifError, InputError, OutputError

DEMO_DIR = Path("runs/demo")
# Width 0.5 trains to ~91.7% in 3 epochs, about 2 minutes on 2 cores (width 1: +0.3 points, 3x the time).
DEMO_WIDTH = 0.5


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise InputError("--device cuda asked for, but torch sees no CUDA device")
    return torch.device(name)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _limit(text: str) -> int | None:
    return None if text in ("all", "none", "0") else _positive(text)


def _out_file(path: str | Path) -> Path:
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


def _workload(args: argparse.Namespace) -> tuple[Any, torch.Tensor, Any, int]:
    """(checkpoint, calibration images, test loader, number of test images).

    Under torchrun the loader covers this rank's shard of the test set (whole batches); the
    number of images is the whole set's.
    """
    from dtif.checkpoint import load_checkpoint
    from dtif.data import calibration_subset, load_dataset, make_loader, test_subset

    ckpt = load_checkpoint(args.checkpoint)
    device = _device(args.device)
    ckpt.model.to(device)
    train = load_dataset(ckpt.dataset, "train", args.data_dir)
    test = test_subset(
        load_dataset(ckpt.dataset, "test", args.data_dir), args.test_limit, seed=args.seed
    )
    calib = calibration_subset(train, min(args.calib_size, len(train)), seed=args.seed).to(device)
    part = distributed.shard(test, args.batch_size)
    loader = make_loader(part, batch_size=args.batch_size, shuffle=False, seed=args.seed)
    return ckpt, calib, loader, len(test)  # type: ignore[arg-type]  # Subset has __len__


def _add_workload_args(p: argparse.ArgumentParser, steps: int = 64) -> None:
    p.add_argument("--checkpoint", type=Path, required=True, help="checkpoint.pt from `dtif train`")
    p.add_argument("--num-steps", type=_positive, default=steps, help="T_max (default %(default)s)")
    p.add_argument(
        "--test-limit",
        type=_limit,
        default=None,
        help="a seeded subset of N test images ('all' = whole split)",
    )
    p.add_argument(
        "--calib-size",
        type=_positive,
        default=1000,
        help="calibration images from the training split",
    )
    p.add_argument("--batch-size", type=_positive, default=250)
    p.add_argument("--maxpool", choices=["error", "avg", "gate"], default="error")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--data-dir",
        default=None,
        help="dataset directory (default: $DTIF_DATA or the Debian path)",
    )
    p.add_argument("--device", default="auto", help="cpu, cuda, or auto")


# ---- commands ------------------------------------------------------------------------------


def cmd_train(args: argparse.Namespace) -> int:
    from dtif.train import TrainConfig, train

    cfg = TrainConfig(
        dataset=args.dataset,
        model=args.model,
        width=args.width,
        epochs=args.epochs,
        batch_size=args.batch_size,
        optimizer=args.optimizer,
        lr=args.lr,
        label_smoothing=args.label_smoothing,
        seed=args.seed,
        train_limit=args.train_limit,
        test_limit=args.test_limit,
        data_dir=args.data_dir,
        device=str(_device(args.device)),
    )
    main_rank = distributed.is_main()
    summary = train(cfg, args.out, resume=args.resume, progress=not args.no_progress and main_rank)
    if main_rank:
        print(json.dumps({k: summary[k] for k in ("test_accuracy", "epochs_done") if k in summary}))
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    from dtif.checkpoint import save_snn
    from dtif.methods import get_method
    from dtif.report.compare import build_snn_for

    if not distributed.is_main():
        return 0  # one conversion is enough: rank 0 converts and writes
    out = _out_file(args.out)
    ckpt, calib, _, _ = _workload(args)
    method = get_method(args.method)
    snn = build_snn_for(
        method, ckpt.model, calib, args.maxpool, target_steps=max(1, args.num_steps // 8)
    )
    save_snn(
        out,
        snn,
        ckpt.spec,
        method=method.name,
        neuron=snn.meta["neuron_params"],
        norm=method.norm,
        maxpool=args.maxpool,
    )
    print(f"wrote {args.out}: {len(snn.spiking_layer_names())} spiking layers ({method.name})")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from dtif.methods import get_method
    from dtif.report.compare import build_snn_for
    from dtif.sim.evaluate import evaluate

    out = _out_file(args.out) if args.out else None
    ckpt, calib, loader, n = _workload(args)
    method = get_method(args.method)
    snn = build_snn_for(
        method, ckpt.model, calib, args.maxpool, target_steps=max(1, args.num_steps // 8)
    )
    many = distributed.world_size() > 1
    distributed.broadcast_snn(snn)
    ev = evaluate(
        snn,
        loader,
        args.num_steps,
        progress=not args.no_progress and distributed.is_main(),
        reduce=distributed.all_reduce_totals if many else None,
    )
    if not distributed.is_main():
        return 0
    from dtif.report.table import report_steps

    print(f"{method.name} on {n} test images; ANN {100 * ev.ann_accuracy:.2f}%")
    for t in report_steps(args.num_steps):
        print(
            f"  T={t:4d}  accuracy {100 * ev.accuracy[t - 1]:6.2f}%  SOPs {ev.synops[t - 1]:.3g}  energy {ev.energy_pj[t - 1] / 1e6:.3g} uJ"
        )
    for delta in (1.0, 0.1):
        lat = ev.latency(delta)
        print(f"  L_{delta:g} = {lat if lat is not None else f'not reached by T={args.num_steps}'}")
    if out is not None:
        from dtif.io import atomic_write_text

        atomic_write_text(out, json.dumps({"method": method.to_dict(), **ev.to_dict()}, indent=1))
        print(f"wrote {args.out}")
    return 0


def list_methods() -> str:
    from dtif.methods import DEFAULT_METHODS, METHODS

    width = max(len(n) for n in METHODS)
    lines = [
        f"  {n.ljust(width)}  {m.description}{' (default)' if n in DEFAULT_METHODS else ''}"
        for n, m in METHODS.items()
    ]
    return (
        "methods:\n"
        + "\n".join(lines)
        + '\n  or a .json/.yaml spec file: {"name": ..., "neuron": {"type": "DTIF", "alpha": 4}, "norm": {"type": "PercentileNorm", "p": 99.9}}'
    )


def run_compare(args: argparse.Namespace, title: str = "") -> dict[str, Any]:
    from dtif.methods import parse_methods
    from dtif.metrics.energy import EnergyModel
    from dtif.report.compare import compare_methods
    from dtif.report.table import format_table

    methods = parse_methods(args.methods)
    ckpt, calib, loader, n = _workload(args)
    out = Path(args.out)
    meta = {
        "run": {
            "checkpoint": str(args.checkpoint),
            "num_steps": args.num_steps,
            "num_test": n,
            "seed": args.seed,
            "calib_size": args.calib_size,
            "maxpool": args.maxpool,
        },
        "model": ckpt.spec.to_dict(),
        "dataset": ckpt.dataset,
        "device": str(_device(args.device)),
        "torch": torch.__version__,
    }
    try:
        results = compare_methods(
            ckpt.model,
            calib,
            loader,
            methods,
            args.num_steps,
            n,
            out,
            resume=args.resume,
            maxpool=args.maxpool,
            energy=EnergyModel(args.e_ac, args.e_mac),
            progress=not args.no_progress,
            meta=meta,
            distributed=distributed.world_size() > 1,
        )
    except KeyboardInterrupt:
        print(
            f"\ninterrupted: the methods finished so far are saved in {out / 'results.json'}; "
            "rerun the same command with --resume to continue",
            file=sys.stderr,
        )
        raise SystemExit(130) from None
    if not distributed.is_main():
        return results
    print()
    if title:
        print(title)
    print(format_table(results))
    print(
        f"\nresults: {out / 'results.json'}, {out / 'results.csv'}; plots: {out / 'accuracy_vs_steps.png'}, {out / 'accuracy_vs_energy.png'}"
    )
    return results


def cmd_compare(args: argparse.Namespace) -> int:
    if args.list_methods:
        if distributed.is_main():
            print(list_methods())
        return 0
    if args.checkpoint is None:
        raise InputError("dtif compare needs --checkpoint (or --list-methods)")
    run_compare(args)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from dtif.train import TrainConfig, train

    start = time.monotonic()
    if args.quick:
        cfg = TrainConfig(
            model="cnn",
            width=0.5,
            epochs=1,
            train_limit=5000,
            test_limit=1000,
            data_dir=args.data_dir,
            device=str(_device(args.device)),
        )
        steps, limit = 16, 500
    else:
        cfg = TrainConfig(
            model="cnn",
            width=DEMO_WIDTH,
            epochs=args.epochs,
            data_dir=args.data_dir,
            device=str(_device(args.device)),
        )
        steps, limit = 64, (None if args.full else 2000)
    out = Path(args.out)
    run_dir = out / ("cnn-quick" if args.quick else f"cnn-w{cfg.width:g}-e{cfg.epochs}")
    print(f"== 1/2 train (or reuse) the cnn on Fashion-MNIST -> {run_dir}")
    train(cfg, run_dir, resume=True, progress=not args.no_progress)
    print(
        f"== 2/2 convert and compare ({'full test split' if limit is None else f'{limit} test images'}, T_max={steps})"
    )
    ns = argparse.Namespace(
        checkpoint=run_dir / "checkpoint.pt",
        num_steps=steps,
        test_limit=limit,
        calib_size=1000,
        batch_size=250,
        maxpool="error",
        seed=0,
        data_dir=args.data_dir,
        device=args.device,
        methods=args.methods,
        out=str(run_dir / "compare"),
        resume=False,
        e_ac=0.9,
        e_mac=4.6,
        no_progress=args.no_progress,
    )
    run_compare(ns)
    print(f"\ndemo finished in {time.monotonic() - start:.0f} s")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from dtif.checkpoint import load_snn
    from dtif.export import export_nir

    snn = load_snn(args.snn)
    export_nir(snn, args.out)
    print(f"wrote {args.out} (NIR)")
    return 0


# ---- parser --------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    from dtif.methods import DEFAULT_METHODS

    parser = argparse.ArgumentParser(
        prog="dtif", description="Low-latency ANN-to-SNN conversion with DTIF neurons."
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train an ANN and write a checkpoint")
    p.add_argument("--dataset", default="fashion-mnist")
    p.add_argument("--model", default="cnn")
    p.add_argument("--width", type=float, default=1.0)
    p.add_argument("--epochs", type=_positive, default=3)
    p.add_argument("--batch-size", type=_positive, default=128)
    p.add_argument("--optimizer", choices=["sgd", "adam"], default="sgd")
    p.add_argument("--lr", type=float, default=None, help="default: 0.05 (sgd) or 1e-3 (adam)")
    p.add_argument("--label-smoothing", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--train-limit", type=_limit, default=None)
    p.add_argument("--test-limit", type=_limit, default=None)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    p.add_argument("--device", default="auto", help="cpu, cuda, or auto")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("convert", help="convert a checkpoint to an SNN and save it")
    _add_workload_args(p)
    p.add_argument("--method", default="dtif")
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("evaluate", help="evaluate one method")
    _add_workload_args(p)
    p.add_argument("--method", default="dtif")
    p.add_argument("--out", default=None, help="write the evaluation as JSON")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("compare", help="compare methods: table, JSON, CSV, plots")
    _add_workload_args(p)
    p._option_string_actions["--checkpoint"].required = False
    p.add_argument(
        "--methods", default=",".join(DEFAULT_METHODS), help="comma-separated names or spec files"
    )
    p.add_argument("--list-methods", action="store_true", help="list the method names and exit")
    p.add_argument("--out", default="runs/compare")
    p.add_argument("--resume", action="store_true", help="reuse methods already in --out")
    p.add_argument("--e-ac", type=float, default=0.9, help="energy of an accumulate, pJ")
    p.add_argument("--e-mac", type=float, default=4.6, help="energy of a MAC, pJ")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser(
        "demo", help="the main job: train (or reuse) the cnn on Fashion-MNIST and compare"
    )
    g = p.add_mutually_exclusive_group()
    g.add_argument("--quick", action="store_true", help="a smoke run (minutes)")
    g.add_argument("--full", action="store_true", help="the whole 10k test split")
    p.add_argument("--epochs", type=_positive, default=3)
    p.add_argument("--methods", default=",".join(DEFAULT_METHODS))
    p.add_argument("--out", default=str(DEMO_DIR))
    p.add_argument("--data-dir", default=None)
    p.add_argument("--device", default="auto")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("export", help="export a saved SNN (from `dtif convert`)")
    p.add_argument("--snn", type=Path, required=True)
    p.add_argument("--format", choices=["nir"], default="nir")
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(func=cmd_export)
    return parser


#: Commands that run under torchrun (one process per rank).
DISTRIBUTED_COMMANDS = ("train", "convert", "evaluate", "compare")


def _join_process_group(args: argparse.Namespace) -> bool:
    """Join torchrun's process group (gloo, or NCCL for CUDA); True when this call joined."""
    if args.command in DISTRIBUTED_COMMANDS:
        return distributed.init_from_env(_device(args.device))
    if os.environ.get("WORLD_SIZE", "1") not in ("", "1"):
        raise InputError(
            f"dtif {args.command} runs in one process; under torchrun use "
            f"{', '.join(DISTRIBUTED_COMMANDS)}"
        )
    return False


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `dtif` command."""
    args = build_parser().parse_args(argv)
    joined = False
    try:
        joined = _join_process_group(args)
        return int(args.func(args))
    except DtifError as err:
        print(f"dtif {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"dtif {args.command}: interrupted", file=sys.stderr)
        return 130
    finally:
        if joined:
            distributed.destroy()


if __name__ == "__main__":
    raise SystemExit(main())
