"""Would an event-driven convolution beat the dense one on this CPU? (issue 5, c/a >= 3)

An event-driven convolution touches only the nonzero inputs: for each spike it adds the
spike's value times its kernel slice W[:, c, ky, kx] into the outputs it reaches. Its work is
proportional to the input density; the dense convolution's is not, but it runs at GEMM
speed. This script builds the simplest fast form of it (a C++ scatter into a per-sample
output tile kept in the cache, compiled here with `torch.utils.cpp_extension.load_inline`;
it needs a C++ compiler and ninja) and times it against `F.conv2d` on the very inputs that
the spiking convolutions of `sim_speed.py`'s networks receive (same random weights, max-norm
IF, batch 32, dtif's own time chunk), then on random inputs at set densities (the
break-even). The kernel lives only here: the package does not use it.

    python benchmarks/event_conv.py                      # cnn, vgg16, resnet20; 1 thread
    python benchmarks/event_conv.py --models cnn --repeats 5

It prints two tables and writes JSON (default `benchmarks/results/event_conv.json`).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
from sim_speed import MODELS, Config, auto_time_chunk, build, machine_info, set_threads
from torch import nn

_SOURCE = r"""
#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <cstring>
#include <vector>

// x [N, Cin, H, W] contiguous; wt [Cin, KH, KW, Cout] contiguous; bias [Cout] or empty;
// out [N, Cout, Ho, Wo] contiguous, written. Stride and padding per axis, no dilation.
void event_conv2d(torch::Tensor x, torch::Tensor wt, torch::Tensor bias, torch::Tensor out,
                  int64_t sh, int64_t sw, int64_t ph, int64_t pw) {
  const int64_t N = x.size(0), Cin = x.size(1), H = x.size(2), W = x.size(3);
  const int64_t KH = wt.size(1), KW = wt.size(2), Cout = wt.size(3);
  const int64_t Ho = out.size(2), Wo = out.size(3), P = Ho * Wo;
  const float* xp = x.data_ptr<float>();
  const float* wp = wt.data_ptr<float>();
  const float* bp = bias.numel() ? bias.data_ptr<float>() : nullptr;
  float* op = out.data_ptr<float>();
  at::parallel_for(0, N, 1, [&](int64_t n0, int64_t n1) {
    std::vector<float> tile(P * Cout);  // one sample's output, pixel-major: stays in cache
    float* s = tile.data();
    for (int64_t n = n0; n < n1; ++n) {
      for (int64_t p = 0; p < P; ++p)
        for (int64_t co = 0; co < Cout; ++co) s[p * Cout + co] = bp ? bp[co] : 0.0f;
      const float* xn = xp + n * Cin * H * W;
      for (int64_t c = 0; c < Cin; ++c)
        for (int64_t y = 0; y < H; ++y)
          for (int64_t xx = 0; xx < W; ++xx) {
            const float v = xn[(c * H + y) * W + xx];
            if (v == 0.0f) continue;
            for (int64_t ky = 0; ky < KH; ++ky) {
              const int64_t ty = y + ph - ky;
              if (ty < 0 || ty % sh) continue;
              const int64_t oy = ty / sh;
              if (oy >= Ho) continue;
              for (int64_t kx = 0; kx < KW; ++kx) {
                const int64_t tx = xx + pw - kx;
                if (tx < 0 || tx % sw) continue;
                const int64_t ox = tx / sw;
                if (ox >= Wo) continue;
                float* __restrict__ o = s + (oy * Wo + ox) * Cout;
                const float* __restrict__ w = wp + ((c * KH + ky) * KW + kx) * Cout;
                for (int64_t co = 0; co < Cout; ++co) o[co] += v * w[co];
              }
            }
          }
      float* on = op + n * Cout * P;
      for (int64_t co = 0; co < Cout; ++co)
        for (int64_t p = 0; p < P; ++p) on[co * P + p] = s[p * Cout + co];
    }
  });
}
"""

DENSITIES = (0.01, 0.02, 0.05, 0.1, 0.2)


def build_kernel() -> Any:
    from torch.utils.cpp_extension import load_inline

    return load_inline(
        name="dtif_bench_event_conv",
        cpp_sources=_SOURCE,
        functions=["event_conv2d"],
        extra_cflags=["-O3", "-march=native"],
    )


class EventConv:
    """`conv`'s weights laid out for the kernel, and a call that matches `conv(x)`."""

    def __init__(self, kernel: Any, conv: nn.Conv2d) -> None:
        if conv.groups != 1 or conv.dilation != (1, 1) or conv.padding_mode != "zeros":
            raise ValueError(f"unsupported conv for the event kernel: {conv}")
        if not isinstance(conv.padding, tuple):
            raise ValueError(f"padding {conv.padding!r}: give it as numbers")
        self.kernel, self.conv = kernel, conv
        self.wt = conv.weight.detach().permute(1, 2, 3, 0).contiguous()
        b = conv.bias
        self.bias = b.detach().contiguous() if b is not None else torch.empty(0)

    def __call__(self, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        (sh, sw), (ph, pw) = self.conv.stride, self.conv.padding
        self.kernel.event_conv2d(x, self.wt, self.bias, out, sh, sw, ph, pw)
        return out


def spiking_conv_inputs(cfg: Config, num_steps: int) -> list[tuple[str, nn.Conv2d, torch.Tensor]]:
    """(name, conv, one chunk's input) for every conv of the SNN fed by spikes.

    The chunk kept is the one in the middle of a `num_steps` simulation; the first conv, fed
    by the analog image once per run, is left out.
    """
    b = build(cfg, torch.device("cpu"), with_sj=False)
    tc = auto_time_chunk(b.snn, b.x, num_steps)
    seen: dict[str, list[torch.Tensor]] = {}
    handles = []
    for name, mod in b.snn.named_modules():
        if isinstance(mod, nn.Conv2d):

            def hook(m: nn.Module, args: tuple[torch.Tensor, ...], name: str = name) -> None:
                seen.setdefault(name, []).append(args[0].detach().clone())

            handles.append(mod.register_forward_pre_hook(hook))
    try:
        b.snn.simulate(b.x, num_steps, time_chunk=tc, record=False)
    finally:
        for h in handles:
            h.remove()
    mods = dict(b.snn.named_modules())
    out = []
    for name, xs in seen.items():
        if len(xs) == 1:  # the static first layer
            continue
        out.append((name, mods[name], xs[len(xs) // 2].contiguous()))
    return out


def median_ms(fn: Any, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3


def time_pair(ev: EventConv, x: torch.Tensor, repeats: int) -> dict[str, float]:
    conv = ev.conv
    with torch.inference_mode():
        ref = conv(x)
        out = torch.empty_like(ref)
        ev(x, out)
        err = float((out - ref).abs().max() / ref.abs().max().clamp_min(1e-12))
        dense = median_ms(lambda: conv(x), repeats)
        event = median_ms(lambda: ev(x, out), repeats)
    return {"dense_ms": dense, "event_ms": event, "speedup": dense / event, "rel_err": err}


def shape_of(conv: nn.Conv2d, x: torch.Tensor) -> str:
    n, c, h, w = x.shape
    s = conv.stride[0]
    return f"[{n}, {c}, {h}, {w}] -> {conv.out_channels}" + (f", stride {s}" if s > 1 else "")


def run(args: argparse.Namespace) -> dict[str, Any]:
    try:
        kernel = build_kernel()
    except (OSError, RuntimeError, ImportError) as err:
        sys.exit(f"could not build the C++ kernel ({err}); it needs a C++ compiler and ninja")
    set_threads(args.threads)
    layers, sweeps = [], []
    for model in args.models.split(","):
        width = args.vgg_width if model == "vgg16" else 1.0
        cfg = Config(model, width, (1, 28, 28), args.batch, "if", args.seed)
        swept: set[str] = set()
        for name, conv, x in spiking_conv_inputs(cfg, args.steps):
            ev = EventConv(kernel, conv)
            row = {"model": model, "layer": name, "shape": shape_of(conv, x)}
            row["density"] = float(torch.count_nonzero(x)) / x.numel()
            row.update(time_pair(ev, x, args.repeats))
            layers.append(row)
            print(
                f"{model:9s} {name:28s} {row['shape']:32s} density {row['density']:.3f}  "
                f"dense {row['dense_ms']:7.2f} ms  event {row['event_ms']:7.2f} ms  "
                f"x{row['speedup']:.2f}",
                flush=True,
            )
            key = row["shape"]
            if key in swept:
                continue
            swept.add(key)
            gen = torch.Generator().manual_seed(args.seed)
            for d in DENSITIES:  # random spikes at a set density, same shape and weights
                xr = (torch.rand(x.shape, generator=gen) < d).float()
                sweeps.append(
                    {"model": model, "shape": key, "density": d, **time_pair(ev, xr, args.repeats)}
                )
    return {"layers": layers, "sweeps": sweeps}


def totals(layers: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per model: the spiking convs' dense time, event time, and the better of each layer."""
    out: dict[str, dict[str, float]] = {}
    for r in layers:
        t = out.setdefault(r["model"], {"dense_ms": 0.0, "event_ms": 0.0, "best_ms": 0.0})
        t["dense_ms"] += r["dense_ms"]
        t["event_ms"] += r["event_ms"]
        t["best_ms"] += min(r["dense_ms"], r["event_ms"])
    return out


def print_tables(result: dict[str, Any]) -> None:
    print(
        "\n| model | spiking convs, dense (ms) | event (ms) | best per layer (ms) | dense / best |"
    )
    print("|---|---|---|---|---|")
    for model, t in result["totals"].items():
        print(
            f"| {model} | {t['dense_ms']:.1f} | {t['event_ms']:.1f} | {t['best_ms']:.1f} "
            f"| {t['dense_ms'] / t['best_ms']:.2f} |"
        )
    print("\n| shape | " + " | ".join(f"d = {d}" for d in DENSITIES) + " |")
    print("|---|" + "---|" * len(DENSITIES))
    rows: dict[str, dict[float, float]] = {}
    for s in result["sweeps"]:
        rows.setdefault(s["shape"], {})[s["density"]] = s["speedup"]
    for shape, by_d in rows.items():
        print(f"| {shape} | " + " | ".join(f"{by_d[d]:.2f}" for d in DENSITIES) + " |")
    print("(dense time / event time: above 1, the event-driven convolution is faster)")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--steps", type=int, default=128, help="T of the simulation inputs come from")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--repeats", type=int, default=9, help="timed calls per measurement (median)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--vgg-width", type=float, default=0.25)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="benchmarks/results/event_conv.json")
    args = p.parse_args(argv)
    result = run(args)
    result["totals"] = totals(result["layers"])
    result["machine"] = machine_info(torch.device("cpu"))
    result["args"] = vars(args)
    print_tables(result)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
