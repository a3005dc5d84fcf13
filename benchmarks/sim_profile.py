"""Where a simulation's time goes: torch.profiler's operator table for one `simulate` call.

Builds the same networks as `sim_speed.py` (`common.build_network`: random weights, max-norm
IF, the same batch and seed), runs one untimed warm-up simulation, then profiles one more, and
groups the operators into what they do: convolutions and linear layers, pooling, the neuron's
time loop, recording, the density check of the event-driven Linear path, and the rest. Prints
the table and writes JSON.

    python benchmarks/sim_profile.py                                  # cnn, vgg16, resnet20, T = 128
    python benchmarks/sim_profile.py --models cnn --channels-last
    python benchmarks/sim_profile.py --dense                          # the dense limit's T passes

The profiler adds a few microseconds per operator, so the shares are what to read, not the
absolute times (which `sim_speed.py` measures without it).
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import common
import torch

import dtif

GROUPS = {
    "conv / linear": ("convolution", "addmm", "mm", "linear", "bmm"),
    "pooling": ("pool",),
    "neuron loop": ("addcdiv_", "aten::ge", "aten::sub_", "masked_fill_", "floor", "mul_"),
    "recording": ("aten::sum", "aten::mv", "aten::addmv", "aten::cat"),
    "event-path check": ("count_nonzero",),
}


def group_of(name: str) -> str:
    """The group an aten operator belongs to (first match in GROUPS), else "other"."""
    for group, keys in GROUPS.items():
        if any(k in name for k in keys):
            return group
    return "other"


def profile_one(cfg: common.Config, steps: int, channels_last: bool, dense: bool) -> dict:
    """The operator table of one simulation (or of T dense passes), in ms and shares."""
    net = common.build_network(cfg, torch.device("cpu"))
    snn, x = net.snn, net.x
    if channels_last:
        snn = snn.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        x = x.contiguous(memory_format=torch.channels_last)

    def work() -> None:
        with torch.inference_mode():
            if dense:
                for _ in range(steps):
                    snn.ann(x)
            else:
                snn.simulate(x, steps)

    work()  # warm-up: fan-out profile, buffers, allocator
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        work()
    ops = [e for e in prof.key_averages() if e.key.startswith("aten::")]
    total = sum(e.self_cpu_time_total for e in ops) / 1e3
    groups: dict[str, float] = defaultdict(float)
    for e in ops:
        groups[group_of(e.key)] += e.self_cpu_time_total / 1e3
    top = sorted(ops, key=lambda e: e.self_cpu_time_total, reverse=True)[:12]
    return {
        "model": cfg.model,
        "steps": steps,
        "batch": cfg.batch,
        "channels_last": channels_last,
        "what": "dense" if dense else "dtif",
        "total_ms": total,
        "groups_ms": dict(groups),
        "groups_share": {g: v / total for g, v in groups.items()},
        "top": [{"op": e.key, "ms": e.self_cpu_time_total / 1e3, "calls": e.count} for e in top],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default=",".join(common.SPEED_MODELS))
    p.add_argument("--steps", type=int, default=128)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--vgg-width", type=float, default=0.25)
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--dense", action="store_true", help="profile T dense passes of the ANN")
    p.add_argument("--threads", type=int, default=1, help="torch threads (0 = torch's default)")
    p.add_argument("--out", default="benchmarks/results/sim_profile.json")
    args = p.parse_args()
    common.set_threads(args.threads)
    dtif.keep_freed_memory()  # the library leaves the allocator alone; sim_speed.py sets it too
    rows = []
    for model in args.models.split(","):
        width = args.vgg_width if model == "vgg16" else 1.0
        cfg = common.Config(model, width, (1, 28, 28), args.batch, "if", 0)
        row = profile_one(cfg, args.steps, args.channels_last, args.dense)
        rows.append(row)
        shares = "  ".join(f"{g} {s:5.1%}" for g, s in row["groups_share"].items())
        print(f"{model:9s} {row['what']} T={args.steps} total {row['total_ms']:.0f} ms  {shares}")
        for t in row["top"][:6]:
            print(f"    {t['op']:32s} {t['ms']:8.1f} ms  {t['calls']:6d} calls")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {"machine": common.machine_info(torch.device("cpu")), "args": vars(args), "rows": rows},
            indent=1,
        )
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
