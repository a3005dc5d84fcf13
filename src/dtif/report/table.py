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
    speed-up and energy ratio against if-max at L_1, and SOPs per image at L_1.
    """
    steps = report_steps(int(results["num_steps"]))
    head = ["method", *[f"T={t}" for t in steps], "L_1", "L_0.1", "speedup", "E ratio", "SOP@L_1"]
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
            ]
        )
    return rows


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
