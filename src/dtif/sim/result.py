"""`SimulationResult`: what one simulation returns, and how it is assembled from the chunks."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from dtif.metrics.energy import EnergyModel
from dtif.nn.context import LayerRecord


@dataclass
class SimulationResult:
    """The outcome of one simulation.

    Attributes:
        outputs: [T, B, ...] the output layer's input accumulated over steps 1..t.
        spikes: spike counts per step, summed over the batch, [T] by layer name.
        synops: [T] cumulative synaptic operations per sample (binary and graded).
        synops_graded: [T] the part of `synops` whose events cost a multiply.
        energy_pj: [T] cumulative energy per sample, in pJ.
        static_macs: MACs per sample of the analog first part, done once.
        layer_sizes: neurons per sample by layer name.
        exit_steps: [B] each image's exit step, with an early-exit policy (else None); its
            outputs, SOPs and energy then stay at their exit values after it.
    """

    outputs: torch.Tensor
    spikes: dict[str, torch.Tensor]
    synops: torch.Tensor
    synops_graded: torch.Tensor
    energy_pj: torch.Tensor
    static_macs: int
    layer_sizes: dict[str, int] = field(default_factory=dict)
    exit_steps: torch.Tensor | None = None

    @property
    def num_steps(self) -> int:
        return int(self.outputs.shape[0])

    def predictions(self) -> torch.Tensor:
        """[T, B] the predicted class at every step."""
        return self.outputs.flatten(2).argmax(dim=2)

    def correct(self, labels: torch.Tensor) -> torch.Tensor:
        """[T] the number of correct predictions at every step."""
        return (self.predictions() == labels.to(self.outputs.device)[None]).sum(dim=1)


def _stack(chunks: list[list[torch.Tensor]], num_steps: int) -> torch.Tensor:
    """Batch chunks of time chunks -> [T], summed over batch chunks. A batch chunk whose
    images all exited early has no records after that: zeros."""
    rows = [torch.cat(c) for c in chunks]
    return torch.stack([torch.nn.functional.pad(r, (0, num_steps - r.shape[0])) for r in rows]).sum(
        dim=0
    )


def assemble(
    outputs: torch.Tensor,
    per_chunk: list[dict[str, LayerRecord]],
    static_macs: int,
    layer_sizes: dict[str, int],
    energy: EnergyModel,
) -> SimulationResult:
    """The result of a run from its outputs and the records of each batch chunk."""
    num_steps, batch = outputs.shape[0], outputs.shape[1]
    zeros = torch.zeros(num_steps, dtype=torch.float64, device=outputs.device)
    spikes: dict[str, torch.Tensor] = {}
    binary, graded = zeros.clone(), zeros.clone()
    names = list(per_chunk[0]) if per_chunk else []
    for name in names:
        recs = [chunk[name] for chunk in per_chunk]
        spikes[name] = _stack([r.spikes for r in recs], num_steps).double()
        sops = _stack([r.synops for r in recs], num_steps).double()
        if recs[0].graded:
            graded += sops
        else:
            binary += sops
    binary = torch.cumsum(binary, 0) / batch
    graded = torch.cumsum(graded, 0) / batch
    return SimulationResult(
        outputs=outputs,
        spikes=spikes,
        synops=binary + graded,
        synops_graded=graded,
        energy_pj=energy.snn_pj(static_macs, binary, graded),
        static_macs=static_macs,
        layer_sizes=layer_sizes,
    )
