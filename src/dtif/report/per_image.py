"""Per-image records of a comparison run, and the paired bootstrap of two of its methods.

`compare_methods(..., per_image=True)` keeps, for each method it evaluates, whether each test
image is right at each step (`<out>/per_image/<method>.pt`); `paired_report` reads two of
them and compares the methods' latencies on the same images (`dtif.paired_latency`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

from dtif.errors import InputError
from dtif.io import atomic_torch_save
from dtif.metrics.bootstrap import accuracy_gap, paired_latency
from dtif.sim.evaluate import Evaluation

FOLDER = "per_image"


def record_path(out_dir: Path, name: str) -> Path:
    """Where the per-image record of method `name` goes (a file name safe on every system)."""
    return out_dir / FOLDER / (re.sub(r"[^A-Za-z0-9._-]", "_", name) + ".pt")


def save_record(out_dir: Path, name: str, ev: Evaluation) -> Path:
    """Write the per-image record of one evaluated method (atomically)."""
    if ev.image_correct is None or ev.image_ann_correct is None:
        raise InputError(f"{name}: no per-image records; evaluate with per_image=True")
    path = record_path(out_dir, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "method": name,
        "accuracy": torch.tensor(ev.accuracy, dtype=torch.float64),
        "correct": ev.image_correct,
        "ann_correct": ev.image_ann_correct,
    }
    return atomic_torch_save(record, path)


def load_record(out_dir: Path, name: str) -> dict[str, Any]:
    """The per-image record of method `name` in a comparison folder."""
    path = record_path(out_dir, name)
    if not path.exists():
        raise InputError(
            f"{path} does not exist: run `dtif compare ... --out {out_dir} --per-image` with "
            f"{name} in --methods (methods reused by --resume keep only the records they had)"
        )
    record = torch.load(path, weights_only=True)
    if record.get("method") != name:
        raise InputError(f"{path} holds the record of {record.get('method')!r}, not {name!r}")
    return record


def paired_report(
    out_dir: Path,
    a: str,
    b: str,
    *,
    delta_points: float = 1.0,
    resamples: int = 2000,
    seed: int = 0,
) -> dict[str, Any]:
    """Paired bootstrap of methods `a` and `b` of one comparison folder, as a JSON-ready dict.

    Raises:
        InputError: a record is missing, or the two were measured on other images.
    """
    ra, rb = load_record(out_dir, a), load_record(out_dir, b)
    if ra["correct"].shape != rb["correct"].shape or not torch.equal(
        ra["ann_correct"], rb["ann_correct"]
    ):
        raise InputError(
            f"{a} and {b} in {out_dir} were measured on different images or steps "
            f"({tuple(ra['correct'].shape)} against {tuple(rb['correct'].shape)}): run both "
            "in one `dtif compare --per-image` call"
        )
    lat = paired_latency(
        ra["correct"],
        rb["correct"],
        ra["ann_correct"],
        delta_points=delta_points,
        resamples=resamples,
        seed=seed,
    )
    gaps = {
        name: accuracy_gap(r["correct"], r["ann_correct"], resamples=resamples, seed=seed)
        for name, r in ((a, ra), (b, rb))
    }
    return {
        "a": a,
        "b": b,
        "latency": lat.to_dict(),
        "gap_at_T_max": {name: g.to_dict() for name, g in gaps.items()},
    }


def format_report(report: dict[str, Any]) -> str:
    """A few lines for the terminal."""
    lat = report["latency"]

    def show(value: int | None) -> str:
        return "not reached" if value is None else str(value)

    lines = [
        f"L_{lat['delta_points']:g}: {report['a']} {show(lat['latency_a'])}, "
        f"{report['b']} {show(lat['latency_b'])} ({lat['num_images']} images, "
        f"{lat['resamples']} paired resamples)",
        f"  {round(100 * lat['level'])}% interval of the difference: "
        f"[{lat['diff_low']:+.0f}, {lat['diff_high']:+.0f}] steps; "
        f"{report['a']} lower in {lat['prob_a_lower']:.0%} of resamples, tied in "
        f"{lat['prob_tie']:.0%}",
    ]
    for name, gap in report["gap_at_T_max"].items():
        lines.append(
            f"  {name}: a(T_max) - A = {gap['gap']:+.2f} points, interval "
            f"[{gap['low']:+.2f}, {gap['high']:+.2f}]"
        )
    return "\n".join(lines)
