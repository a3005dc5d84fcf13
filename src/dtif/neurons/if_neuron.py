"""Integrate-and-fire (IF) neuron: the fixed-threshold baseline of ANN-to-SNN conversion."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from dtif.errors import InputError

ResetMode = Literal["subtract", "zero"]


@dataclass(frozen=True)
class IFParams:
    """Parameters of the IF neuron, in threshold units (theta = 1).

    Attributes:
        v0: initial potential V(0) = v0 * theta. 0 is Diehl's choice, 0.5 that of Bu et al.
        reset: "subtract" (V -= theta per spike) or "zero" (V = 0 after a spike).
        burst: most spikes emitted in one step (1 = binary spikes).
    """

    v0: float = 0.0
    reset: ResetMode = "subtract"
    burst: int = 1

    def __post_init__(self) -> None:
        if self.reset not in ("subtract", "zero"):
            raise InputError(f"IF reset must be 'subtract' or 'zero', got {self.reset!r}")
        if self.burst < 1:
            raise InputError(f"IF burst must be >= 1, got {self.burst}")


@dataclass
class IFState:
    """State of a layer of IF neurons.

    Attributes:
        v: membrane potential in threshold units, shape of the layer's input.
    """

    v: torch.Tensor


def if_initial_state(z: torch.Tensor, params: IFParams) -> IFState:
    """Initial state V(0) = v0 for an input current shaped like `z`."""
    return IFState(v=torch.full_like(z, params.v0))


def if_step(z: torch.Tensor, state: IFState, params: IFParams) -> tuple[torch.Tensor, IFState]:
    """One step of the IF neuron.

    V(t) = V(t-1) + z(t);  n(t) = clamp(floor(V(t)), 0, burst) spikes;
    reset by subtraction V(t) -= n(t), or to zero V(t) = 0 where n(t) > 0.

    Args:
        z: input current in threshold units, any shape.
        state: the potential V(t-1).
        params: neuron parameters.

    Returns:
        (spikes, new_state): spikes n(t) (0/1, or up to `burst`), each carrying one threshold.
    """
    v = state.v + z
    n = torch.clamp(torch.floor(v), 0, params.burst)
    v = v - n if params.reset == "subtract" else torch.where(n > 0, torch.zeros_like(v), v)
    return n, IFState(v=v)
