"""The `dtif` commands: each parses nothing, calls the library, prints and writes results."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

from dtif.cli.parser import DEMO_EXIT_METHOD, DEMO_WIDTH, build_parser
from dtif.cli.workload import device, out_file, workload
from dtif.errors import InputError
from dtif.sim import distributed


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
        image_size=args.image_size,
        mean=args.mean,
        std=args.std,
        device=str(device(args.device)),
        activation=args.activation,
        levels=args.levels,
        train_levels=args.train_levels,
        init_from=None if args.init_from is None else str(args.init_from),
        init_percentile=args.init_percentile,
    )
    main_rank = distributed.is_main()
    summary = train(cfg, args.out, resume=args.resume, progress=not args.no_progress and main_rank)
    if main_rank:
        print(json.dumps({k: summary[k] for k in ("test_accuracy", "epochs_done") if k in summary}))
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    from dtif.checkpoint import save_snn
    from dtif.methods import get_method

    if not distributed.is_main():
        return 0  # one conversion is enough: rank 0 converts and writes
    out = out_file(args.out)
    ckpt, calib, _, _ = workload(args)
    method = get_method(args.method)
    snn = method.build(ckpt.model, calib, args.maxpool, target_steps=max(1, args.num_steps // 8))
    save_snn(out, snn, ckpt.recipe, method=method.name, norm=method.norm, maxpool=args.maxpool)
    print(f"wrote {args.out}: {len(snn.spiking_layer_names())} spiking layers ({method.name})")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from dtif.methods import get_method
    from dtif.sim.evaluate import evaluate

    out = out_file(args.out) if args.out else None
    ckpt, calib, loader, n = workload(args)
    method = get_method(args.method)
    snn = method.build(ckpt.model, calib, args.maxpool, target_steps=max(1, args.num_steps // 8))
    many = distributed.world_size() > 1
    distributed.broadcast_snn(snn)
    policy, calibration = _exit_policy(args, snn, calib)
    ev = evaluate(
        snn,
        loader,
        args.num_steps,
        progress=not args.no_progress and distributed.is_main(),
        reduce=distributed.all_reduce_totals if many else None,
        exit=policy,
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
    if policy is not None:
        st = ev.exit_stats()
        print(
            f"  early exit ({policy}): each image stops at its exit step, so accuracy at T "
            f"counts it at min(T, exit); at exit {100 * st['accuracy']:.2f}%, mean exit step "
            f"{st['mean_step']:.2f} (median {st['median_step']}, p95 {st['p95_step']})"
        )
    if out is not None:
        from dtif.io import atomic_write_text

        doc = {"method": method.to_dict(), **ev.to_dict()}
        if calibration is not None:
            doc["exit_calibration"] = calibration
        atomic_write_text(out, json.dumps(doc, indent=1))
        print(f"wrote {args.out}")
    return 0


def _exit_policy(
    args: argparse.Namespace, snn: Any, calib: torch.Tensor
) -> tuple[Any, dict[str, Any] | None]:
    """(the `--early-exit` policy or None, its calibration as a dict or None): `auto`
    calibrates on the calibration images, never on the test set."""
    from dtif.sim.early_exit import AutoExit, parse_exit
    from dtif.sim.exit_calibration import calibrate_exit

    if args.early_exit is None:
        return None, None
    spec = parse_exit(args.early_exit)
    if not isinstance(spec, AutoExit):
        return spec, None
    cal = calibrate_exit(snn, calib, args.num_steps, spec.target_loss)
    return distributed.broadcast_object(cal.policy), cal.to_dict()


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


def run_compare(
    args: argparse.Namespace, title: str = "", verdict_for: str | None = None
) -> dict[str, Any]:
    from dtif.methods import parse_methods
    from dtif.metrics.energy import EnergyModel
    from dtif.report.compare import compare_methods
    from dtif.report.table import format_table, verdict
    from dtif.sim.early_exit import parse_exit

    methods = parse_methods(args.methods)
    early_exit = None if args.early_exit is None else parse_exit(args.early_exit)
    exit_methods = None
    if args.early_exit_methods:
        exit_methods = [m.strip() for m in args.early_exit_methods.split(",") if m.strip()]
        unknown = sorted(set(exit_methods) - {m.name for m in methods} - {"if-max"})
        if unknown:
            raise InputError(
                f"--early-exit-methods names {', '.join(unknown)}, which --methods does not run"
            )
    ckpt, calib, loader, n = workload(args)
    out = Path(args.out)
    meta = {
        "run": {
            "checkpoint": None if args.checkpoint is None else str(args.checkpoint),
            "num_steps": args.num_steps,
            "num_test": n,
            "seed": args.seed,
            "calib_size": args.calib_size,
            "maxpool": args.maxpool,
        },
        "model": ckpt.described,
        "dataset": ckpt.dataset,
        "device": str(device(args.device)),
        "torch": torch.__version__,
    }
    if early_exit is not None:  # a run with another policy is not resumed from this one
        meta["run"]["early_exit"] = [args.early_exit, exit_methods]
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
            early_exit=early_exit,
            exit_methods=exit_methods,
            per_image=args.per_image,
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
    if verdict_for:
        print(verdict(results, verdict_for))
    print(
        f"\nresults: {out / 'results.json'}, {out / 'results.csv'}; plots: {out / 'accuracy_vs_steps.png'}, {out / 'accuracy_vs_energy.png'}"
    )
    return results


def cmd_compare(args: argparse.Namespace) -> int:
    if args.list_methods:
        if distributed.is_main():
            print(list_methods())
        return 0
    run_compare(args)
    return 0


def cmd_paired(args: argparse.Namespace) -> int:
    """Paired bootstrap of two methods of a `dtif compare --per-image` folder."""
    from dtif.io import atomic_write_text
    from dtif.report.per_image import format_report, paired_report

    names = [m.strip() for m in args.methods.split(",") if m.strip()]
    if len(names) != 2 or names[0] == names[1]:
        raise InputError(f"--methods takes two different method names, A,B; got {args.methods!r}")
    report = paired_report(
        Path(args.run),
        names[0],
        names[1],
        delta_points=args.delta,
        resamples=args.resamples,
        seed=args.seed,
    )
    print(format_report(report))
    out = Path(args.run) / f"paired_{names[0]}_vs_{names[1]}_L{args.delta:g}.json"
    atomic_write_text(out, json.dumps(report, indent=1))
    print(f"wrote {out}")
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
            device=str(device(args.device)),
        )
        steps, limit = 16, 500
    else:
        cfg = TrainConfig(
            model="cnn",
            width=DEMO_WIDTH,
            epochs=args.epochs,
            data_dir=args.data_dir,
            device=str(device(args.device)),
        )
        steps, limit = args.num_steps, (None if args.full else 2000)
    out = Path(args.out)
    run_dir = out / ("cnn-quick" if args.quick else f"cnn-w{cfg.width:g}-e{cfg.epochs}")
    print(f"== 1/2 train (or reuse) the cnn on Fashion-MNIST -> {run_dir}")
    train(cfg, run_dir, resume=True, progress=not args.no_progress)
    print(
        f"== 2/2 convert and compare ({'full test split' if limit is None else f'{limit} test images'}, T_max={steps})"
    )
    argv = ["compare", "--checkpoint", str(run_dir / "checkpoint.pt"), "--num-steps", str(steps)]
    argv += ["--test-limit", "all" if limit is None else str(limit), "--methods", args.methods]
    argv += ["--out", str(run_dir / "compare"), "--device", args.device]
    argv += ["--data-dir", args.data_dir] if args.data_dir is not None else []
    if args.early_exit != "none" and DEMO_EXIT_METHOD in args.methods.split(","):
        argv += ["--early-exit", args.early_exit, "--early-exit-methods", DEMO_EXIT_METHOD]
    ns = build_parser().parse_args(argv)
    ns.no_progress = args.no_progress
    run_compare(ns, verdict_for=DEMO_EXIT_METHOD)
    print(f"\ndemo finished in {time.monotonic() - start:.0f} s")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from dtif.checkpoint import load_snn
    from dtif.export import export_nir

    exporters = {"nir": export_nir}  # --format's choices
    snn = load_snn(args.snn, model_file=args.model_file)
    exporters[args.format](snn, args.out, portable=args.portable, spike_rule=args.spike_rule)
    print(f"wrote {args.out} ({args.format.upper()})")
    return 0
