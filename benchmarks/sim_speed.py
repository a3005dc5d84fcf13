"""Simulation speed and memory: dtif against the dense limit and SpikingJelly.

For each model and number of steps T, one process times, interleaved and repeated:

  (a) dtif      `snn.simulate(x, T)`, with record=True (the default) and record=False;
  (b) the limit T dense forward passes of the folded ANN `snn.ann`, batched two ways: T
                forwards of [B] ("loop"), and forwards of [tc*B] stacks with dtif's own time
                chunk tc ("stack"). The faster of the two medians is the limit b;
  (c) SpikingJelly (when importable) `ann2snn.Converter(RateCodingRecipe(mode="max"))` on the
                same ANN (IF neurons, soft reset, max norm: the same conversion as dtif's),
                run its two ways: single-step, the loop of its ann2snn examples
                (`functional.reset_net(net)`, then T calls `net(x)` summed), and multi-step
                (`functional.set_step_mode(net, "m")`, one call on x repeated to [T, B, ...];
                not in --quick). c is the faster of the two.

It reports medians over the repeats, the ratios a/b and c/a, images x steps per second, and
the peak memory of one run of each method, measured in a fresh subprocess per configuration:
on CPU the rise of the resident set over its level before the run (the high-water mark is
reset with /proc/self/clear_refs, else ru_maxrss is used), on CUDA the allocator's peak.
Prints the table and the issue's targets, and writes JSON.

Weights are random, BN statistics random, calibration on random data: the speed of a dense
network does not depend on the values, and spike rates stay plausible (max-norm IF). On CPU,
glibc keeps freed memory in the process (`dtif.keep_freed_memory`, set at start-up; run with
DTIF_KEEP_FREED_MEMORY=0 to measure glibc's defaults).

Run from the repository root:

    python benchmarks/sim_speed.py                # the full table (several minutes on CPU)
    python benchmarks/sim_speed.py --quick        # a smoke run, under ~2 minutes
    python benchmarks/sim_speed.py --device cuda --steps 32,128,256
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path
from typing import Any

import common
import speed_runs
import spikingjelly_side
import torch

import dtif


def agreement(b: speed_runs.Bundle, num_steps: int) -> dict[str, float]:
    """Sanity: how often dtif's prediction at T matches the ANN's and SpikingJelly's."""
    res = b.snn.simulate(b.x, num_steps, record=False)
    pred = res.outputs[-1].flatten(1).argmax(1)
    with torch.inference_mode():
        ann_pred = b.snn.ann(b.x).flatten(1).argmax(1)
    out = {"dtif_vs_ann": float((pred == ann_pred).float().mean())}
    sj_pred = spikingjelly_side.predictions(b.sj, b.x, num_steps)
    if sj_pred is not None:
        out["dtif_vs_sj"] = float((pred == sj_pred).float().mean())
    return out


def summarize(times: dict[str, list[float]], batch: int, num_steps: int) -> dict[str, Any]:
    med = {k: statistics.median(v) for k, v in times.items()}
    limit_name = min(("dense_loop", "dense_stack"), key=lambda k: med[k])
    b = med[limit_name]
    row: dict[str, Any] = {
        "median_s": med,
        "limit": limit_name,
        "a_over_b": med["dtif"] / b,
        "a_norec_over_b": med["dtif_norec"] / b,
        "img_steps_per_s": {k: batch * num_steps / v for k, v in med.items()},
    }
    sj = [k for k in ("sj", "sj_m") if k in med]
    if sj:
        best = min(sj, key=lambda k: med[k])
        row["sj_best"] = best
        row["c_over_a"] = med[best] / med["dtif"]
        row["c_over_a_norec"] = med[best] / med["dtif_norec"]
    return row


def fmt(v: float | None, spec: str = ".2f") -> str:
    return "n/a" if v is None else format(v, spec)


def table(results: list[dict[str, Any]], sj_note: str | None) -> str:
    head = (
        "| model | T | tc | dtif (s) | dtif no-rec (s) | dense limit (s) | SJ (s) | a/b | "
        "a/b no-rec | a/b CPU | c/a | dtif img·steps/s | SJ img·steps/s | "
        "peak MB dtif / dense / SJ / SJ-m |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in results:
        s, c = r["summary"], r["summary_cpu"]
        med = s["median_s"]
        mem = r.get("memory", {})

        def peak(m: str, mem: dict[str, Any] = mem) -> str:
            v = mem.get(m, {})
            return fmt(v.get("peak_mb"), ".0f") if isinstance(v, dict) else "n/a"

        limit = f"{med[s['limit']]:.2f} ({s['limit'].split('_')[1]})"
        best = s.get("sj_best")
        sj = f"{med[best]:.2f} ({'multi' if best == 'sj_m' else 'single'})" if best else "n/a"
        sj_rate = fmt(s["img_steps_per_s"][best], ".0f") if best else "n/a"
        lines.append(
            f"| {r['model']} | {r['num_steps']} | {r['time_chunk']} | {med['dtif']:.2f} | "
            f"{med['dtif_norec']:.2f} | {limit} | {sj} | {s['a_over_b']:.2f} | "
            f"{s['a_norec_over_b']:.2f} | {c['a_over_b']:.2f} | {fmt(s.get('c_over_a'))} | "
            f"{s['img_steps_per_s']['dtif']:.0f} | {sj_rate} | "
            f"{peak('dtif')} / {peak('dense_loop')} / {peak('sj')} / {peak('sj_m')} |"
        )
    if sj_note:
        lines.append("")
        lines.append(f"SpikingJelly unavailable: {sj_note}")
    return "\n".join(lines)


def targets(results: list[dict[str, Any]], memory_ratio: dict[str, Any]) -> str:
    """The issue's targets with the measured numbers, as a Markdown table."""
    at = {(r["model"], r["num_steps"]): r["summary"] for r in results}
    rows = ["| target | measured | met? |", "|---|---|---|"]
    for (model, steps), s in at.items():
        if steps == 128:
            v = s["a_over_b"]
            rows.append(
                f"| {model}, T = 128: a/b <= 1.15 | {v:.3f} | {'yes' if v <= 1.15 else 'no'} |"
            )
    for (model, steps), s in at.items():
        if steps == 128 and model in ("cnn", "resnet20"):
            v = s.get("c_over_a")
            met = "n/a" if v is None else ("yes" if v >= 3 else "no")
            rows.append(f"| {model}, T = 128: c/a >= 3 | {fmt(v)} | {met} |")
    for model, m in memory_ratio.items():
        lo, hi = m["steps"]
        met = "yes" if m["ratio"] <= 1.5 else "no"
        rows.append(
            f"| {model}: peak memory T = {hi} / T = {lo} <= 1.5 | {m['ratio']:.2f} | {met} |"
        )
    return "\n".join(rows)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default=",".join(common.SPEED_MODELS), help="comma-separated")
    p.add_argument("--steps", default="32,128,256", help="comma-separated T values")
    p.add_argument("--batch", type=int, default=32, help="samples per simulation")
    p.add_argument("--repeats", type=int, default=5, help="timed runs per method (median)")
    p.add_argument("--vgg-width", type=float, default=0.25, help="channel multiplier of vgg16")
    p.add_argument("--input", default="1x28x28", help="CxHxW of one sample, e.g. 3x32x32")
    p.add_argument("--neuron", choices=("if", "dtif"), default="if")
    p.add_argument("--device", default="auto", help="cpu, cuda or auto")
    p.add_argument(
        "--threads", type=int, default=1,
        help="torch threads on CPU (0 = torch's default); 1 is the steadiest on a busy machine",
    )  # fmt: skip
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    p.add_argument(
        "--memory-repeats", type=int, default=3, help="subprocesses per dtif peak (median)"
    )
    p.add_argument("--no-spikingjelly", action="store_true", help="skip method (c)")
    p.add_argument(
        "--quick", action="store_true",
        help="smoke run: batch 8, T in {32, 64}, 3 repeats, dtif memory only",
    )  # fmt: skip
    p.add_argument("--out", default="benchmarks/results/sim_speed.json", help="JSON output path")
    args = p.parse_args(argv)
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.quick:
        args.batch, args.steps, args.repeats, args.memory_repeats = 8, "32,64", 3, 1
    return args


def measure(
    cfg: common.Config, b: speed_runs.Bundle, num_steps: int, args: argparse.Namespace
) -> dict[str, Any]:
    """One row of the table: the timings, their summaries, agreement and peak memory."""
    device = torch.device(args.device)
    tc = speed_runs.auto_time_chunk(b.snn, b.x, num_steps)
    fns = speed_runs.runners(b, num_steps, tc, multi=not args.quick)
    for fn in fns.values():  # warm-up: profile, lazy init, allocator
        fn()
    times, cpu_times = speed_runs.time_interleaved(fns, args.repeats, device)
    row: dict[str, Any] = {
        "model": cfg.model,
        "config": cfg.__dict__,
        "num_steps": num_steps,
        "time_chunk": tc,
        "times_s": times,
        "cpu_s": cpu_times,
        "summary": summarize(times, args.batch, num_steps),
        "summary_cpu": summarize(cpu_times, args.batch, num_steps),
        "agreement": agreement(b, num_steps),
        "loadavg": list(os.getloadavg()),
    }
    if not args.no_memory:
        methods = ("dtif",) if args.quick else speed_runs.MEMORY_METHODS
        row["memory"] = {
            m: speed_runs.measure_memory(
                cfg, m, num_steps, args.device, args.threads, args.memory_repeats
            )
            for m in methods
            if m in fns
        }
    return row


def progress_line(row: dict[str, Any]) -> str:
    s = row["summary"]
    line = (
        f"{row['model']:9s} T={row['num_steps']:<4d} tc={row['time_chunk']:<3d} "
        + " ".join(f"{k}={v:.3f}s" for k, v in s["median_s"].items())
        + f"  a/b={s['a_over_b']:.2f} (no-rec {s['a_norec_over_b']:.2f}, limit "
        + f"{s['limit']})  c/a={fmt(s.get('c_over_a'))}"
    )
    if "memory" in row:
        line += "  peak MB " + " ".join(
            f"{m}={fmt(v.get('peak_mb'), '.0f')}" for m, v in row["memory"].items()
        )
    return line


def memory_ratios(results: list[dict[str, Any]], models: list[str]) -> dict[str, Any]:
    """dtif's peak memory at the largest T over its peak at the smallest, per model."""
    out = {}
    for name in models:
        rows = {r["num_steps"]: r for r in results if r["model"] == name}
        lo, hi = min(rows), max(rows)
        m_lo = rows[lo].get("memory", {}).get("dtif", {}).get("peak_mb")
        m_hi = rows[hi].get("memory", {}).get("dtif", {}).get("peak_mb")
        if m_lo and m_hi:
            out[name] = {"steps": [lo, hi], "ratio": m_hi / m_lo}
    return out


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    common.set_threads(args.threads)
    device = torch.device(args.device)
    c, h, w = (int(v) for v in args.input.lower().split("x"))
    steps = [int(s) for s in args.steps.split(",")]
    models = args.models.split(",")
    info = common.machine_info(device)
    # The library leaves the allocator alone; set it first, so that every method and repeat
    # runs with the same setting (DTIF_KEEP_FREED_MEMORY=0 measures glibc's defaults).
    info["keep_freed_memory"] = dtif.keep_freed_memory() if device.type == "cpu" else None
    info["command"] = "python benchmarks/sim_speed.py " + " ".join(sys.argv[1:])
    sj_note = None if args.no_spikingjelly else spikingjelly_side.status()
    if args.no_spikingjelly:
        sj_note = "skipped (--no-spikingjelly)"
    print(
        f"# {info['date']}  {info['cpu']}  nproc={info['nproc']}  torch {info['torch']}  "
        f"device={device}  threads={info['threads']}  load={info['loadavg_start']}  "
        f"keep_freed_memory={info['keep_freed_memory']}",
        flush=True,
    )
    results: list[dict[str, Any]] = []
    for name in models:
        cfg = common.Config(
            model=name,
            width=args.vgg_width if name.startswith("vgg") else 1.0,
            input_shape=(c, h, w),
            batch=args.batch,
            neuron=args.neuron,
            seed=args.seed,
        )
        b = speed_runs.build(cfg, device, with_sj=not args.no_spikingjelly)
        if b.sj.error and not sj_note:
            sj_note = b.sj.error
        for num_steps in steps:
            results.append(measure(cfg, b, num_steps, args))
            print(progress_line(results[-1]), flush=True)
    info["loadavg_end"] = list(os.getloadavg())
    memory_ratio = memory_ratios(results, models)
    text = table(results, sj_note)
    goals = targets(results, memory_ratio)
    print(f"\n{text}\n\n{goals}")
    if memory_ratio:
        print(
            "\ndtif peak memory, largest T / smallest T: "
            + ", ".join(f"{k} {v['ratio']:.2f}x" for k, v in memory_ratio.items())
        )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "machine": info,
        "args": vars(args),
        "spikingjelly": sj_note or "available",
        "results": results,
        "memory_ratio": memory_ratio,
        "table": text,
        "targets": goals,
    }
    out.write_text(json.dumps(payload, indent=2))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
