"""Where the conversion error builds up, layer by layer, for the methods of a latency run.

Reads the JSON that `latency.py` wrote for a model, rebuilds each method's network from the
shipped weights and the neuron parameters that run used (for `dtif-auto` and `if-auto`, the
calibrated per-layer values: no search is repeated; a `-bias` method's offsets are calibrated
again on the same images), and prints for every spiking layer the
relative error of its rate against the ANN's activation, e_l(T) = ||r_l(T) - a_l|| / ||a_l||
(`dtif.calibrate.layer_errors`), on training images. Writes JSON to benchmarks/results/.

    python benchmarks/layer_errors.py --model resnet20
    python benchmarks/layer_errors.py --model vgg16 --width 0.25 --methods if-p99.9-v0.5,dtif-auto
    python benchmarks/layer_errors.py --model resnet20 --kind qcfs --methods if-qcfs,dtif-auto-qcfs
    python benchmarks/layer_errors.py --model vgg16 --width 0.25 --kind qcfs --floor

`--floor` (QCFS only) adds the row `ann-quantized-to-T`: the same error for the ANN with every
QCFS activation quantized to T levels instead of its own L (`dtif.quantized_to`), which is what
an IF network with v0 = 0.5 computes after T steps when every neuron's input is constant. A
rate code of T steps has T + 1 values per neuron, so this row is the error a spiking layer
starts from at T; a layer above it carries error from the transient of its inputs.
"""

from __future__ import annotations

import argparse
import json

import common
import torch

import dtif
from dtif.calibrate import layer_errors
from dtif.calibrate.layer_error import ann_activations, relative_error
from dtif.data import calibration_subset, load_dataset

ROOT = common.ROOT
DEFAULTS = {  # methods that every latency run of that kind has
    "relu": "if-max,if-p99.9-v0.5,dtif-auto,if-auto",
    "qcfs": "if-qcfs,if-qcfs-signed,dtif-auto-qcfs-signed",
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="cnn", choices=sorted(common.RECIPES))
    p.add_argument("--width", type=float, default=None)
    p.add_argument("--dataset", default="fashion-mnist")
    p.add_argument("--num-steps", type=int, default=128, help="T_max of the latency run")
    p.add_argument("--num-test", type=int, default=2000, help="test images of the latency run")
    p.add_argument("--methods", default=None, help="default: " + "; ".join(DEFAULTS.values()))
    p.add_argument("--images", type=int, default=256, help="training images to measure on")
    p.add_argument("--kind", choices=("relu", "qcfs"), default="relu", help="the ANN checkpoint")
    p.add_argument("--levels", type=int, default=None, help="QCFS levels (--kind qcfs)")
    p.add_argument(
        "--floor", action="store_true", help="add the ANN quantized to T levels (--kind qcfs)"
    )
    args = p.parse_args()
    if args.floor and args.kind != "qcfs":
        p.error("--floor quantizes QCFS activations: use it with --kind qcfs")
    dtif.keep_freed_memory()  # the library leaves the allocator alone; see dtif.sim.allocator

    tag, run, latency_run, ckpt = common.load_latency_run(
        args.dataset, args.model, args.width, args.kind, args.levels, args.num_steps, args.num_test
    )
    train = load_dataset(args.dataset, "train")
    calib_size = latency_run["meta"]["run"].get("calib_size", 1000)
    # the latency run's calibration images
    calib = calibration_subset(train, calib_size, seed=common.CALIB_SEED)
    x = calibration_subset(train, args.images, seed=1)
    at = [2**k for k in range(args.num_steps.bit_length()) if 2**k <= args.num_steps]
    table: dict[str, dict[str, dict[int, float]]] = {}
    names = [n for n in (args.methods or DEFAULTS[args.kind]).split(",") if n]
    if not names:
        p.error("--methods names no method (the floor needs one network for its layer names)")
    for name in names:
        snn = common.rebuild_method(latency_run, run, name, ckpt.model, calib)
        with torch.inference_mode():
            table[name] = layer_errors(snn, x, at)
    if args.floor:
        table["ann-quantized-to-T"] = quantization_floor(snn, x, at)
    for name, rows in table.items():
        print(f"\n{name}: relative error of each layer's rate, ||r(T) - a|| / ||a||")
        print(f"{'layer':22}" + "".join(f"{'T=' + str(t):>8}" for t in at))
        for layer, per_t in rows.items():
            print(f"{layer:22}" + "".join(f"{per_t[t]:8.3f}" for t in at))
    out = common.RESULTS / f"layer_errors_{tag}_T{args.num_steps}.json"
    meta = {"run": str(run.relative_to(ROOT)), "images": args.images, "split": "train"}
    if out.exists():  # keep the other methods measured on the same run and images
        before = json.loads(out.read_text())
        if before.get("meta") == meta:
            table = {**before["methods"], **table}
    out.write_text(json.dumps({"meta": meta, "methods": table}, indent=1))
    print(f"\nwrote {out}")


def quantization_floor(
    snn: dtif.SpikingNetwork, x: torch.Tensor, at: list[int]
) -> dict[str, dict[int, float]]:
    """e_l(T) of the ANN quantized to T levels, under the names of `snn`'s spiking layers."""
    x = x.to(snn.device)
    acts = ann_activations(snn.ann, x)
    out: dict[str, dict[int, float]] = {m.layer_name: {} for m in snn.neurons()}
    for t in at:
        with dtif.quantized_to(snn.ann, t):
            quantized = ann_activations(snn.ann, x)
        for name, a, q in zip(out, acts, quantized, strict=True):
            out[name][t] = relative_error(q, a)
    return out


if __name__ == "__main__":
    main()
