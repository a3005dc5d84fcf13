"""Time to a right answer: wall time per test image to reach within 1 (and 0.1) point of the ANN.

On the shipped checkpoints (cnn, vgg16, resnet20), in one process, with the same threads and
batch size for every tool, it measures for each model:

  dtif             the best of --methods (default dtif-auto) at its own L_1: the least T
                   whose accuracy is within 1 point of the ANN on these test images;
  dtif_early_exit  the same network with early exit per image, the policy calibrated on the
                   calibration images (`dtif.calibrate_exit`, target --exit-loss points
                   against the ANN), each image capped at the method's L_1 (--exit-cap);
  spikingjelly     SpikingJelly's ann2snn (`RateCodingRecipe`, IF with soft reset) in its best
                   mode, max or 99.9% (the one with the lower L_1), at its own L_1, run as
                   the single-step loop of its ann2snn examples (--sj-multi: also its
                   multi-step mode, the faster kept; on CPU it was 3x slower here).

An auto method (dtif-auto) reuses the per-layer alpha and v0 that its search chose in
latency.py's run of the same weights (benchmarks/results/latency_<tag>_T128_n2000.json;
chosen on calibration images), when that file exists; --search runs the search here.

The accuracy curves (to --num-steps) come first, untimed; then each tool's run at its steps is
timed over the whole test subset, the tools interleaved and repeated (--repeats); the median
is kept. Accuracies are recorded with the times: a tool that does not reach the accuracy is
not timed there (its ratio is null). The same at 0.1 points, without early exit.

Writes benchmarks/results/time_to_accuracy.json:
{"<model>": {"dtif": {"method", "steps", "seconds_per_image", "accuracy"}, "dtif_early_exit":
{...}, "spikingjelly": {"mode", ...}, "ratio_fixed", "ratio_early_exit", "within_0.1": {...},
"meta": {command, machine, settings}}}, each ratio SpikingJelly's seconds per image over dtif's.
A run of some models keeps the other models' entries of the file.

SpikingJelly is optional. `pip install spikingjelly` pulls a CUDA torch; install it beside the
CPU torch instead with `pip install --no-deps spikingjelly==2.0.0` plus what it imports
(`pip install loguru tqdm`; see benchmarks/sim_speed.py). Without it the dtif rows are still
measured and the ratios are null.

    python benchmarks/time_to_accuracy.py --models cnn --test-limit 1000
    python benchmarks/time_to_accuracy.py            # cnn, vgg16 and resnet20
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import common
import spikingjelly_side
import torch

import dtif
from dtif.checkpoint import load_checkpoint
from dtif.convert import convert
from dtif.convert.options import from_dict
from dtif.data import calibration_subset, load_dataset, test_subset
from dtif.methods import METHODS

MODELS = {"cnn": 1.0, "vgg16": 0.25, "resnet20": 1.0}
SJ_MODES = ("max", "99.9%")
OUT = common.RESULTS / "time_to_accuracy.json"


def latency(correct: torch.Tensor, n: int, ann_correct: int, delta: float) -> int | None:
    """The least T whose accuracy is within `delta` points of the ANN, or None."""
    return dtif.latency((correct.double() / n).tolist(), ann_correct / n, delta)


def batches(x: torch.Tensor, batch: int) -> list[torch.Tensor]:
    return [x[i : i + batch] for i in range(0, x.shape[0], batch)]


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def dtif_curve(snn: dtif.SpikingNetwork, xs: list[torch.Tensor], y: torch.Tensor, steps: int):
    """[T] correct counts of a fixed-T run."""
    preds = torch.cat([snn.simulate(xb, steps, record=False).predictions() for xb in xs], dim=1)
    return (preds == y[None]).sum(dim=1)


def sj_curve(nets: Any, xs: list[torch.Tensor], y: torch.Tensor, steps: int) -> torch.Tensor | None:
    parts = [spikingjelly_side.step_predictions(nets, xb, steps) for xb in xs]
    if any(p is None for p in parts):
        return None
    return (torch.cat(parts, dim=1) == y[None]).sum(dim=1)  # type: ignore[arg-type]


def build(name: str, ann: torch.nn.Module, calib: torch.Tensor, tag: str, args) -> Any:
    """Method `name`'s network. An auto method reuses the per-layer values its search chose in
    latency.py's run of the same weights (benchmarks/results, calibration images only), unless
    --search or no such run: then it searches here."""
    method = METHODS[name]
    path = common.latency_json(tag, 128, 2000)
    if method.auto and not args.search and path.is_file():
        old = json.loads(path.read_text())
        entry = old["methods"].get(name)
        weights = old["meta"]["run"].get("weights")  # older files have none: shipped weights
        if entry is not None and weights in (None, common.fingerprint(ann)):
            neuron = from_dict(entry["neuron_used"], "neuron", str(path))
            print(f"   {name}: per-layer values of {path.name}: {entry['neuron_used']}", flush=True)
            return convert(ann, calib, neuron=neuron, norm=method.norm)
    return method.build(ann, calib, "error", target_steps=args.target_steps)


def measure_model(model_name: str, args: argparse.Namespace, device: torch.device) -> dict:
    tag = common.model_tag("fashion-mnist", model_name, MODELS[model_name])
    ckpt = load_checkpoint(common.CHECKPOINTS / f"{tag}.pt")
    ann = ckpt.model.to(device).eval()
    seed = common.CALIB_SEED
    test = test_subset(
        load_dataset("fashion-mnist", "test", args.data_dir), args.test_limit, seed=seed
    )
    calib = calibration_subset(
        load_dataset("fashion-mnist", "train", args.data_dir), args.calib_size, seed=seed
    ).to(device)
    x = torch.stack([test[i][0] for i in range(len(test))]).to(device)  # type: ignore[arg-type]
    y = torch.tensor([int(test[i][1]) for i in range(len(test))], device=device)  # type: ignore[arg-type]
    n, xs, T = x.shape[0], batches(x, args.batch_size), args.num_steps
    with torch.inference_mode():
        ann_correct = int((torch.cat([ann(xb).argmax(1) for xb in xs]) == y).sum())
    print(f"== {tag}: {n} test images, ANN {100 * ann_correct / n:.2f}%", flush=True)

    # -- accuracy curves (untimed)
    best: dict[str, Any] | None = None
    for name in args.methods.split(","):
        snn = build(name, ann, calib, tag, args)
        correct = dtif_curve(snn, xs, y, T)
        l1, l01 = (latency(correct, n, ann_correct, d) for d in (1.0, 0.1))
        print(
            f"   dtif {name}: L_1 {l1}, L_0.1 {l01}, {100 * float(correct[-1]) / n:.2f}% at T={T}"
        )
        if l1 is not None and (best is None or l1 < best["l1"]):
            best = {"name": name, "snn": snn, "correct": correct, "l1": l1, "l01": l01}
    sj: dict[str, Any] | None = None
    sj_error = spikingjelly_side.status()
    if sj_error is None:
        for mode in SJ_MODES:
            nets = spikingjelly_side.convert(ann, calib, device, mode=mode)
            correct = None if nets.error else sj_curve(nets, xs, y, T)
            if correct is None:
                print(f"   spikingjelly {mode}: {nets.error}")
                sj_error = nets.error
                continue
            l1, l01 = (latency(correct, n, ann_correct, d) for d in (1.0, 0.1))
            print(
                f"   spikingjelly {mode}: L_1 {l1}, L_0.1 {l01}, {100 * float(correct[-1]) / n:.2f}% at T={T}"
            )
            better = sj is None or (l1 or T + 1, l01 or T + 1) < (
                sj["l1"] or T + 1,
                sj["l01"] or T + 1,
            )
            if better:
                sj = {"mode": mode, "nets": nets, "correct": correct, "l1": l1, "l01": l01}
    else:
        print(f"   spikingjelly not available: {sj_error}")

    # -- early exit: calibrated on the calibration images, capped at L_1 (or L_0.1, else T_max)
    ee: dict[str, Any] | None = None
    if best is not None:
        cap = best["l1"] if args.exit_cap == "l1" else (best["l01"] or T)
        cal = dtif.calibrate_exit(best["snn"], calib, cap, args.exit_loss)
        snn, policy = best["snn"], cal.policy
        exits = [snn.simulate(xb, cap, exit=policy, record=False) for xb in xs]
        pred = torch.cat([r.outputs[-1].flatten(1).argmax(1) for r in exits])
        steps = torch.cat([r.exit_steps for r in exits]).double()  # type: ignore[misc]
        ee = {
            "accuracy": float((pred == y).sum()) / n,
            "mean_step": float(steps.mean()),
            "cap": cap,
            "policy": policy.to_dict(),
            "calibration": cal.to_dict(),
        }
        print(
            f"   dtif early exit ({policy}): {100 * ee['accuracy']:.2f}%, mean step {ee['mean_step']:.2f}"
        )

    # -- timing, interleaved
    def sj_runs(steps: int) -> dict[str, Callable[[], object]]:
        assert sj is not None
        runs = [spikingjelly_side.runners(sj["nets"], xb, steps, args.sj_multi) for xb in xs]
        return {k: (lambda k=k: [r[k]() for r in runs]) for k in runs[0]}

    jobs: dict[str, Callable[[], object]] = {}
    for delta, key in ((1.0, "l1"), (0.1, "l01")):
        if best is not None and best[key] is not None:
            jobs[f"dtif@{delta}"] = lambda s=best[key]: [
                best["snn"].simulate(xb, s, record=False) for xb in xs
            ]  # type: ignore[index]
        if sj is not None and sj[key] is not None:
            for k, fn in sj_runs(sj[key]).items():
                jobs[f"{k}@{delta}"] = fn
    if ee is not None:
        jobs["dtif_exit@1.0"] = lambda: [
            best["snn"].simulate(xb, ee["cap"], exit=policy, record=False)
            for xb in xs  # type: ignore[index]
        ]
    times: dict[str, list[float]] = {k: [] for k in jobs}
    for _ in range(args.repeats):
        for k, fn in jobs.items():
            times[k].append(timed(fn))
    per_image = {k: statistics.median(v) / n for k, v in times.items()}
    print(
        "   seconds per image: " + ", ".join(f"{k} {v * 1e3:.2f} ms" for k, v in per_image.items())
    )

    def sj_entry(delta: float, key: str) -> dict[str, Any] | None:
        if sj is None:
            return None
        steps = sj[key]
        sj_keys = [k for k in per_image if k.startswith("sj") and k.endswith(f"@{delta}")]
        fastest = min(sj_keys, key=lambda k: per_image[k]) if sj_keys else None
        return {
            "mode": sj["mode"],
            "steps": steps,
            "run": None if fastest is None else fastest.split("@")[0],
            "seconds_per_image": None if fastest is None else per_image[fastest],
            "accuracy": None if steps is None else float(sj["correct"][steps - 1]) / n,
            "accuracy_at_T_max": float(sj["correct"][-1]) / n,
        }

    def dtif_entry(key: str, delta: float) -> dict[str, Any] | None:
        if best is None:
            return None
        steps = best[key]
        return {
            "method": best["name"],
            "steps": steps,
            "seconds_per_image": per_image.get(f"dtif@{delta}"),
            "accuracy": None if steps is None else float(best["correct"][steps - 1]) / n,
        }

    def ratio(a: dict[str, Any] | None, b: dict[str, Any] | None) -> float | None:
        if (
            a is None
            or b is None
            or a["seconds_per_image"] is None
            or b["seconds_per_image"] is None
        ):
            return None
        return a["seconds_per_image"] / b["seconds_per_image"]

    d1, s1 = dtif_entry("l1", 1.0), sj_entry(1.0, "l1")
    d01, s01 = dtif_entry("l01", 0.1), sj_entry(0.1, "l01")
    exit_entry = None
    if ee is not None and best is not None:
        within = 100 * (ann_correct / n - ee["accuracy"]) <= 1.0 + 1e-9  # float rounding
        exit_entry = {
            "method": best["name"],
            "steps": ee["mean_step"],
            "seconds_per_image": per_image["dtif_exit@1.0"] if within else None,
            "accuracy": ee["accuracy"],
            "within_1_point": within,
            **{k: ee[k] for k in ("cap", "policy", "calibration")},
        }
    return {
        "ann_accuracy": ann_correct / n,
        "num_test": n,
        "dtif": d1,
        "dtif_early_exit": exit_entry,
        "spikingjelly": s1 if sj_error is None or sj is not None else {"error": sj_error},
        "ratio_fixed": ratio(s1, d1),
        "ratio_early_exit": ratio(s1, exit_entry),
        "within_0.1": {"dtif": d01, "spikingjelly": s01, "ratio_fixed": ratio(s01, d01)},
        "seconds_all_repeats": times,
    }


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--models", default=",".join(MODELS), help="comma-separated: cnn,vgg16,resnet20")
    p.add_argument("--methods", default="dtif-auto", help="dtif methods; the lowest L_1 is timed")
    p.add_argument("--test-limit", type=int, default=1000)
    p.add_argument("--calib-size", type=int, default=1000)
    p.add_argument("--num-steps", type=int, default=128, help="T_max of the accuracy curves")
    p.add_argument(
        "--target-steps",
        type=int,
        default=16,
        help="the auto methods' calibration target (latency.py uses T_max / 8 = 16)",
    )
    p.add_argument(
        "--exit-cap",
        choices=["l1", "l01"],
        default="l1",
        help="early exit runs each image at most to the method's L_1 (default) or L_0.1",
    )
    p.add_argument(
        "--search",
        action="store_true",
        help="run the auto methods' search here instead of reusing latency.py's values",
    )
    p.add_argument(
        "--sj-multi",
        action="store_true",
        help="also time SpikingJelly's multi-step mode (the faster of its two runs is kept)",
    )
    p.add_argument("--batch-size", type=int, default=250)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument(
        "--exit-loss", type=float, default=0.5, help="early-exit calibration target, points"
    )
    p.add_argument("--data-dir", default=None)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", type=Path, default=OUT, help="the JSON file (default %(default)s)")
    args = p.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]  # progress in a log
    dtif.keep_freed_memory()
    common.set_threads(args.threads)
    device = torch.device(args.device)
    out = args.out
    previous = json.loads(out.read_text()) if out.is_file() else {}
    results: dict[str, Any] = {k: v for k, v in previous.items() if k in MODELS}
    for name in args.models.split(","):
        start = time.monotonic()
        results[name] = measure_model(name, args, device)
        results[name]["wall_s"] = time.monotonic() - start
        r = results[name]
        r["meta"] = {
            "command": " ".join(["python", *sys.argv]),
            "machine": common.machine_info(device),
            "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        }
        print(
            f"   ratio fixed {r['ratio_fixed']}, with early exit {r['ratio_early_exit']}",
            flush=True,
        )
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
