"""What the NIR export and import share: loading `nir`, refusals, the average-pool divisor."""

from __future__ import annotations

import dataclasses
import operator
import os
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from dtif.neurons import DTIFParams, IFParams, NeuronParams
from dtif.nn.neuron import SpikingNeuron

NIR_MISSING = "NIR export needs the `nir` package: pip install 'dtif[nir]'"
RTOL = 1e-6  # tolerance when matching a Scale node to the pattern that dtif writes

PathLike = str | os.PathLike[str]


def load_nir() -> Any:
    """The `nir` module.

    Raises:
        ImportError: it is not installed; the message says how to install it.
    """
    try:
        import nir
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(NIR_MISSING) from err
    return nir


class Refusal(Exception):
    """A node that cannot be translated; the message says why."""


def check_nir_neuron(mod: SpikingNeuron) -> None:
    """Raise Refusal unless the spiking layer `mod` is one `nir.IF` expresses exactly."""
    check_nir_if(mod.params)
    if mod.input_offset is not None:
        raise Refusal(
            "a spiking layer with an input offset for its first steps (bias calibration); NIR "
            "has no time-varying input. Convert without bias calibration to export"
        )


def check_nir_if(params: NeuronParams) -> None:
    """Raise Refusal unless `params` is an IF neuron that `nir.IF` expresses exactly.

    Both encodings write IF as `nir.IF` (reset to zero, one spike a step, potential 0 at start).
    """
    if params.signed:
        raise Refusal(SIGNED_REFUSAL)
    if isinstance(params, DTIFParams):
        raise Refusal(
            "DTIF neuron: its threshold follows the input current, and NIR has no primitive "
            "for it (a fixed-threshold nir.IF would change the dynamics). Convert with "
            "neuron=dtif.IF(reset='zero') to export"
        )
    if not isinstance(params, IFParams):
        raise Refusal(f"{type(params).__name__}: readers run only nir.IF")
    problems = []
    if params.reset != "zero":
        problems.append(
            f"reset={params.reset!r}: NIR's IF resets to v_reset=0 instead of subtracting the "
            "threshold; convert with dtif.IF(reset='zero')"
        )
    if params.burst != 1:
        problems.append(f"burst={params.burst}: NIR's IF emits at most one spike per step")
    if params.v0 != 0.0:
        problems.append(f"v0={params.v0}: NIR's IF starts at potential 0; use v0=0")
    if params.v0_spread != 0.0:
        problems.append(
            f"v0_spread={params.v0_spread}: NIR's IF starts every neuron at potential 0; "
            "use v0_spread=0"
        )
    default = IFParams()
    for f in dataclasses.fields(params):  # fields that later versions add
        value = getattr(params, f.name)
        if f.name not in ("reset", "burst", "v0", "v0_spread") and value != getattr(
            default, f.name
        ):
            problems.append(f"{f.name}={value!r}: not expressible as a nir.IF")
    if problems:
        raise Refusal("IF neuron with " + "; ".join(problems))


def pair(v: int | tuple[int, ...]) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[-1]))


def pool_divisor(pool: nn.AvgPool2d, in_hw: tuple[int, int]) -> torch.Tensor:
    """What AvgPool2d divides each output window's sum by, [H', W']."""
    k, s, p = pair(pool.kernel_size), pair(pool.stride or pool.kernel_size), pair(pool.padding)
    if pool.divisor_override:
        return torch.tensor(float(pool.divisor_override))
    ones = torch.ones(1, 1, *in_hw)
    counts = F.avg_pool2d(ones, k, s, p, pool.ceil_mode, True, divisor_override=1)[0, 0]
    if pool.count_include_pad or p == (0, 0):
        return torch.tensor(float(k[0] * k[1]))
    return counts


_CAT = "NIR has no concatenation node; export a network without torch.cat"
_MEAN = "NIR has no mean node; use an nn.AdaptiveAvgPool2d module in place of the mean"
_SCALE = "multiplying or dividing by a constant has no exporter; fold the constant into a layer"
# Ops that dtif converts but this exporter cannot express, with the reason.
NO_NIR_NODE: dict[Any, str] = {
    **dict.fromkeys((torch.cat, torch.concat, torch.concatenate), _CAT),
    **dict.fromkeys((torch.mean, "mean"), _MEAN),
    **dict.fromkeys(
        (operator.mul, torch.mul, torch.multiply, "mul", "multiply", operator.truediv),
        _SCALE,
    ),
    **dict.fromkeys((torch.div, torch.divide, torch.true_divide, "div", "divide"), _SCALE),
}

SIGNED_REFUSAL = (
    "signed neuron: its negative correction spikes (-1 events) have no NIR primitive; "
    "convert with signed=False to export"
)
