"""`compare_methods`: convert one ANN with several methods and measure each on one test set.

Results are written after every method (atomically), so an interrupted run keeps what it
finished and `resume=True` picks up from there.

Under torchrun (`distributed=True`) every rank converts the same ANN on the same calibration
images and adopts rank 0's network (`dtif.distributed.broadcast_snn`), evaluates its shard
of the test set, and the totals are summed over ranks before the metrics are computed: the
results equal a single-process run's exactly. Rank 0 alone logs and writes files.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import time
from collections.abc import Callable, Collection, Iterable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dtif.convert.options import MaxPoolPolicy, to_dict
from dtif.errors import InputError
from dtif.io import atomic_write_text, ensure_writable_dir
from dtif.methods import METHODS, Method
from dtif.metrics.energy import EnergyModel
from dtif.report.per_image import save_record
from dtif.report.plots import plot_results
from dtif.sim import distributed as dist
from dtif.sim.early_exit import AutoExit, EarlyExit, ExitSpec
from dtif.sim.evaluate import Evaluation, evaluate
from dtif.sim.exit_calibration import calibrate_exit
from dtif.sim.network import SpikingNetwork

REFERENCE = "if-max"
RESULTS = "results.json"
PREVIOUS = "results.previous.json"
_CALIBRATION = (("search", "calibration"), ("bias", "bias_calibration"))
"""Keys of `results.json`'s per-method `calibration`, and the network meta they copy."""


def _silent(line: str) -> None:
    """A `log` that drops its line (ranks other than 0)."""


def _entry(method: Method, ev: Evaluation) -> dict[str, Any]:
    d = ev.to_dict()
    d["method"] = method.to_dict()
    return d


def _early_exit(
    snn: SpikingNetwork,
    calib: torch.Tensor,
    test_loader: Iterable[Any],
    num_steps: int,
    spec: ExitSpec,
    energy: EnergyModel,
    progress: bool,
    reduce: Any,
    seconds_fixed: float,
) -> dict[str, Any]:
    """The `early_exit` block of one method: calibrate the policy (on `calib` only, when
    `spec` is `AutoExit`), evaluate with it, and time it against the fixed-T run."""
    calibration: dict[str, Any] | None = None
    start = time.perf_counter()
    if isinstance(spec, AutoExit):
        cal = calibrate_exit(snn, calib, num_steps, spec.target_loss)
        policy: EarlyExit = dist.broadcast_object(cal.policy)  # rank 0's, on every rank
        calibration = cal.to_dict()
    else:
        policy = spec
    seconds_calibration = time.perf_counter() - start
    start = time.perf_counter()
    ev = evaluate(
        snn, test_loader, num_steps, energy=energy, progress=progress, reduce=reduce, exit=policy
    )
    seconds = time.perf_counter() - start
    return {
        **ev.exit_stats(),
        "seconds": seconds,
        "seconds_fixed_T": seconds_fixed,
        "seconds_calibration": seconds_calibration,
        "policy": policy.to_dict(),
        "calibration": calibration,
        "exit_steps": ev.exit_steps,
    }


def exit_line(name: str, block: dict[str, Any], num_steps: int) -> str:
    """One line on a method's early exit."""
    p = block["policy"]
    return (
        f"early exit {name}: {100 * block['accuracy']:.2f}% at a mean of "
        f"{block['mean_step']:.1f} steps (median {block['median_step']}, p95 "
        f"{block['p95_step']}), {block['synops']:.3g} SOPs and {block['energy_pj'] / 1e6:.3g} uJ "
        f"per image; {block['seconds']:.1f} s against {block['seconds_fixed_T']:.1f} s at "
        f"T={num_steps} ({p['rule']} >= {p['threshold']:.3g} for {p['k']} steps)"
    )


def summarize(
    entries: dict[str, dict[str, Any]], num_steps: int, num_test: int, meta: dict[str, Any]
) -> dict[str, Any]:
    """The results dict: per-method entries plus speed-up and energy ratio against if-max.

    Speed-up = L_1(if-max) / L_1(method); energy ratio = E(L_1 method) / E(L_1 if-max), each
    at its own latency. Either is None where a latency is not reached by T_max.
    """
    first = next(iter(entries.values()))
    ref = entries.get(REFERENCE)
    speedup: dict[str, float | None] = {}
    ratio: dict[str, float | None] = {}
    at_least: dict[str, float | None] = {}
    for name, e in entries.items():
        l_ref = None if ref is None else ref["latency"]["1.0"]
        l_m = e["latency"]["1.0"]
        at_least[name] = None
        if ref is None or l_ref is None or l_m is None:
            speedup[name] = ratio[name] = None
            if ref is not None and l_ref is None and l_m is not None:
                at_least[name] = (num_steps + 1) / l_m  # if-max would need more than T_max
            continue
        speedup[name] = l_ref / l_m
        ratio[name] = e["energy_pj"][l_m - 1] / ref["energy_pj"][l_ref - 1]
    return {
        "ann_accuracy": first["ann_accuracy"],
        "ann_energy_pj": first["ann_energy_pj"],
        "ann_macs": first["ann_macs"],
        "num_steps": num_steps,
        "num_test": num_test,
        "reference": REFERENCE,
        "methods": entries,
        "speedup": speedup,
        "energy_ratio": ratio,
        "speedup_at_least": at_least,
        "meta": meta,
    }


def results_csv(results: dict[str, Any]) -> str:
    """Long-format CSV: one row per method and step."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["method", "T", "accuracy", "synops", "energy_pj"])
    for name, m in results["methods"].items():
        for t, (a, s, e) in enumerate(zip(m["accuracy"], m["synops"], m["energy_pj"]), 1):
            w.writerow([name, t, f"{a:.6f}", f"{s:.6g}", f"{e:.6g}"])
    return buf.getvalue()


def _differences(old: dict[str, Any], new: dict[str, Any]) -> str:
    """`key: old -> new` for each run setting that differs."""
    keys = sorted(set(old) | set(new))
    return "; ".join(
        f"{k}: {old.get(k, 'absent')!r} -> {new.get(k, 'absent')!r}"
        for k in keys
        if old.get(k) != new.get(k)
    )


def _load_previous(
    out_dir: Path, meta: dict[str, Any], resume: bool, log: Callable[[str], None]
) -> dict[str, dict[str, Any]]:
    """The finished methods of out_dir/results.json when resuming a run with the same settings.

    Any other results.json there is also kept as results.previous.json (replacing an older
    one), with a line that says why, so that a new run never overwrites finished work unseen;
    results.json itself stays as it is until the first method of this run finishes.
    """
    path = out_dir / RESULTS
    if not path.is_file():
        return {}
    try:
        old = json.loads(path.read_text())
    except json.JSONDecodeError:
        old = None
    old_meta = old.get("meta") if isinstance(old, dict) else None
    run = old_meta.get("run") if isinstance(old_meta, dict) else None
    if resume and isinstance(old, dict) and run is not None and run == meta.get("run"):
        return dict(old.get("methods", {}))
    if not resume:
        why = "not resumed (--resume reuses the finished methods of a run with the same settings)"
    elif run is None:
        why = "it holds no run settings to resume from"
    else:
        why = f"its run settings differ ({_differences(run, meta.get('run') or {})})"
    kept = path.with_name(PREVIOUS)
    try:  # a second name for the same file: no space needed, and results.json stays as it is
        kept.unlink(missing_ok=True)
        try:
            os.link(path, kept)
        except OSError:  # a file system without hard links
            shutil.copyfile(path, kept)
    except OSError as e:
        log(f"{path}: {why}; no copy could be kept ({e}), and this run starts afresh")
        return {}
    log(f"{path}: {why}; a copy is kept as {kept.name}, and this run starts afresh")
    return {}


def compare_methods(
    model: nn.Module,
    calib: torch.Tensor,
    test_loader: Iterable[Any],
    methods: list[Method],
    num_steps: int,
    num_test: int,
    out_dir: Path | None = None,
    *,
    resume: bool = False,
    maxpool: MaxPoolPolicy = "error",
    energy: EnergyModel | None = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
    meta: dict[str, Any] | None = None,
    distributed: bool = False,
    early_exit: ExitSpec | None = None,
    exit_methods: Collection[str] | None = None,
    with_reference: bool = True,
    per_image: bool = False,
) -> dict[str, Any]:
    """Convert `model` with each method, evaluate on `test_loader`, and write the results.

    Args:
        model: the trained ANN.
        calib: calibration images from the training split.
        test_loader: (input, label) batches of the test set.
        methods: the methods; if-max (the reference) is added first when missing.
        num_steps: T_max.
        num_test: the number of test images (for the report).
        out_dir: where results.json (after each method), results.csv and the plots go.
        resume: reuse methods already in out_dir/results.json from the same run settings.
            A results.json that is not resumed is kept as results.previous.json.
        maxpool: the max-pool policy.
        energy: the energy model.
        progress: show progress bars.
        log: where progress lines go.
        meta: run settings stored with the results; `meta["run"]` must match to resume.
        distributed: every rank of a torch.distributed group calls this with its
            `dtif.distributed.shard` of the test set (and the same other arguments); the
            ranks agree on each network, sum their totals, and only rank 0 logs and writes.
        early_exit: also evaluate with early exit: a policy (`EarlyExit`), or `AutoExit` to
            calibrate one per method on `calib` (never on the test set). Each method's entry
            then has an `early_exit` block (accuracy, mean/median/p95 exit step, SOPs and
            energy per image at exit, its wall time and the fixed-T run's, the policy).
        exit_methods: the methods early exit applies to (default: all).
        with_reference: run if-max (the reference of the speed-up and energy ratio) when
            `methods` lacks it; False leaves those columns empty.
        per_image: keep whether each test image is right at each step, for each method
            evaluated in this call, in out_dir/per_image/ (`dtif.report.per_image`; for
            `dtif compare ... --per-image` and `dtif paired`). Not with `distributed`.

    Returns:
        The results dict (the shape of results.json), on every rank.

    Raises:
        InputError: `per_image` with `distributed` or without `out_dir`.
    """
    if per_image and (distributed or out_dir is None):
        raise InputError(
            "per-image records need one process and an output folder: drop per_image "
            "(--per-image), or run without torchrun and with out_dir (--out)"
        )
    reduce = dist.all_reduce_totals if distributed else None
    if not dist.is_main():
        out_dir, progress, log = None, False, _silent

    energy = energy or EnergyModel()
    meta = dict(meta or {})
    meta.setdefault("run", {"num_steps": num_steps, "num_test": num_test})
    meta["energy"] = {"e_ac_pj": energy.e_ac_pj, "e_mac_pj": energy.e_mac_pj}
    if with_reference and all(m.name != REFERENCE for m in methods):
        methods = [METHODS[REFERENCE], *methods]
    entries: dict[str, dict[str, Any]] = {}
    reused: list[str] = []
    if out_dir is not None:
        ensure_writable_dir(out_dir)  # fail now, not after the first method
    previous = {} if out_dir is None else _load_previous(out_dir, meta, resume, log)
    if distributed:
        previous = dist.broadcast_object(previous)  # every rank skips the same methods
    for i, method in enumerate(methods, 1):
        old = previous.get(method.name)
        if old is not None and old.get("method") == method.to_dict():
            log(f"[{i}/{len(methods)}] {method.name}: reused from {out_dir / RESULTS}")
            entries[method.name] = old
            reused.append(method.name)
            continue
        log(f"[{i}/{len(methods)}] {method.name}: {method.description}")
        built = time.perf_counter()
        snn = method.build(
            model, calib, maxpool, target_steps=max(1, num_steps // 8), progress=progress
        )
        if distributed:
            dist.broadcast_snn(snn)
        start = time.perf_counter()
        seconds_build = start - built
        ev = evaluate(
            snn,
            test_loader,
            num_steps,
            energy=energy,
            progress=progress,
            reduce=reduce,
            per_image=per_image,
        )
        seconds_fixed = time.perf_counter() - start
        entries[method.name] = _entry(method, ev)
        entries[method.name]["neuron_used"] = to_dict(snn.meta["neuron"])  # per-layer values
        chosen = {k: snn.meta[m] for k, m in _CALIBRATION if m in snn.meta}
        if chosen:  # what the calibration chose on, and its losses (JSON-ready)
            entries[method.name]["calibration"] = chosen
        if per_image and out_dir is not None:
            save_record(out_dir, method.name, ev)
        l1 = ev.latency(1.0)
        log(
            f"    accuracy at T={num_steps}: {100 * ev.accuracy[-1]:.2f}% "
            f"(ANN {100 * ev.ann_accuracy:.2f}%), L_1 = {l1 if l1 is not None else 'not reached'} "
            f"(converted in {seconds_build:.0f} s, simulated in {seconds_fixed:.0f} s)"
        )
        if early_exit is not None and (exit_methods is None or method.name in exit_methods):
            block = _early_exit(
                snn, calib, test_loader, num_steps, early_exit, energy, progress, reduce,
                seconds_fixed,
            )  # fmt: skip
            entries[method.name]["early_exit"] = block
            log(f"    {exit_line(method.name, block, num_steps)}")
        if out_dir is not None:
            partial = summarize(entries, num_steps, num_test, {**meta, "complete": False})
            atomic_write_text(out_dir / RESULTS, json.dumps(partial, indent=1))
    results = summarize(entries, num_steps, num_test, {**meta, "complete": True})
    if out_dir is not None:
        atomic_write_text(out_dir / RESULTS, json.dumps(results, indent=1))
        atomic_write_text(out_dir / "results.csv", results_csv(results))
        for p in plot_results(results, out_dir):
            log(f"wrote {p}")
    results["reused"] = reused  # not in the files: which methods this call did not run
    return results
