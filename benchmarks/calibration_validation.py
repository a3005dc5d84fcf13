"""Check a DTIF calibration variant on held-out TRAINING images (never the test split).

Calibrates `dtif-auto` on the same 1,000 training images as `latency.py` (seed 0), then
evaluates it on the next `n_val` images of the same seeded permutation of the training split,
which the calibration never saw. Prints one JSON line: the chosen values, the calibration
loss, the accuracy at powers of two and L_1 on those images.

    python benchmarks/calibration_validation.py MODEL SCALE_GRID [T_MAX] [N_VAL] [TARGET_STEPS] [NUM_IMAGES]
    python benchmarks/calibration_validation.py vgg16 1.0 128 1000           # dtif-auto
    python benchmarks/calibration_validation.py vgg16 0.7,0.8,0.9,1.0 128 1000

SCALE_GRID is `calibrate_dtif(scale_grid=...)`; "1.0" is the plain search. TARGET_STEPS is
`calibrate_dtif(target_steps=...)` (the loss looks at T = 1..2 x TARGET_STEPS); by default
T_MAX / 8, as `latency.py` uses. NUM_IMAGES is `calibrate_dtif(num_images=...)`, the images
the search's loss is measured on (default 128).
"""

import json
import sys
import time

import torch
from latency import CHECKPOINTS, RECIPES

from dtif.calibrate import calibrate_dtif
from dtif.checkpoint import load_checkpoint
from dtif.data import load_dataset
from dtif.data.loaders import calibration_subset
from dtif.methods import METHODS
from dtif.sim.evaluate import evaluate


def held_out(n_val: int) -> tuple[object, torch.Tensor, torch.Tensor]:
    """The calibration subset of `latency.py` (1,000 training images, seed 0), and the next
    `n_val` images of the same seeded permutation of the training split with their labels."""
    train = load_dataset("fashion-mnist", "train")
    calib = calibration_subset(train, 1000, seed=0)
    perm = torch.randperm(len(train), generator=torch.Generator().manual_seed(0))
    val_idx = perm[1000 : 1000 + n_val]  # calibration_subset took perm[:1000]
    xs = torch.stack([train[int(i)][0] for i in val_idx])
    ys = torch.tensor([int(train[int(i)][1]) for i in val_idx])
    return calib, xs, ys


def main() -> None:
    model_name = sys.argv[1]
    grid = tuple(float(v) for v in sys.argv[2].split(","))
    T = int(sys.argv[3]) if len(sys.argv) > 3 else 64
    nval = int(sys.argv[4]) if len(sys.argv) > 4 else 1000
    target = int(sys.argv[5]) if len(sys.argv) > 5 else T // 8
    num_images = int(sys.argv[6]) if len(sys.argv) > 6 else 128
    tag = f"fashion-mnist-{model_name}-w{RECIPES[model_name][0]:g}"  # the shipped weights
    torch.set_num_threads(2)
    model = load_checkpoint(CHECKPOINTS / f"{tag}.pt").model.eval()
    calib, xs, ys = held_out(nval)
    with torch.inference_mode():
        ann_acc = float((model(xs).argmax(1) == ys).float().mean()) * 100
    loader = [(xs[i : i + 250], ys[i : i + 250]) for i in range(0, nval, 250)]
    m = METHODS["dtif-auto"]
    t0 = time.time()
    cal = calibrate_dtif(
        model,
        calib,
        target_steps=target,
        base=m.neuron,
        norm=m.norm,
        scale_grid=grid,
        num_images=num_images,
    )
    ts = time.time() - t0
    ev = evaluate(cal.snn, loader, T, progress=False)
    acc = [round(a * 100, 2) for a in ev.accuracy]  # fractions -> %
    print(
        json.dumps(
            {
                "model": model_name,
                "grid": grid,
                "target_steps": target,
                "num_images": num_images,
                "search_s": round(ts),
                "ann": ann_acc,
                "alpha": cal.alpha,
                "v0": cal.v0,
                "scale": cal.scale_factor,
                "loss": cal.loss,
                "acc_pow2": {t: acc[t - 1] for t in [1, 2, 4, 8, 16, 32, 64, 128] if t <= T},
                "L1": ev.latency(1.0),
            }
        )
    )


if __name__ == "__main__":
    main()
