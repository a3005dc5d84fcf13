"""Would a hand-written 2x2 average pool beat torch's avg_pool2d on this CPU?

torch's `avg_pool2d` in the default (NCHW) layout takes 18% of the cnn's simulation time
(`sim_profile.py`). This times it against the same pool written as four strided additions in
the kernel's row-major order, then divided by 4, on the shapes of the spiking layers that feed
a 2x2 pool in the cnn and vgg16 (time chunk x batch 32), on spikes and on Gaussian values, and
checks that both give the same bits. Also times avg_pool2d in channels-last for reference.

    python benchmarks/pool_speed.py
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from sim_speed import machine_info

from dtif.convert.pooling import four_sums

SHAPES = {  # (rows = time chunk x batch 32, channels, height, width)
    "cnn pool 1": (32, 32, 28, 28),
    "cnn pool 2": (32, 64, 14, 14),
    "vgg16 pool 1": (96, 16, 28, 28),
    "vgg16 pool 2": (96, 32, 14, 14),
    "vgg16 pool 3 (odd)": (96, 64, 7, 7),
}


def cropped_four_sums(x: torch.Tensor) -> torch.Tensor:
    """avg_pool2d(x, 2) as `four_sums` (the kernel's order), odd sizes cropped as torch does."""
    h, w = x.shape[-2] // 2 * 2, x.shape[-1] // 2 * 2
    return four_sums(x[..., :h, :w])


def median_ms(fn, x: torch.Tensor, repeats: int = 7, inner: int = 20) -> float:
    fn(x)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn(x)
        times.append((time.perf_counter() - t0) / inner * 1e3)
    return statistics.median(times)


def main() -> None:
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(0)
    rows = []
    print(
        f"{'shape':22s} {'data':8s} {'avg_pool2d':>10s} {'4 sums':>8s} {'CL pool':>8s}  same bits"
    )
    for name, shape in SHAPES.items():
        for data in ("spikes", "gaussian"):
            x = torch.randn(shape, generator=gen)
            if data == "spikes":
                x = (x > 1.2).float()  # about 12% ones, as the layers fire
            ref = F.avg_pool2d(x, 2)
            same = torch.equal(ref, cropped_four_sums(x))
            xc = x.contiguous(memory_format=torch.channels_last)
            row = {
                "layer": name,
                "shape": list(shape),
                "data": data,
                "avg_pool2d_ms": median_ms(lambda t: F.avg_pool2d(t, 2), x),
                "four_sums_ms": median_ms(cropped_four_sums, x),
                "channels_last_ms": median_ms(lambda t: F.avg_pool2d(t, 2), xc),
                "same_bits": same,
            }
            rows.append(row)
            print(
                f"{name:22s} {data:8s} {row['avg_pool2d_ms']:10.3f} {row['four_sums_ms']:8.3f} "
                f"{row['channels_last_ms']:8.3f}  {same}"
            )
    out = Path("benchmarks/results/pool_speed.json")
    out.write_text(
        json.dumps({"machine": machine_info(torch.device("cpu")), "rows": rows}, indent=1)
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
