"""QCFS activation (Bu et al., ICLR 2022): a ReLU quantized to ``levels`` steps of a learnable scale.

``qcfs(z) = lambda / L * clip(floor(z * L / lambda + 1/2), 0, L)``. An IF neuron with threshold
lambda and initial potential lambda / 2 reproduces it after L steps for a constant input, so a
network trained with it converts with little error at small T.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Literal, get_args

import torch
from torch import Tensor, nn

from dtif.errors import InputError

__all__ = [
    "ACTIVATIONS",
    "DEFAULT_QCFS_SCALE",
    "QCFS",
    "Activation",
    "activation_factory",
    "check_levels",
    "qcfs",
    "qcfs_modules",
    "quantized_to",
    "swap_relu",
]

Activation = Literal["relu", "qcfs"]
ACTIVATIONS: tuple[Activation, ...] = get_args(Activation)
#: Initial lambda of a QCFS layer built from scratch (the QCFS paper's initial threshold).
DEFAULT_QCFS_SCALE = 8.0


def check_levels(levels: object) -> int:
    """``levels`` if it is an int >= 1.

    Raises:
        InputError: it is not.
    """
    if isinstance(levels, bool) or not isinstance(levels, int) or levels < 1:
        raise InputError(f"QCFS levels must be an int >= 1 (e.g. 4 or 8), got {levels!r}")
    return levels


def _check_scale(scale: object) -> float:
    ok = isinstance(scale, (int, float)) and not isinstance(scale, bool)
    if not ok or not math.isfinite(float(scale)) or float(scale) <= 0:  # type: ignore[arg-type]
        raise InputError(f"QCFS scale (lambda) must be a finite number > 0, got {scale!r}")
    return float(scale)  # type: ignore[arg-type]


def qcfs(z: Tensor, scale: Tensor, levels: int) -> Tensor:
    """``scale / levels * clip(floor(z * levels / scale + 1/2), 0, levels)``.

    The floor passes its gradient straight through, so the gradient with respect to ``z`` is 1
    where ``0 <= z <= scale`` and 0 elsewhere; ``scale`` gets its gradient through the division
    and the product (as in the QCFS paper's code).

    Args:
        z: the pre-activation, any shape.
        scale: lambda, a scalar tensor (> 0).
        levels: L, the number of quantization steps.

    Returns:
        The quantized activation, the shape of ``z``.
    """
    x = torch.clamp(z / scale, 0.0, 1.0) * levels + 0.5
    x = x + (torch.floor(x) - x).detach()  # floor forward, identity backward
    return x * (scale / levels)


class QCFS(nn.Module):
    """Quantization-clip-floor-shift activation with a learnable per-layer lambda (``scale``).

    Args:
        levels: L, the number of quantization steps (>= 1).
        init_scale: the initial lambda (> 0).

    Raises:
        InputError: ``levels`` or ``init_scale`` is out of range.
    """

    def __init__(self, levels: int, init_scale: float = DEFAULT_QCFS_SCALE) -> None:
        super().__init__()
        self.levels = check_levels(levels)
        self.scale = nn.Parameter(torch.tensor(_check_scale(init_scale)))

    def forward(self, z: Tensor) -> Tensor:
        """Map ``z`` to the quantized activation (same shape)."""
        return qcfs(z, self.scale, self.levels)

    def extra_repr(self) -> str:
        return f"levels={self.levels}, scale={self.scale.item():.4g}"


def activation_factory(activation: str, levels: int | None) -> Callable[[], nn.Module]:
    """A function that builds one activation module of the model zoo.

    Args:
        activation: ``"relu"`` or ``"qcfs"``.
        levels: QCFS levels (required for ``"qcfs"``, must be ``None`` for ``"relu"``).

    Raises:
        InputError: an unknown activation, or ``levels`` missing or out of range.
    """
    if activation not in ACTIVATIONS:
        raise InputError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
    if activation == "relu":
        if levels is not None:
            raise InputError(f"levels={levels!r} is for activation='qcfs'; a ReLU has no levels")
        return nn.ReLU
    if levels is None:
        raise InputError("activation='qcfs' needs levels (e.g. levels=8)")
    check_levels(levels)
    return lambda: QCFS(levels)


def qcfs_modules(model: nn.Module) -> dict[str, QCFS]:
    """The QCFS modules of ``model`` by qualified name, in module order."""
    return {name: m for name, m in model.named_modules() if isinstance(m, QCFS)}


@contextmanager
def quantized_to(model: nn.Module, levels: int) -> Iterator[None]:
    """Inside the block, every QCFS module of ``model`` quantizes to ``levels`` steps.

    Each module's own levels come back when the block ends, also on an exception. An IF
    network converted from ``model`` computes about this quantization after ``levels`` steps,
    so it tells how accurate the SNN can be at small T.

    Raises:
        InputError: ``levels`` is not an int >= 1.
    """
    check_levels(levels)
    found = list({id(m): m for m in model.modules() if isinstance(m, QCFS)}.values())
    saved = [m.levels for m in found]
    try:
        for m in found:
            m.levels = levels
        yield
    finally:
        for m, kept in zip(found, saved):
            m.levels = kept


def swap_relu(model: nn.Module, levels: int, scales: dict[str, float] | float) -> list[str]:
    """Replace every ``nn.ReLU`` submodule of ``model`` by a QCFS, in place.

    Only ReLU *modules* are swapped: functional calls (``F.relu``, ``torch.relu``,
    ``x.relu()``, ``x.clamp(min=0)``) stay ReLUs. A ReLU module used at several places becomes
    one QCFS with one lambda.

    Args:
        model: the network; changed in place.
        levels: QCFS levels.
        scales: the initial lambda of each ReLU by module name, or one value for all.

    Returns:
        The names of the swapped modules.

    Raises:
        InputError: ``levels`` or a scale is out of range, a named ReLU has no scale, or the
            model has no ``nn.ReLU`` module.
    """
    check_levels(levels)
    found = model.named_modules(remove_duplicate=False)
    names = [name for name, m in found if isinstance(m, nn.ReLU) and name]
    if not names:
        raise InputError(
            f"{type(model).__name__} has no nn.ReLU submodule to swap for QCFS; only ReLU "
            "modules are swapped (not F.relu calls): use nn.ReLU modules in the model"
        )
    if isinstance(scales, dict):
        missing = [n for n in names if n not in scales]
        if missing:
            raise InputError(f"no QCFS scale given for ReLU module(s) {missing}")
    device = next((p.device for p in model.parameters()), None)
    made: dict[int, QCFS] = {}  # one QCFS per ReLU object, shared where the ReLU was
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        relu = getattr(parent, child)
        if id(relu) not in made:
            act = QCFS(levels, scales[name] if isinstance(scales, dict) else scales)
            made[id(relu)] = act if device is None else act.to(device)
        setattr(parent, child, made[id(relu)])
    return names
