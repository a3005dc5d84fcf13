"""Does keeping freed memory in the process pay? `simulate` with and without it (glibc).

Each measurement runs in a fresh process (the allocator setting is process-wide and its
effect depends on what the process allocated before): load the shipped weights, convert
(IF, p99.9 norm, v0 0.5), one warm-up run of 4 steps, then one timed `simulate`, counting
the minor page faults of that run. The two settings alternate, `--repeats` times each;
medians are reported.

    python benchmarks/allocator.py            # cnn at batch 250 (as latency.py), resnet20 at 32
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from latency import CHECKPOINTS, RECIPES

CONFIGS = {  # model: (batch, steps, threads)
    "cnn": (250, 32, 2),
    "resnet20": (32, 128, 1),
}


def child(model: str) -> None:
    import dtif
    from dtif.checkpoint import load_checkpoint
    from dtif.data import load_dataset
    from dtif.data.loaders import calibration_subset

    batch, steps, threads = CONFIGS[model]
    torch.set_num_threads(threads)
    tag = f"fashion-mnist-{model}-w{RECIPES[model][0]:g}"  # the shipped weights
    ann = load_checkpoint(CHECKPOINTS / f"{tag}.pt").model.eval()
    calib = calibration_subset(load_dataset("fashion-mnist", "train"), 1000, seed=0)
    snn = dtif.convert(ann, calib, neuron=dtif.IF(v0=0.5), norm=dtif.PercentileNorm(99.9))
    x = calib[:batch]
    snn.simulate(x, 4)
    f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    t0 = time.perf_counter()
    snn.simulate(x, steps)
    seconds = time.perf_counter() - t0
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0
    print(json.dumps({"seconds": seconds, "minor_faults": faults}))


def run(model: str, keep: bool) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    env["DTIF_KEEP_FREED_MEMORY"] = "1" if keep else "0"
    out = subprocess.run(
        [sys.executable, __file__, "--child", model],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default=",".join(CONFIGS))
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", default="benchmarks/results/allocator.json")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(args.child)
        return
    rows = []
    print(
        "| model | batch | T | threads | glibc defaults (s) | kept (s) | speed-up | faults defaults / kept |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for model in args.models.split(","):
        runs: dict[bool, list[dict[str, float]]] = {False: [], True: []}
        for _ in range(args.repeats):
            for keep in (False, True):
                runs[keep].append(run(model, keep))
        med = {
            k: {m: statistics.median(r[m] for r in v) for m in ("seconds", "minor_faults")}
            for k, v in runs.items()
        }
        batch, steps, threads = CONFIGS[model]
        row = {"model": model, "batch": batch, "steps": steps, "threads": threads,
               "defaults": med[False], "kept": med[True], "runs": {str(k): v for k, v in runs.items()},
               "speedup": med[False]["seconds"] / med[True]["seconds"]}  # fmt: skip
        rows.append(row)
        print(
            f"| {model} | {batch} | {steps} | {threads} | {med[False]['seconds']:.2f} | "
            f"{med[True]['seconds']:.2f} | {row['speedup']:.2f} | "
            f"{med[False]['minor_faults']:.0f} / {med[True]['minor_faults']:.0f} |",
            flush=True,
        )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(
        json.dumps({"date": time.strftime("%Y-%m-%dT%H:%M:%S"), "rows": rows}, indent=2)
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
