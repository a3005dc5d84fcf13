"""Simulation speed and memory: dtif against the dense limit and SpikingJelly (issue 5).

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

Weights are random, BN statistics random, calibration on random data: the speed of a dense
network does not depend on the values, and spike rates stay plausible (max-norm IF).

Run from the repository root:

    python benchmarks/sim_speed.py                # the full table (several minutes on CPU)
    python benchmarks/sim_speed.py --quick        # a smoke run, under ~2 minutes
    python benchmarks/sim_speed.py --device cuda --steps 32,128,256
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import datetime as dt
import gc
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

import dtif
from dtif.models import create_model
from dtif.report.markdown import cpu_name, replace_section
from dtif.sim import engine
from dtif.sim.allocator import ENV_SWITCH, keep_freed_memory

MODELS = ("cnn", "vgg16", "resnet20")
MEMORY_METHODS = ("dtif", "dense_loop", "sj", "sj_m")


@dataclass(frozen=True)
class Config:
    """One benchmark setting.

    Attributes:
        model: registered model name.
        width: channel multiplier.
        input_shape: (C, H, W) of one sample.
        batch: samples per simulation.
        neuron: "if" (max-norm IF, subtractive reset) or "dtif" (DTIF binary, alpha 4).
        seed: seed for weights, BN statistics and data.
    """

    model: str
    width: float
    input_shape: tuple[int, int, int]
    batch: int
    neuron: str
    seed: int


@dataclass
class Bundle:
    """What one configuration times: the models and the input."""

    ann: nn.Module
    snn: dtif.SpikingNetwork
    x: torch.Tensor
    sj: nn.Module | None
    sj_error: str | None = None
    sj_m: nn.Module | None = None
    timings: dict[str, list[float]] = field(default_factory=dict)


def randomize_bn(model: nn.Module, gen: torch.Generator) -> None:
    """Random BN running statistics and affine parameters (so that folding is not trivial)."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                c = m.num_features
                m.running_mean.copy_(torch.randn(c, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(c, generator=gen) * 0.5 + 0.75)
                m.weight.copy_(torch.rand(c, generator=gen) * 0.5 + 0.75)
                m.bias.copy_(torch.randn(c, generator=gen) * 0.1)


def spikingjelly_status() -> str | None:
    """None when SpikingJelly's ann2snn imports, else why not."""
    try:
        from spikingjelly.activation_based import ann2snn, functional  # noqa: F401
    except Exception as err:  # noqa: BLE001 - any import failure makes it unavailable
        return f"{type(err).__name__}: {err}"
    return None


def build(cfg: Config, device: torch.device, with_sj: bool, calib_size: int = 64) -> Bundle:
    """The ANN, its dtif conversion, its SpikingJelly conversion and the input batch."""
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    c, h, w = cfg.input_shape
    ann = create_model(cfg.model, in_channels=c, image_size=h, width=cfg.width).eval()
    randomize_bn(ann, gen)
    calib = torch.rand(calib_size, c, h, w, generator=gen)
    x = torch.rand(cfg.batch, c, h, w, generator=gen)
    neuron = dtif.IF() if cfg.neuron == "if" else dtif.DTIF(alpha=4.0)
    ann = ann.to(device)
    snn = dtif.convert(ann, calib.to(device), neuron=neuron)
    bundle = Bundle(ann=ann, snn=snn, x=x.to(device), sj=None)
    if with_sj:
        bundle.sj_error = spikingjelly_status()
        if bundle.sj_error is None:
            try:
                bundle.sj = convert_spikingjelly(ann, calib.to(device), device)
                bundle.sj_m = multi_step(bundle.sj)
            except Exception as err:  # noqa: BLE001 - reported, never fatal
                bundle.sj_error = f"conversion failed: {type(err).__name__}: {err}"
    return bundle


def convert_spikingjelly(ann: nn.Module, calib: torch.Tensor, device: torch.device) -> nn.Module:
    """SpikingJelly's rate-coding conversion (max norm, IF with soft reset) of `ann`."""
    import logging

    from spikingjelly.activation_based import ann2snn

    logging.getLogger("spikingjelly").setLevel(logging.WARNING)
    try:  # SpikingJelly 2.x logs through loguru; keep the table readable
        from loguru import logger

        logger.remove()
    except ImportError:
        pass
    recipe = ann2snn.RateCodingRecipe(dataloader=[calib], mode="max")
    with open(os.devnull, "w") as null:  # its calibration loop prints a tqdm bar
        stderr, sys.stderr = sys.stderr, null
        try:
            net = ann2snn.Converter(recipe, device=device).convert(copy.deepcopy(ann))
        finally:
            sys.stderr = stderr
    return net.eval()


def multi_step(net: nn.Module) -> nn.Module | None:
    """A copy of a converted SpikingJelly net in multi-step mode, or None if that fails."""
    from spikingjelly.activation_based import functional

    try:
        net_m = copy.deepcopy(net)
        functional.set_step_mode(net_m, "m")
    except Exception:  # noqa: BLE001 - then only the single-step loop is timed
        return None
    return net_m


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def auto_time_chunk(snn: dtif.SpikingNetwork, x: torch.Tensor, num_steps: int) -> int:
    """The time chunk that `simulate` picks by itself, observed on one run."""
    seen = [1]

    def hook(mod: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        seen.append(args[0].shape[0] // x.shape[0])

    handles = [m.register_forward_pre_hook(hook) for m in snn.layers()]
    try:
        snn.simulate(x, num_steps, record=False)
    finally:
        for h in handles:
            h.remove()
    return max(seen)


def runners(
    b: Bundle, num_steps: int, tc: int = 1, multi: bool = True, buffers: bool = False
) -> dict[str, Callable[[], object]]:
    """One callable per method; each runs one full simulation of `num_steps` steps.

    `tc` is dtif's time chunk, which the "dense_stack" limit copies; `multi` adds
    SpikingJelly's multi-step mode; `buffers` adds "dtif_buffers", dtif with every spiking
    layer writing into its own spike buffer, never over its input (as before commit fce6215).
    """
    snn, ann, x = b.snn, b.snn.ann, b.x

    def dtif_buffers() -> object:
        with own_buffers():
            return snn.simulate(x, num_steps)

    def dtif_rec() -> object:
        return snn.simulate(x, num_steps)

    def dtif_norec() -> object:
        return snn.simulate(x, num_steps, record=False)

    def dense_loop() -> object:
        with torch.inference_mode():
            acc = torch.zeros((), device=x.device)
            for _ in range(num_steps):
                acc = acc + ann(x)
            return acc

    def dense_stack() -> object:
        with torch.inference_mode():
            acc = torch.zeros((), device=x.device)
            for t0 in range(0, num_steps, tc):
                steps = min(tc, num_steps - t0)
                xs = x.unsqueeze(0).expand(steps, *x.shape).reshape(-1, *x.shape[1:])
                acc = acc + ann(xs).view(steps, x.shape[0], -1).sum(0)
            return acc

    out: dict[str, Callable[[], object]] = {
        "dtif": dtif_rec,
        "dtif_norec": dtif_norec,
        "dense_loop": dense_loop,
        "dense_stack": dense_stack,
    }
    if buffers:
        out["dtif_buffers"] = dtif_buffers
    if b.sj is not None:
        from spikingjelly.activation_based import functional

        sj = b.sj

        def sj_loop() -> object:
            with torch.inference_mode():
                functional.reset_net(sj)
                acc = torch.zeros((), device=x.device)
                for _ in range(num_steps):
                    acc = acc + sj(x)
                return acc

        out["sj"] = sj_loop
    if b.sj_m is not None and multi:
        from spikingjelly.activation_based import functional

        sj_m = b.sj_m

        def sj_multi() -> object:
            with torch.inference_mode():
                functional.reset_net(sj_m)
                xs = x.unsqueeze(0).expand(num_steps, *x.shape)
                return sj_m(xs).sum(0)

        out["sj_m"] = sj_multi
    return out


@contextlib.contextmanager
def own_buffers() -> Iterator[None]:
    """Within: no spiking layer writes over its input (`engine.overwritable_inputs`)."""
    original = engine.overwritable_inputs
    engine.overwritable_inputs = lambda dynamic: frozenset()
    try:
        yield
    finally:
        engine.overwritable_inputs = original


def buffers_identical(b: Bundle, num_steps: int) -> bool:
    """Sanity: own spike buffers give the same outputs, spikes and SOPs, bit for bit."""
    new = b.snn.simulate(b.x, num_steps)
    with own_buffers():
        ref = b.snn.simulate(b.x, num_steps)
    return (
        torch.equal(ref.outputs, new.outputs)
        and torch.equal(ref.synops, new.synops)
        and all(torch.equal(ref.spikes[k], new.spikes[k]) for k in ref.spikes)
    )


def time_interleaved(
    fns: dict[str, Callable[[], object]], repeats: int, device: torch.device
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Wall-clock and CPU seconds of each callable, `repeats` rounds, order rotated per round.

    CPU time (this process, all threads) is steadier than wall time on a shared machine with
    one thread; with several threads it counts OpenMP's spin-waiting too.
    """
    names = list(fns)
    wall: dict[str, list[float]] = {n: [] for n in names}
    cpu: dict[str, list[float]] = {n: [] for n in names}
    for r in range(repeats):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            gc.collect()
            sync(device)
            t0, c0 = time.perf_counter(), time.process_time()
            fns[name]()
            sync(device)
            wall[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
    return wall, cpu


def agreement(b: Bundle, num_steps: int) -> dict[str, float]:
    """Sanity: how often dtif's prediction at T matches the ANN's and SpikingJelly's."""
    res = b.snn.simulate(b.x, num_steps, record=False)
    pred = res.outputs[-1].flatten(1).argmax(1)
    with torch.inference_mode():
        ann_pred = b.snn.ann(b.x).flatten(1).argmax(1)
    out = {"dtif_vs_ann": float((pred == ann_pred).float().mean())}
    if b.sj is not None:
        from spikingjelly.activation_based import functional

        with torch.inference_mode():
            functional.reset_net(b.sj)
            acc = sum(b.sj(b.x) for _ in range(num_steps))
        out["dtif_vs_sj"] = float((pred == acc.flatten(1).argmax(1)).float().mean())
    return out


def event_linear_usage(snn: dtif.SpikingNetwork) -> dict[str, list[int]]:
    """Calls and sparse-path calls of each event-driven Linear layer so far (CPU only)."""
    try:
        from dtif.sim.engine import EventLinear, event_driven
    except ImportError:
        return {}
    usage = {}
    for name, m in event_driven(snn.dynamic).named_modules():
        if isinstance(m, EventLinear):
            usage[name] = [m.calls, m.sparse_calls]
            m.calls = m.sparse_calls = 0
    return usage


# ----------------------------------------------------------------------------- memory


def _status_kb(field_name: str) -> int | None:
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return None
    m = re.search(rf"{field_name}:\s+(\d+)\s+kB", text)
    return int(m.group(1)) if m else None


def _reset_hwm() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _malloc_trim() -> None:
    """Return the C heap's free pages to the OS (glibc), so that RSS counts live memory only."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def measure_memory_child(args: argparse.Namespace) -> None:
    """In a fresh process: build one configuration, run one method once, print its peak.

    Warm-up with T = 1 (lazy imports, dtif's fan-out profile), give the free heap back to
    the OS, reset the high-water mark, run T steps: peak = high-water mark - RSS before.
    """
    cfg = Config(**json.loads(args.child_config))
    device = torch.device(args.device)
    set_threads(args.threads)
    keep_freed_memory()  # what `simulate` does; so that every method runs with it
    b = build(cfg, device, with_sj=args.child_method.startswith("sj"), calib_size=8)
    if args.child_method not in runners(b, 1):
        print(json.dumps({"error": b.sj_error or "method unavailable"}))
        return
    runners(b, 1)[args.child_method]()
    tc = auto_time_chunk(b.snn, b.x, args.child_steps) if args.child_method == "dense_stack" else 1
    run = runners(b, args.child_steps, tc)[args.child_method]
    gc.collect()
    _malloc_trim()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        run()
        torch.cuda.synchronize(device)
        peak = torch.cuda.max_memory_allocated(device)
        out = {
            "how": "cuda max_memory_allocated - allocated before",
            "peak_mb": (peak - base) / 2**20,
        }
    else:
        rss0 = _status_kb("VmRSS")
        if rss0 is not None and _reset_hwm():
            run()
            hwm = _status_kb("VmHWM") or rss0
            out = {
                "how": "VmHWM - VmRSS before",
                "peak_mb": (hwm - rss0) / 1024,
                "rss_peak_mb": hwm / 1024,
            }
        else:  # ru_maxrss: the high-water mark of the whole child (setup included)
            before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            run()
            after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            out = {
                "how": "ru_maxrss rise",
                "peak_mb": (after - before) / 1024,
                "rss_peak_mb": after / 1024,
            }
    print(json.dumps(out))


def measure_memory(
    cfg: Config, method: str, num_steps: int, args: argparse.Namespace, repeats: int = 1
) -> dict[str, Any]:
    """Peak memory of one run, in fresh subprocesses; the median of `repeats` for dtif.

    The heap layout, and so the peak, varies a little from process to process.
    """
    runs = []
    for _ in range(repeats if method == "dtif" else 1):
        cmd = [
            sys.executable, __file__, "--child-config", json.dumps(cfg.__dict__),
            "--child-method", method, "--child-steps", str(num_steps),
            "--device", args.device, "--threads", str(args.threads),
        ]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
        if proc.returncode != 0 or not lines:
            return {"error": (proc.stderr.strip().splitlines() or ["failed"])[-1]}
        runs.append(json.loads(lines[-1]))
    runs.sort(key=lambda r: r.get("peak_mb", 0.0))
    out: dict[str, Any] = dict(runs[len(runs) // 2])
    out["all_peak_mb"] = [r.get("peak_mb") for r in runs]
    return out


# ----------------------------------------------------------------------------- report


def machine_info(device: torch.device) -> dict[str, Any]:
    cpu = cpu_name()
    info: dict[str, Any] = {
        "date": dt.datetime.now().isoformat(timespec="seconds"),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": str(device),
        "threads": torch.get_num_threads(),
        "loadavg_start": list(os.getloadavg()),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    try:
        from importlib.metadata import version

        import spikingjelly  # noqa: F401

        info["spikingjelly"] = version("spikingjelly")
    except Exception:  # noqa: BLE001
        info["spikingjelly"] = None
    return info


def summarize(times: dict[str, list[float]], batch: int, num_steps: int) -> dict[str, Any]:
    med = {k: statistics.median(v) for k, v in times.items()}
    limit_name = min(("dense_loop", "dense_stack"), key=lambda k: med[k])
    b = med[limit_name]
    row: dict[str, Any] = {
        "median_s": med,
        "limit": limit_name,
        "a_over_b": med["dtif"] / b,
        "a_norec_over_b": med["dtif_norec"] / b,
        **({"a_buffers_over_b": med["dtif_buffers"] / b} if "dtif_buffers" in med else {}),
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


def write_docs(payload: dict[str, Any], path: Path) -> None:
    info, args = payload["machine"], payload["args"]
    body = (
        f"Command: `{info['command'].strip()}`. Date: {info['date']}. Machine: {info['cpu']}, "
        f"{info['nproc']} CPUs, {info['threads']} torch thread(s), device {info['device']}, "
        f"torch {info['torch']}, SpikingJelly {info.get('spikingjelly') or 'not installed'}. "
        f"Load average at start and end: {info['loadavg_start'][0]:.1f}, "
        f"{info['loadavg_end'][0]:.1f}. Batch {args['batch']}, {args['repeats']} interleaved "
        f"repeats (medians), input {args['input']}, vgg16 at width {args['vgg_width']:g}, "
        f"{args['neuron']} neurons. {allocator_note(info)}JSON: `{args['out']}`.\n\n"
        f"{payload['table']}\n\n{targets(payload['results'], payload['memory_ratio'])}"
    )
    replace_section(path, "## Simulation speed", body)


def allocator_note(info: dict[str, Any]) -> str:
    """How freed memory was handled (see `dtif.sim.allocator`), for the docs header."""
    kept = info.get("keep_freed_memory")
    if kept is None:
        return ""
    if kept:
        return "glibc kept freed memory in the process (dtif's default). "
    return f"glibc's default allocator settings ({ENV_SWITCH}=0 or MALLOC_* set). "


def set_threads(threads: int) -> None:
    if threads > 0:
        torch.set_num_threads(threads)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default=",".join(MODELS), help="comma-separated model names")
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
        "--with-buffers", action="store_true",
        help="also time dtif with a spike buffer in every layer (never over the input)",
    )  # fmt: skip
    p.add_argument(
        "--quick", action="store_true",
        help="smoke run: batch 8, T in {32, 64}, 3 repeats, dtif memory only",
    )  # fmt: skip
    p.add_argument("--out", default="benchmarks/results/sim_speed.json", help="JSON output path")
    p.add_argument(
        "--no-docs", action="store_true",
        help="do not write the table to docs/results.md (--quick never writes it)",
    )  # fmt: skip
    p.add_argument("--child-config", help=argparse.SUPPRESS)
    p.add_argument("--child-method", help=argparse.SUPPRESS)
    p.add_argument("--child-steps", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.quick:
        args.batch, args.steps, args.repeats, args.memory_repeats = 8, "32,64", 3, 1
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.child_config:
        measure_memory_child(args)
        return
    set_threads(args.threads)
    device = torch.device(args.device)
    c, h, w = (int(v) for v in args.input.lower().split("x"))
    steps = [int(s) for s in args.steps.split(",")]
    info = machine_info(device)
    # `simulate` sets it on its first call; set it first, so that every method and repeat
    # runs with the same allocator (DTIF_KEEP_FREED_MEMORY=0 measures glibc's defaults).
    info["keep_freed_memory"] = keep_freed_memory() if device.type == "cpu" else None
    info["command"] = "python benchmarks/sim_speed.py " + " ".join(sys.argv[1:])
    sj_note = None if args.no_spikingjelly else spikingjelly_status()
    if args.no_spikingjelly:
        sj_note = "skipped (--no-spikingjelly)"
    print(
        f"# {info['date']}  {info['cpu']}  nproc={info['nproc']}  torch {info['torch']}  "
        f"device={device}  threads={info['threads']}  load={info['loadavg_start']}  "
        f"keep_freed_memory={info['keep_freed_memory']}",
        flush=True,
    )
    results: list[dict[str, Any]] = []
    for name in args.models.split(","):
        cfg = Config(
            model=name,
            width=args.vgg_width if name.startswith("vgg") else 1.0,
            input_shape=(c, h, w),
            batch=args.batch,
            neuron=args.neuron,
            seed=args.seed,
        )
        b = build(cfg, device, with_sj=not args.no_spikingjelly)
        if b.sj_error and not sj_note:
            sj_note = b.sj_error
        for num_steps in steps:
            tc = auto_time_chunk(b.snn, b.x, num_steps)
            fns = runners(b, num_steps, tc, multi=not args.quick, buffers=args.with_buffers)
            for fn in fns.values():  # warm-up: profile, lazy init, allocator
                fn()
            times, cpu_times = time_interleaved(fns, args.repeats, device)
            row: dict[str, Any] = {
                "model": name,
                "config": cfg.__dict__,
                "num_steps": num_steps,
                "time_chunk": tc,
                "times_s": times,
                "cpu_s": cpu_times,
                "summary": summarize(times, args.batch, num_steps),
                "summary_cpu": summarize(cpu_times, args.batch, num_steps),
                "agreement": agreement(b, num_steps),
                "event_linear": event_linear_usage(b.snn),
                **(
                    {"buffers_identical": buffers_identical(b, num_steps)}
                    if args.with_buffers
                    else {}
                ),
                "loadavg": list(os.getloadavg()),
            }
            if not args.no_memory:
                methods = ("dtif",) if args.quick else MEMORY_METHODS
                row["memory"] = {
                    m: measure_memory(cfg, m, num_steps, args, args.memory_repeats)
                    for m in methods
                    if m in fns
                }
            results.append(row)
            s = row["summary"]
            print(
                f"{name:9s} T={num_steps:<4d} tc={row['time_chunk']:<3d} "
                + " ".join(f"{k}={v:.3f}s" for k, v in s["median_s"].items())
                + f"  a/b={s['a_over_b']:.2f} (no-rec {s['a_norec_over_b']:.2f}, limit "
                + f"{s['limit']})  c/a={fmt(s.get('c_over_a'))}"
                + (f"  a_buffers/b={s['a_buffers_over_b']:.2f}" if "a_buffers_over_b" in s else "")
                + (
                    "  peak MB "
                    + " ".join(
                        f"{m}={fmt(v.get('peak_mb'), '.0f')}" for m, v in row["memory"].items()
                    )
                    if "memory" in row
                    else ""
                ),
                flush=True,
            )
    info["loadavg_end"] = list(os.getloadavg())
    memory_ratio = {}
    for name in args.models.split(","):
        rows = {r["num_steps"]: r for r in results if r["model"] == name}
        lo, hi = min(rows), max(rows)
        m_lo = rows[lo].get("memory", {}).get("dtif", {}).get("peak_mb")
        m_hi = rows[hi].get("memory", {}).get("dtif", {}).get("peak_mb")
        if m_lo and m_hi:
            memory_ratio[name] = {"steps": [lo, hi], "ratio": m_hi / m_lo}
    text = table(results, sj_note)
    print()
    print(text)
    if memory_ratio:
        print()
        print(
            "dtif peak memory, largest T / smallest T: "
            + ", ".join(f"{k} {v['ratio']:.2f}x" for k, v in memory_ratio.items())
        )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "machine": info,
        "args": {k: v for k, v in vars(args).items() if not k.startswith("child")},
        "spikingjelly": sj_note or "available",
        "results": results,
        "memory_ratio": memory_ratio,
        "table": text,
    }
    out.write_text(json.dumps(payload, indent=2))
    print(f"\nwrote {out}")
    if not (args.quick or args.no_docs):
        write_docs(payload, Path(__file__).resolve().parents[1] / "docs" / "results.md")
        print("updated docs/results.md")


if __name__ == "__main__":
    main()
