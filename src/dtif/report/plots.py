"""Plots of a comparison: accuracy against T, and accuracy against energy.

Figures are made with `matplotlib.figure.Figure` directly, so the caller's matplotlib backend
and pyplot state are left alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from matplotlib.axes import Axes
from matplotlib.figure import Figure


def _finish(fig: Figure, ax: Axes, ann: float, title: str, path: Path) -> Path:
    ax.axhline(ann, color="k", ls="--", lw=1, label=f"ANN {ann:.1f}%")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    if len(ax.get_lines()) > 9:  # many methods: the legend beside the axes, not over the curves
        fig.set_size_inches(10, 4.5)
        ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.02, 0.5))
    else:
        ax.legend(fontsize=8)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path


def _exit_marker(ax: Axes, method: dict[str, Any], color: str, x_key: str) -> None:
    """A star at a method's early-exit accuracy: at its mean exit step, or its energy (uJ)."""
    block = method.get("early_exit")
    if block is None:
        return
    x = block[x_key] / 1e6 if x_key == "energy_pj" else block[x_key]
    ax.plot([x], [100 * block["accuracy"]], marker="*", ms=12, color=color, ls="none")


def _style(index: int) -> dict[str, Any]:
    """Ten colours, then the same ten dashed, dotted, dash-dotted: no two methods look alike."""
    return {"color": f"C{index % 10}", "ls": ("-", "--", ":", "-.")[index // 10 % 4]}


def plot_results(results: dict[str, Any], out_dir: Path) -> list[Path]:
    """Write accuracy_vs_steps.png and accuracy_vs_energy.png into `out_dir`.

    Returns:
        The paths written.
    """
    ann = 100 * results["ann_accuracy"]
    fig = Figure(figsize=(7, 4.5))
    ax = fig.add_subplot()
    for i, (name, m) in enumerate(results["methods"].items()):
        steps = range(1, len(m["accuracy"]) + 1)
        acc = [100 * a for a in m["accuracy"]]
        (line,) = ax.plot(steps, acc, label=name, lw=1.6, **_style(i))
        _exit_marker(ax, m, line.get_color(), "mean_step")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("time steps T")
    title = f"SNN accuracy against time steps ({results['num_test']} test images)"
    paths = [_finish(fig, ax, ann, title, out_dir / "accuracy_vs_steps.png")]

    fig = Figure(figsize=(7, 4.5))
    ax = fig.add_subplot()
    for i, (name, m) in enumerate(results["methods"].items()):
        energy_uj = [e / 1e6 for e in m["energy_pj"]]
        acc = [100 * a for a in m["accuracy"]]
        (line,) = ax.plot(energy_uj, acc, label=name, lw=1.6, **_style(i))
        _exit_marker(ax, m, line.get_color(), "energy_pj")
    ax.axvline(results["ann_energy_pj"] / 1e6, color="gray", ls=":", lw=1, label="ANN energy")
    ax.set_xscale("log")
    ax.set_xlabel("energy per image (uJ)")
    title = "SNN accuracy against energy (each point one T)"
    paths.append(_finish(fig, ax, ann, title, out_dir / "accuracy_vs_energy.png"))
    return paths
