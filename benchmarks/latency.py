"""Latency and energy of DTIF against max-norm IF and the strongest IF baselines.

Trains (or reuses) a model, converts it with every method, and measures accuracy at every T,
L_1 and L_0.1, speed-up and energy ratio against if-max, and SOPs at the latency point.
Prints the table and writes JSON, CSV and plots to the run folder
(<--runs>/<tag>/latency-T<T>-n<n>/), and the JSON and the plots to benchmarks/results/
(latency_<tag>_T<T>_n<n>.json and latency_<tag>_T<T>_n<n>_<plot>.png). It does not edit the
docs: to update a table there, copy the plots to docs/img/ by hand.

    python benchmarks/latency.py --model cnn                  # 2,000 test images, T_max = 128
    python benchmarks/latency.py --model cnn --methods all    # and every ablation
    python benchmarks/latency.py --model resnet20
    python benchmarks/latency.py --model vgg16 --width 0.25
    python benchmarks/latency.py --model cnn --full           # 10k test images, T_max = 256
    python benchmarks/latency.py --model cnn --kind qcfs      # the QCFS checkpoint
    python benchmarks/latency.py --model cnn --kind qcfs --levels 4 --heldout 1000 --num-steps 64
                                          # choose on 1,000 held-out training images, not test

QCFS checkpoints (--kind qcfs): benchmarks/checkpoints/<dataset>-<model>-w<width>-qcfs<L>.pt,
fine-tuned from the ReLU checkpoint with `dtif train --activation qcfs --levels L --init-from`
(common.QCFS_RECIPE). Without --levels, the one shipped QCFS checkpoint of the model is used.
--heldout N measures on N training images outside the calibration subset (a selection set for
choosing L or a recipe; the test split stays unseen), written as ..._heldout<N>.json.

Trained weights. When benchmarks/checkpoints/<dataset>-<model>-w<width>.pt exists (committed:
weights only, a few MB, with its training summary beside it), the script uses it and does not
train; `--retrain` trains in --runs instead, and `--publish` writes such a file from that run.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import common
import torch

import dtif
from dtif.checkpoint import load_checkpoint, save_checkpoint
from dtif.data import calibration_subset, load_dataset, make_loader, test_subset
from dtif.methods import METHODS, parse_methods
from dtif.models.qcfs import qcfs_modules
from dtif.report import compare_methods, format_table
from dtif.train import TrainConfig, train

ROOT = common.ROOT
# The headline methods first, so that a long run yields them early; then the ablations.
HEADLINE = ("if-max", "if-p99.9-v0.5", "dtif", "dtif-auto", "if-auto")
# The post-training methods with signed correction spikes, run by default after the headline.
SIGNED = (
    "if-p99.9-v0.5-signed",
    "if-auto-signed",
    "dtif-auto-signed",
    "dtif-auto-signed-switch",
    "dtif-auto-signed-bias",
    "if-auto-signed-bias",
    "dtif-auto-signed-switch-bias",
    "dtif-auto-signed-switch-bias-burst2",
    "if-auto-signed-bias-burst2",
    "dtif-auto-signed-switch-bias-burst2-spread",
    "if-auto-signed-bias-spread",
)
# On a QCFS checkpoint: the trained-scale methods, and p99.9 for comparison (no if-max: the
# QCFS rows are compared with the ReLU run's if-max).
QCFS_HEADLINE = (
    "if-qcfs",
    "dtif-auto-qcfs",
    "if-qcfs-signed",
    "if-p99.9-v0.5",
    "dtif-auto-qcfs-signed",
    "if-auto-qcfs-signed",
    "dtif-auto-qcfs-signed-switch",
    "dtif-auto-qcfs-signed-spread",
    "if-auto-qcfs-signed-spread",
)
ALL_METHODS = ",".join([*HEADLINE, *(m for m in METHODS if m not in HEADLINE and "qcfs" not in m)])
PLOTS = ("accuracy_vs_steps.png", "accuracy_vs_energy.png")


def publish(run_dir: Path, dest: Path) -> None:
    """Write the run's weights without optimizer state to `dest`, its summary beside it."""
    ckpt = load_checkpoint(run_dir / "checkpoint.pt")
    dest.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(
        dest,
        ckpt.model,
        ckpt.spec,
        dataset=ckpt.dataset,
        mean=ckpt.mean,
        std=ckpt.std,
        test_accuracy=ckpt.test_accuracy,
        epoch=ckpt.epoch,
    )
    summary = json.loads((run_dir / "train.json").read_text())
    scales = {name: round(m.scale.item(), 6) for name, m in qcfs_modules(ckpt.model).items()}
    if scales:  # a QCFS network: each layer's trained lambda, for reading (the .pt holds them)
        summary["qcfs_scales"] = scales
    dest.with_suffix(".json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"wrote {dest} ({dest.stat().st_size / 2**20:.1f} MiB)")


def seed_from_published(published: Path, out_dir: Path) -> None:
    """With --resume and no run folder yet (a fresh clone), start from the published JSON.

    compare_methods reuses a method only when the run settings (weights included) and the
    method's settings match, so a stale file is ignored there, not trusted here.
    """
    results = out_dir / "results.json"
    if results.exists() or not published.is_file():
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(published, results)
    print(f"== --resume: no run in {out_dir}; starting from {published}")


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--model", default="cnn", choices=sorted(common.RECIPES))
    p.add_argument("--dataset", default="fashion-mnist")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--width", type=float, default=None)
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument(
        "--methods",
        default=None,
        help="comma-separated method names, or 'all' for the ablations too "
        f"(default: {','.join(HEADLINE + SIGNED)}; with --kind qcfs: {','.join(QCFS_HEADLINE)})",
    )
    p.add_argument(
        "--kind",
        choices=("relu", "qcfs"),
        default="relu",
        help="the ANN: the ReLU checkpoint, or its QCFS fine-tuned version",
    )
    p.add_argument("--levels", type=int, default=None, help="QCFS levels (--kind qcfs)")
    p.add_argument(
        "--checkpoint",
        type=Path,
        default=None,
        help="measure this checkpoint (of --model/--kind/--levels) instead of the shipped one",
    )
    p.add_argument(
        "--heldout",
        type=int,
        default=None,
        help="measure on this many training images outside the calibration subset, not on "
        "the test split (for choosing L or a recipe)",
    )
    p.add_argument("--full", action="store_true", help="10k test images and T_max = 256")
    p.add_argument("--num-steps", type=int, default=None)
    p.add_argument("--test-limit", type=int, default=None)
    p.add_argument("--calib-size", type=int, default=1000)
    p.add_argument("--device", default="auto")
    p.add_argument("--runs", type=Path, default=ROOT / "runs" / "bench")
    p.add_argument(
        "--resume",
        action="store_true",
        help="reuse methods already measured (in --runs, else in the published JSON)",
    )
    p.add_argument(
        "--retrain",
        action="store_true",
        help="train in --runs even when benchmarks/checkpoints holds this model",
    )
    p.add_argument(
        "--channels-last",
        action="store_true",
        help="simulate in the channels-last layout (faster on CPU; equal up to float rounding)",
    )
    p.add_argument(
        "--publish",
        action="store_true",
        help="write the trained weights (no optimizer state) to benchmarks/checkpoints",
    )
    args = p.parse_args()
    dtif.keep_freed_memory()  # the library leaves the allocator alone; see dtif.sim.allocator

    device = torch.device(
        "cuda"
        if args.device == "auto" and torch.cuda.is_available()
        else ("cpu" if args.device == "auto" else args.device)
    )
    width, epochs, optimizer, lr = common.RECIPES[args.model]
    width = args.width or width
    epochs = args.epochs or epochs
    steps = args.num_steps or (256 if args.full else 128)
    limit = args.test_limit if args.test_limit else (None if args.full else 2000)
    relu_tag = common.model_tag(args.dataset, args.model, width)
    tag = relu_tag
    init_from = None
    if args.kind == "qcfs":
        levels = args.levels or common.shipped_qcfs_levels(relu_tag)
        tag = f"{relu_tag}-qcfs{levels}"
        epochs, optimizer, lr = args.epochs or common.QCFS_RECIPE[0], *common.QCFS_RECIPE[1:]
        init_from = str(common.CHECKPOINTS / f"{relu_tag}.pt")
    run_dir = args.runs / tag
    start = time.monotonic()

    info = load_dataset(args.dataset, "test", args.data_dir).info
    cfg = TrainConfig(
        dataset=args.dataset,
        model=args.model,
        width=width,
        epochs=epochs,
        optimizer=optimizer,  # type: ignore[arg-type]  # from RECIPES
        lr=lr,
        data_dir=args.data_dir,
        device=str(device),
        **(
            {"activation": "qcfs", "levels": levels, "init_from": init_from}
            if args.kind == "qcfs"
            else {}
        ),
    )
    shipped = common.CHECKPOINTS / f"{tag}.pt"
    t0 = time.monotonic()
    if args.checkpoint is not None:
        print(f"== use {args.checkpoint}")
        ckpt_path = args.checkpoint
        summary = {}
    elif shipped.exists() and not args.retrain:
        print(f"== reuse {shipped.relative_to(ROOT)} (--retrain trains it again)")
        ckpt_path = shipped
        summary = json.loads(shipped.with_suffix(".json").read_text())
    else:
        print(f"== train (or reuse) {tag} in {run_dir}")
        summary = train(cfg, run_dir, resume=True)
        ckpt_path = run_dir / "checkpoint.pt"
        if args.publish:
            publish(run_dir, shipped)
    train_here = time.monotonic() - t0
    train_s = summary.get("time_s", 0.0)

    ckpt = load_checkpoint(ckpt_path)
    model = ckpt.model.to(device)
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    train_set = load_dataset(args.dataset, "train", args.data_dir)
    seed = common.CALIB_SEED
    calib = calibration_subset(train_set, args.calib_size, seed=seed).to(device)
    if args.heldout:
        test = common.heldout_subset(train_set, calib, args.calib_size, args.heldout, seed)
    else:
        test = test_subset(load_dataset(args.dataset, "test", args.data_dir), limit, seed=seed)
    loader = make_loader(test, batch_size=250, shuffle=False, seed=seed)
    n = len(test)  # type: ignore[arg-type]  # Subset has __len__
    split = f"heldout{n}" if args.heldout else f"n{n}"
    out_dir = run_dir / f"latency-T{steps}-{split}"
    meta = {
        "run": {
            "num_steps": steps,
            "num_test": n,
            "calib_size": args.calib_size,
            "tag": tag,
            "kind": args.kind,
            "split": "train-heldout" if args.heldout else "test",
            "weights": common.fingerprint(ckpt.model),
            **({"channels_last": True} if args.channels_last else {}),
        },
        "machine": common.machine(),
        "checkpoint": str(ckpt_path),
        "dataset": args.dataset,
        "model": ckpt.spec.to_dict(),
    }
    images = "held-out training" if args.heldout else "test"
    print(f"== compare on {n} {images} images of {info.name}, T_max = {steps}")
    json_path = common.latency_json(tag, steps, n)
    if args.heldout:
        json_path = json_path.with_name(f"latency_{tag}_T{steps}_{split}.json")
    if args.resume:
        seed_from_published(json_path, out_dir)
    default_methods = QCFS_HEADLINE if args.kind == "qcfs" else HEADLINE + SIGNED
    methods = args.methods or ",".join(default_methods)
    results = compare_methods(
        model,
        calib,
        loader,
        parse_methods(ALL_METHODS if methods == "all" else methods),  # "all": ReLU methods
        steps,
        n,
        out_dir,
        resume=args.resume,
        meta=meta,
        with_reference=args.kind == "relu",  # the QCFS rows compare with the ReLU run's if-max
    )
    elapsed = time.monotonic() - start
    results["meta"]["elapsed_s"] = elapsed
    results["meta"]["train_time_s"] = train_s
    print()
    print(format_table(results))
    reused = results.pop("reused", [])
    print(
        f"\n{elapsed:.0f} s in this call, {train_here:.0f} s of it training "
        f"(the checkpoint's training took {train_s:.0f} s); reused with --resume: "
        f"{', '.join(reused) or 'none'}"
    )

    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(results, indent=1))
    print(f"wrote {json_path}")
    for name in PLOTS:  # beside the JSON, for docs/img/ when a table in the docs is updated
        if (out_dir / name).exists():
            target = json_path.with_name(f"{json_path.stem}_{name}")
            shutil.copyfile(out_dir / name, target)
            print(f"wrote {target}")


if __name__ == "__main__":
    main()
