"""Integrate-and-fire (IF) neuron: the fixed-threshold baseline of ANN-to-SNN conversion."""

from __future__ import annotations

import math
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
        signed: emit a negative correction spike (-1, V += 1) when V < -theta_neg while the
            neuron's net spike count is positive (docs/dtif.md, "Signed correction spikes").
        theta_neg: the negative firing level, in thresholds (>= 0); used when signed.
        v0_spread: in [0, 1]; V(0) = v0 + v0_spread * (u - 1/2), u a fixed pattern in [0, 1)
            across the neurons of a layer (`initial_potential`). 0: every neuron starts at v0.
    """

    v0: float = 0.0
    reset: ResetMode = "subtract"
    burst: int = 1
    signed: bool = False
    theta_neg: float = 0.5
    v0_spread: float = 0.0

    def __post_init__(self) -> None:
        if self.reset not in ("subtract", "zero"):
            raise InputError(f"IF reset must be 'subtract' or 'zero', got {self.reset!r}")
        if self.burst < 1:
            raise InputError(f"IF burst must be >= 1, got {self.burst}")
        check_signed("IF", self.signed, self.theta_neg)
        check_spread("IF", self.v0_spread)
        if self.signed and self.reset != "subtract":
            raise InputError("IF signed=True needs reset='subtract' (a negative spike adds 1)")


def check_signed(kind: str, signed: object, theta_neg: object) -> None:
    """Raise InputError unless `signed` is a bool and `theta_neg` a finite number >= 0."""
    if not isinstance(signed, bool):
        raise InputError(f"{kind} signed must be True or False, got {signed!r}")
    if (
        isinstance(theta_neg, bool)
        or not isinstance(theta_neg, int | float)
        or not math.isfinite(theta_neg)
        or theta_neg < 0
    ):
        raise InputError(f"{kind} theta_neg must be a finite number >= 0, got {theta_neg!r}")


def check_spread(kind: str, spread: object, name: str = "v0_spread") -> None:
    """Raise InputError unless `spread` (a v0_spread) is a number in [0, 1]."""
    if isinstance(spread, bool) or not isinstance(spread, int | float) or not 0.0 <= spread <= 1.0:
        raise InputError(f"{kind} {name} must be a number in [0, 1], got {spread!r}")


GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0


def initial_potential(z: torch.Tensor, v0: float, spread: float) -> torch.Tensor:
    """V(0) shaped like z ([B, ...]): v0, plus spread * (u - 1/2) per neuron when spread > 0.

    u = frac((i + 1/2) * golden ratio) over the flat index i of one image's neurons: a fixed,
    evenly spread pattern, the same for every image and every run, so that neurons with
    similar inputs do not all round at the same point (docs/dtif.md, "Spread initial
    potentials").
    """
    v = torch.full_like(z, v0)
    if spread:
        i = torch.arange(z[0].numel(), dtype=torch.float64)
        u = torch.frac((i + 0.5) * GOLDEN).sub_(0.5).mul_(spread)
        v.add_(u.to(z.device, z.dtype).view(z.shape[1:]))
    return v


def negative_spikes(
    v: torch.Tensor, count: torch.Tensor, theta_neg: float, dtype: torch.dtype
) -> torch.Tensor:
    """1 where a signed neuron emits a negative spike: V < -theta_neg and net count > 0."""
    return ((v < -theta_neg) & (count > 0)).to(dtype)


@dataclass
class IFState:
    """State of a layer of IF neurons.

    Attributes:
        v: membrane potential in threshold units, shape of the layer's input.
        count: the net spike count so far (positive minus negative spikes) of a signed
            neuron; None when not signed.
    """

    v: torch.Tensor
    count: torch.Tensor | None = None


def if_initial_state(z: torch.Tensor, params: IFParams) -> IFState:
    """Initial state V(0) (`initial_potential`; and a net count of 0 when signed), like `z`."""
    count = torch.zeros_like(z) if params.signed else None
    return IFState(v=initial_potential(z, params.v0, params.v0_spread), count=count)


def if_step(z: torch.Tensor, state: IFState, params: IFParams) -> tuple[torch.Tensor, IFState]:
    """One step of the IF neuron.

    V(t) = V(t-1) + z(t);  n(t) = clamp(floor(V(t)), 0, burst) spikes;
    reset by subtraction V(t) -= n(t), or to zero V(t) = 0 where n(t) > 0.
    Signed: where no positive spike fired, V(t) < -theta_neg and the net count N > 0,
    n(t) = -1 and V(t) += 1; N += n(t).

    Args:
        z: input current in threshold units, any shape.
        state: the potential V(t-1).
        params: neuron parameters.

    Returns:
        (spikes, new_state): spikes n(t) (0/1, or up to `burst`; -1 for a negative spike),
        each carrying one threshold.
    """
    v = state.v + z
    n = torch.clamp(torch.floor(v), 0, params.burst)
    if params.signed:
        assert state.count is not None  # noqa: S101 - if_initial_state makes it when signed
        n = n - negative_spikes(v, state.count, params.theta_neg, n.dtype)
        return n, IFState(v=v - n, count=state.count + n)
    v = v - n if params.reset == "subtract" else torch.where(n > 0, torch.zeros_like(v), v)
    return n, IFState(v=v)
