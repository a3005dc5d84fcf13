"""Does the channels-last memory layout pay on this CPU? A probe for issue 5.

For each shipped benchmark model (benchmarks/checkpoints, trained weights), one process
times, interleaved and repeated (medians):

  dense   one forward pass of the folded ANN on [B*T] images, NCHW against channels-last;
  dtif    `simulate(snn, x, T)` with IF neurons (max norm), NCHW against the same network
          and input moved to channels-last (`snn.to(memory_format=...)`; the engine keeps
          every chunk buffer in its input's layout).

It also reports how often the two layouts' predictions agree at every T (the kernels round
differently). Prints a table and writes JSON.

    python benchmarks/channels_last.py
    python benchmarks/channels_last.py --threads 2 --steps 64
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from dtif.checkpoint import load_checkpoint
from dtif.convert.normalize import MaxNorm
from dtif.convert.pipeline import convert
from dtif.data import calibration_subset, load_dataset, test_subset
from dtif.neurons import IFParams
from dtif.report.markdown import cpu_name
from dtif.sim.engine import simulate

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("fashion-mnist-cnn-w1", "fashion-mnist-vgg16-w0.25", "fashion-mnist-resnet20-w1")
CL = torch.channels_last


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def probe(tag: str, batch: int, steps: int, repeats: int) -> dict[str, object]:
    ckpt = load_checkpoint(ROOT / "benchmarks" / "checkpoints" / f"{tag}.pt")
    calib = calibration_subset(load_dataset("fashion-mnist", "train"), 256, seed=0)
    snn = convert(ckpt.model, calib, neuron=IFParams(), norm=MaxNorm(), maxpool="avg")
    test = test_subset(load_dataset("fashion-mnist", "test"), batch, seed=0)
    x = torch.stack([test[i][0] for i in range(batch)])
    stack = x.repeat(steps, 1, 1, 1)
    xc, sc = x.contiguous(memory_format=CL), stack.contiguous(memory_format=CL)
    times: dict[str, list[float]] = {k: [] for k in ("dense", "dense_cl", "dtif", "dtif_cl")}
    with torch.inference_mode():
        ref = simulate(snn, x, steps).outputs.argmax(-1)
        for _ in range(repeats):  # interleaved: one run of each per round
            snn.to(memory_format=torch.contiguous_format)
            times["dense"].append(timed(lambda: snn.ann(stack)))
            times["dtif"].append(timed(lambda: simulate(snn, x, steps)))
            snn.to(memory_format=CL)
            times["dense_cl"].append(timed(lambda: snn.ann(sc)))
            times["dtif_cl"].append(timed(lambda: simulate(snn, xc, steps)))
        agree = float((simulate(snn, xc, steps).outputs.argmax(-1) == ref).double().mean())
    med = {k: statistics.median(v) for k, v in times.items()}
    return {
        "model": tag,
        "median_s": med,
        "dense_gain": med["dense"] / med["dense_cl"],
        "dtif_gain": med["dtif"] / med["dtif_cl"],
        "agreement": agree,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=32)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/channels_last.json")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    rows = [probe(tag, args.batch, args.steps, args.repeats) for tag in MODELS]
    print(f"batch {args.batch}, T = {args.steps}, {args.threads} thread(s), {cpu_name()}")
    print(f"{'model':28} {'dense NCHW/CL':>14} {'dtif NCHW/CL':>13} {'agreement':>10}")
    for r in rows:
        print(
            f"{r['model']:28} {r['dense_gain']:14.2f} {r['dtif_gain']:13.2f} {r['agreement']:10.4f}"
        )
    meta = {"batch": args.batch, "steps": args.steps, "threads": args.threads, "cpu": cpu_name()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
