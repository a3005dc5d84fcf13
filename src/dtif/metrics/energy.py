"""The energy model: MACs and accumulates priced in pJ (Horowitz 2014, 45 nm, 32-bit float)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from dtif.errors import InputError


@dataclass(frozen=True)
class EnergyModel:
    """Energy per operation.

    Energy(T) = e_mac * MAC + e_ac * SOP_binary(T) + e_mac * SOP_graded(T), where MAC counts the
    first layer's analog work (done once) and graded spikes that are not powers of two cost
    a multiply.

    Attributes:
        e_ac_pj: energy of one accumulate, in pJ.
        e_mac_pj: energy of one multiply-accumulate, in pJ.
    """

    e_ac_pj: float = 0.9
    e_mac_pj: float = 4.6

    def __post_init__(self) -> None:
        if self.e_ac_pj < 0 or self.e_mac_pj < 0:
            raise InputError("energy per operation must be >= 0 pJ")

    def snn_pj(
        self, static_macs: float, synops_binary: torch.Tensor, synops_graded: torch.Tensor
    ) -> torch.Tensor:
        """Cumulative SNN energy per sample, [T] in pJ, from cumulative SOP counts [T]."""
        return (
            self.e_mac_pj * static_macs
            + self.e_ac_pj * synops_binary
            + self.e_mac_pj * synops_graded
        )

    def ann_pj(self, macs: float) -> float:
        """The ANN's energy per sample in pJ."""
        return self.e_mac_pj * macs
