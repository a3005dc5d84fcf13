"""The import graph of src/dtif runs one way: each package imports only the packages below it.

Every import counts, function-level and `if TYPE_CHECKING:` ones included. The layers, from
the ground up, are the README's "Layout" section.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "dtif"

LAYERS: list[set[str]] = [
    {"errors", "version"},
    {"io", "data", "models", "neurons"},
    {"nn"},
    {"metrics"},
    {"sim"},
    {"convert"},
    {"calibrate"},
    {"methods"},
    {"export", "checkpoint"},
    {"train", "report"},
    {"cli"},
    {"__main__", "__init__"},
]
LEVEL = {unit: i for i, layer in enumerate(LAYERS) for unit in layer}


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def unit(module: str) -> str:
    """The layer unit of a dtif module: its first name under dtif, or "__init__" for dtif."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def imports(path: Path) -> set[str]:
    """Every dtif module that `path` imports, anywhere in the file."""
    found = set()
    package = (
        module_name(path) if path.name == "__init__.py" else module_name(path).rsplit(".", 1)[0]
    )
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "dtif"}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + [base]
                ).strip(".")
            if base.split(".")[0] != "dtif":
                continue
            found.add(base)
            found |= {f"{base}.{a.name}" for a in node.names}  # `from dtif.x import module`
    known = {module_name(p) for p in SRC.rglob("*.py")}
    return {m for m in found if m in known}


def graph() -> dict[str, set[str]]:
    return {module_name(p): imports(p) for p in SRC.rglob("*.py")}


def test_every_unit_has_a_layer() -> None:
    units = {unit(m) for m in graph()}
    assert units <= set(LEVEL), f"add {sorted(units - set(LEVEL))} to LAYERS"


def test_no_package_imports_upward() -> None:
    upward = [
        f"{m} -> {t}"
        for m, targets in graph().items()
        for t in targets
        if unit(t) != unit(m) and LEVEL[unit(t)] >= LEVEL[unit(m)]
    ]
    assert not upward, "imports that do not run downward:\n" + "\n".join(sorted(upward))


def test_no_import_cycles() -> None:
    g = graph()
    state: dict[str, int] = {}
    cycles: list[str] = []

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for t in sorted(g[m]):
            if t == m:
                continue
            if state.get(t) == 1:
                cycles.append(" -> ".join([*path[path.index(t) :], t]))
            elif t not in state:
                visit(t, [*path, t])
        state[m] = 2

    for m in sorted(g):
        if m not in state:
            visit(m, [m])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)
