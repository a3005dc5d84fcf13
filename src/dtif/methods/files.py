"""Methods by name or from a JSON/YAML spec file, and comma-separated method lists."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dtif.convert.options import from_dict
from dtif.errors import InputError
from dtif.methods.recipe import Method
from dtif.methods.table import METHODS
from dtif.neurons import NeuronParams
from dtif.neurons.dt_if_neuron import check_theta_input
from dtif.neurons.if_neuron import check_spread


def neuron_from_dict(spec: object, source: str) -> NeuronParams:
    """Neuron parameters from a mapping {"type": "IF" | "DTIF" (or the class name), fields}.

    Raises:
        InputError: not such a mapping, or bad fields; the message names `source`.
    """
    neuron: NeuronParams = from_dict(spec, "neuron", source)
    return neuron


def method_from_file(path: Path) -> Method:
    """A method from a JSON or YAML spec: {name, neuron: {type, ...}, norm: {type, ...}}.

    Raises:
        InputError: unreadable file, or bad fields.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"cannot read method spec {path}: {err}") from err
    if path.suffix in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError as err:
            raise InputError(
                f"{path}: reading YAML needs PyYAML (pip install pyyaml), or use JSON"
            ) from err
        try:
            spec = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise InputError(f"{path}: not valid YAML: {err}") from err
    else:
        try:
            spec = json.loads(text)
        except json.JSONDecodeError as err:
            raise InputError(f"{path}: not valid JSON: {err}") from err
    if not isinstance(spec, dict) or "neuron" not in spec:
        raise InputError(
            f"{path}: a method spec needs a 'neuron' mapping (and optionally 'norm', 'name')"
        )
    neuron = neuron_from_dict(spec["neuron"], str(path))
    norm = from_dict(spec.get("norm", {"type": "MaxNorm"}), "norm", str(path))
    name = str(spec.get("name", path.stem))
    return Method(
        name,
        neuron,
        norm,
        spec.get("description", f"from {path.name}"),
        bool(spec.get("auto", False)),
        _alpha_grid(spec.get("alpha_grid"), str(path)),
        _dynamic_steps_grid(spec.get("dynamic_steps_grid"), str(path)),
        _optional_count(spec, "bias_steps", str(path)),
        _optional_count(spec, "burst", str(path)),
        _spread_grid(spec.get("spread_grid"), str(path)),
        _theta_input_grid(spec.get("theta_input_grid"), str(path)),
        _flag(spec, "theta_input_last", str(path)),
        _optional_count(spec, "search_passes", str(path)) or 1,
        _flag(spec, "final_pass", str(path)),
    )


def _alpha_grid(value: object, source: str) -> tuple[float, ...] | None:
    if value is None:
        return None
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(v, int | float) and not isinstance(v, bool) and v >= 0 for v in value)
    ):
        raise InputError(f"{source}: alpha_grid must be a non-empty list of numbers >= 0")
    return tuple(float(v) for v in value)


def _dynamic_steps_grid(value: object, source: str) -> tuple[int, ...]:
    if value is None:
        return ()
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value)
    ):
        raise InputError(f"{source}: dynamic_steps_grid must be a non-empty list of integers >= 1")
    return tuple(value)


def _checked_list(
    value: object, source: str, key: str, what: str, check: Callable[[str, object, str], None]
) -> tuple[Any, ...]:
    """spec[key]: absent (()) or a non-empty list whose items pass `check`."""
    if value is None:
        return ()
    if not isinstance(value, list) or not value:
        raise InputError(f"{source}: {key} must be a non-empty list {what}")
    for v in value:
        check(f"{source}:", v, f"{key} value")
    return tuple(value)


def _spread_grid(value: object, source: str) -> tuple[float, ...]:
    grid = _checked_list(value, source, "spread_grid", "of numbers in [0, 1]", check_spread)
    return tuple(float(v) for v in grid)


def _theta_input_grid(value: object, source: str) -> tuple[str, ...]:
    return _checked_list(value, source, "theta_input_grid", 'such as ["mean"]', check_theta_input)


def _flag(spec: dict[str, object], key: str, source: str) -> bool:
    value = spec.get(key, False)
    if not isinstance(value, bool):
        raise InputError(f"{source}: {key} must be true or false, got {value!r}")
    return value


def _optional_count(spec: dict[str, object], key: str, source: str) -> int | None:
    """spec[key]: absent (None) or an integer >= 1 (`bias_steps`, `burst`, `search_passes`)."""
    value = spec.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(f"{source}: {key} must be an integer >= 1, got {value!r}")
    return value


def get_method(name: str) -> Method:
    """The method called `name`, or one read from a .json/.yaml spec file.

    Raises:
        InputError: an unknown name; the message lists the valid names.
    """
    if name in METHODS:
        return METHODS[name]
    path = Path(name)
    if path.suffix in (".json", ".yaml", ".yml"):
        if not path.is_file():
            raise InputError(f"method spec file {path} does not exist")
        return method_from_file(path)
    raise InputError(
        f"unknown method {name!r}; valid names: {', '.join(METHODS)} "
        "(or a .json/.yaml spec file; see `dtif compare --list-methods`)"
    )


def parse_methods(text: str) -> list[Method]:
    """Methods from a comma-separated list; duplicates are dropped."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise InputError("--methods is empty; give a comma-separated list of method names")
    seen: dict[str, Method] = {}
    for n in names:
        m = get_method(n)
        seen.setdefault(m.name, m)
    return list(seen.values())
