"""The comparison table printed by `dtif compare`."""

from __future__ import annotations

from typing import Any


def report_steps(num_steps: int) -> list[int]:
    """Powers of two up to num_steps, and num_steps itself."""
    steps = [1 << k for k in range(num_steps.bit_length()) if (1 << k) <= num_steps]
    return steps if steps[-1] == num_steps else [*steps, num_steps]


def _fmt(value: float | None, spec: str, none: str = "n/r") -> str:
    return none if value is None else format(value, spec)


def _speedup(results: dict[str, Any], name: str) -> str:
    value = results["speedup"].get(name)
    if value is not None:
        return f"{value:.2f}"
    bound = results.get("speedup_at_least", {}).get(name)
    return f">{bound:.2f}" if bound is not None else "-"


def _title(results: dict[str, Any]) -> str:
    ann = 100 * results["ann_accuracy"]
    return (
        f"ANN accuracy {ann:.2f}% on {results['num_test']} test images; T_max = "
        f"{results['num_steps']}; accuracy in %, latency in steps (n/r = not reached); "
        "speed-up and energy ratio against if-max at L_1"
    )


def table_rows(results: dict[str, Any]) -> list[list[str]]:
    """The header and one row per method, as strings.

    Columns: accuracy (%) at powers of two, L_1 and L_0.1 (n/r: not reached by T_max), the
    speed-up and energy ratio against if-max at L_1, and SOPs per image at L_1. With early
    exit (a method has an `early_exit` block): its accuracy, mean exit step, SOPs per image at
    exit and wall time as a fraction of the fixed-T run's ("-" for methods without it).
    """
    steps = report_steps(int(results["num_steps"]))
    head = ["method", *[f"T={t}" for t in steps], "L_1", "L_0.1", "speedup", "E ratio", "SOP@L_1"]
    exits = any("early_exit" in m for m in results["methods"].values())
    if exits:
        head += EXIT_COLUMNS
    rows = [head]
    for name, m in results["methods"].items():
        acc = m["accuracy"]
        l1, l01 = m["latency"]["1.0"], m["latency"]["0.1"]
        sop = None if l1 is None else m["synops"][l1 - 1]
        rows.append(
            [
                name,
                *[f"{100 * acc[t - 1]:.1f}" for t in steps],
                _fmt(l1, "d"),
                _fmt(l01, "d"),
                _speedup(results, name),
                _fmt(results["energy_ratio"].get(name), ".2f", "-"),
                _fmt(sop, ".3g", "-"),
                *(_exit_cells(m.get("early_exit")) if exits else []),
            ]
        )
    return rows


EXIT_COLUMNS = ["exit acc", "exit T", "SOP@exit", "time/T"]


def _exit_cells(block: dict[str, Any] | None) -> list[str]:
    if block is None:
        return ["-"] * len(EXIT_COLUMNS)
    return [
        f"{100 * block['accuracy']:.1f}",
        f"{block['mean_step']:.1f}",
        f"{block['synops']:.3g}",
        f"{block['seconds'] / max(block['seconds_fixed_T'], 1e-9):.2f}",
    ]


def format_table(results: dict[str, Any]) -> str:
    """A plain-text table of a results dict (the shape of results.json)."""
    rows = table_rows(results)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths)))
        for r in rows
    ]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join([_title(results), *lines])


def markdown_table(results: dict[str, Any]) -> str:
    """The same table in Markdown, under its title line."""
    rows = table_rows(results)
    out = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    out += ["| " + " | ".join(r) + " |" for r in rows[1:]]
    return "\n".join([_title(results), "", *out])


PAPER_SPEEDUP = 7.14
PAPER_ENERGY_RATIO = 0.44


def verdict(results: dict[str, Any], name: str = "dtif-auto") -> str:
    """A short verdict: `name`'s speed-up and energy ratio against if-max at L_1, next to the
    paper's 7.14x and 0.44x (Wu et al. 2023), and its early exit when measured."""
    m = results["methods"].get(name)
    if m is None:
        return f"verdict: {name} was not run"
    ref = results["methods"].get(results["reference"], {})
    l1, l_ref = m["latency"]["1.0"], ref.get("latency", {}).get("1.0")
    speedup, ratio = results["speedup"].get(name), results["energy_ratio"].get(name)
    if speedup is None or ratio is None:
        reached = "not reached" if l_ref is None else str(l_ref)
        head = (
            f"verdict: {name} L_1 = {_fmt(l1, 'd')}, {results['reference']} L_1 {reached} by "
            f"T_max = {results['num_steps']}: speed-up {_speedup(results, name)} and energy "
            f"ratio not measurable (paper: {PAPER_SPEEDUP}x and {PAPER_ENERGY_RATIO}x)"
        )
    else:
        head = (
            f"verdict: {name} reaches 1 point of the ANN in {l1} steps against "
            f"{l_ref} for {results['reference']}: {speedup:.2f}x faster (paper {PAPER_SPEEDUP}x, "
            f"{'met' if speedup >= PAPER_SPEEDUP else 'missed'}) at {ratio:.2f}x the energy "
            f"(paper {PAPER_ENERGY_RATIO}x, {'met' if ratio <= PAPER_ENERGY_RATIO else 'missed'})"
        )
    block = m.get("early_exit")
    if block is None:
        return head
    ann = 100 * results["ann_accuracy"]
    return (
        f"{head}\n         with early exit: {100 * block['accuracy']:.2f}% (ANN {ann:.2f}%) "
        f"after a mean of {block['mean_step']:.1f} steps, "
        f"{block['seconds'] / max(block['seconds_fixed_T'], 1e-9):.2f}x the wall time of "
        f"T = {results['num_steps']}"
    )
