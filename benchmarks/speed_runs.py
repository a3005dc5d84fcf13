"""The runs that the speed benchmark times, and their peak memory in a fresh process.

For one configuration (common.Config): (a) dtif's `simulate`, with and without recording,
(b) the dense limit, T forwards of the folded ANN, looped or stacked like dtif's time chunks,
(c) SpikingJelly (spikingjelly_side.py). Each is a callable that runs one full simulation.

A helper module (see common.py). Run as a file, it is the child process of `measure_memory`:

    python benchmarks/speed_runs.py CONFIG_JSON METHOD STEPS DEVICE THREADS
"""

from __future__ import annotations

import gc
import json
import re
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import common
import spikingjelly_side
import torch
from torch import nn

import dtif

MEMORY_METHODS = ("dtif", "dense_loop", "sj", "sj_m")


@dataclass
class Bundle:
    """What one configuration times: dtif's network, SpikingJelly's (if any), the input."""

    net: common.Network
    sj: spikingjelly_side.SJNets = field(default_factory=spikingjelly_side.SJNets)

    @property
    def snn(self) -> dtif.SpikingNetwork:
        return self.net.snn

    @property
    def x(self) -> torch.Tensor:
        return self.net.x


def build(cfg: common.Config, device: torch.device, with_sj: bool, calib_size: int = 64) -> Bundle:
    """The ANN, its dtif conversion, its SpikingJelly conversion (`with_sj`) and the input."""
    net = common.build_network(cfg, device, calib_size)
    b = Bundle(net)
    if with_sj:
        b.sj = spikingjelly_side.convert(net.ann, net.calib, device)
    return b


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
    b: Bundle, num_steps: int, tc: int = 1, multi: bool = True
) -> dict[str, Callable[[], object]]:
    """One callable per method; each runs one full simulation of `num_steps` steps.

    `tc` is dtif's time chunk, which the "dense_stack" limit copies; `multi` adds
    SpikingJelly's multi-step mode.
    """
    snn, ann, x = b.snn, b.snn.ann, b.x

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

    return {
        "dtif": dtif_rec,
        "dtif_norec": dtif_norec,
        "dense_loop": dense_loop,
        "dense_stack": dense_stack,
        **spikingjelly_side.runners(b.sj, x, num_steps, multi),
    }


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


# ----------------------------------------------------------------------------- memory


def measure_memory(
    cfg: common.Config, method: str, num_steps: int, device: str, threads: int, repeats: int = 1
) -> dict[str, Any]:
    """Peak memory of one run, in fresh subprocesses; the median of `repeats` for dtif.

    The heap layout, and so the peak, varies a little from process to process.
    """
    runs = []
    for _ in range(repeats if method == "dtif" else 1):
        cmd = [
            sys.executable, __file__, json.dumps(cfg.__dict__), method, str(num_steps),
            device, str(threads),
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


def peak_of(run: Callable[[], object], device: torch.device) -> dict[str, Any]:
    """The memory that one call of `run` adds at its peak, in MB.

    On CUDA the allocator's peak over what was allocated before. On CPU the rise of the
    resident set over its level before the run (the high-water mark reset through
    /proc/self/clear_refs), else the rise of ru_maxrss.
    """
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
        return {
            "how": "cuda max_memory_allocated - allocated before",
            "peak_mb": (peak - base) / 2**20,
        }
    rss0 = _status_kb("VmRSS")
    if rss0 is not None and _reset_hwm():
        run()
        hwm = _status_kb("VmHWM") or rss0
        return {
            "how": "VmHWM - VmRSS before",
            "peak_mb": (hwm - rss0) / 1024,
            "rss_peak_mb": hwm / 1024,
        }
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # the whole child's mark
    run()
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "how": "ru_maxrss rise",
        "peak_mb": (after - before) / 1024,
        "rss_peak_mb": after / 1024,
    }


def memory_child(config: str, method: str, num_steps: int, device_name: str, threads: int) -> None:
    """In a fresh process: build one configuration, run one method once, print its peak.

    Warm-up with T = 1 (lazy imports, dtif's fan-out profile), give the free heap back to
    the OS, reset the high-water mark, run T steps: peak = high-water mark - RSS before.
    """
    fields = json.loads(config)
    cfg = common.Config(**{**fields, "input_shape": tuple(fields["input_shape"])})
    device = torch.device(device_name)
    common.set_threads(threads)
    dtif.keep_freed_memory()  # as in the parent, so that every method runs with it
    b = build(cfg, device, with_sj=method.startswith("sj"), calib_size=8)
    if method not in runners(b, 1):
        print(json.dumps({"error": b.sj.error or "method unavailable"}))
        return
    runners(b, 1)[method]()
    tc = auto_time_chunk(b.snn, b.x, num_steps) if method == "dense_stack" else 1
    print(json.dumps(peak_of(runners(b, num_steps, tc)[method], device)))


if __name__ == "__main__":
    cfg_json, method_name, steps, dev, n_threads = sys.argv[1:6]
    memory_child(cfg_json, method_name, int(steps), dev, int(n_threads))
