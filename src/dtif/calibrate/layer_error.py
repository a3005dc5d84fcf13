"""Where the conversion error builds up: each spiking layer's rate against the ANN's activation.

For an input x, layer l of the ANN gives the activation a_l (after its ReLU); the SNN's layer
l gives, after T steps, the rate r_l(T) = (sum of its outputs over t <= T) / T, in the same
units (spike payload x lambda). The relative error of the layer at T is

    e_l(T) = ||r_l(T) - a_l|| / ||a_l||       (2-norm over the batch and the layer's neurons).

A layer whose error falls slowly with T is where latency builds up; a jump from one layer to
the next is where a layer loses accuracy.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import torch
from torch import fx, nn

from dtif.convert.replace_relu import tap_relu_sites
from dtif.errors import InputError
from dtif.sim.engine import check_input
from dtif.sim.network import SpikingNetwork


class _Keep(nn.Module):
    """Keeps the last tensor that passes through it."""

    def __init__(self) -> None:
        super().__init__()
        self.value: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.value = x.detach().clone()
        return x


def ann_activations(ann: fx.GraphModule, x: torch.Tensor) -> list[torch.Tensor]:
    """The activation after every ReLU site of the folded ANN, in graph order."""
    gm, keeps = tap_relu_sites(ann, _Keep, "keep")
    with torch.inference_mode():
        gm(x)
    return [k.value for k in keeps if k.value is not None]


def relative_error(r: torch.Tensor, a: torch.Tensor) -> float:
    """||r - a|| / ||a||, 2-norms over all elements (an all-zero `a` counts as 1e-12)."""
    norm = torch.linalg.vector_norm(a).clamp(min=1e-12)
    return float(torch.linalg.vector_norm(r - a) / norm)


def layer_errors(
    snn: SpikingNetwork, x: torch.Tensor, at: Sequence[int]
) -> dict[str, dict[int, float]]:
    """Relative error e_l(T) of every spiking layer's rate, at each T in `at`.

    Args:
        snn: the converted network.
        x: [B, ...] inputs (use calibration or training images).
        at: the T values, each >= 1.

    Returns:
        {layer name: {T: e_l(T)}}, layers in graph order.

    Raises:
        InputError: a bad input (as `simulate`), an empty or non-positive `at`, or a network
            whose spiking layers do not match the ANN's ReLU sites one to one.
    """
    steps = sorted({int(t) for t in at})
    if not steps or steps[0] < 1:
        raise InputError(f"`at` must hold T values >= 1, got {list(at)!r}")
    x = check_input(x, snn.input_shape).to(snn.device)
    acts = ann_activations(snn.ann, x)
    neurons = snn.neurons()
    if len(neurons) != len(acts):
        raise InputError(
            f"{len(neurons)} spiking layers but {len(acts)} ReLU sites in the ANN: "
            "layer_errors needs a network made by dtif.convert"
        )
    snn.profile(tuple(x.shape[1:]))  # the fan-out pass runs the layers too: do it first
    batch, targets = x.shape[0], set(steps)
    out: dict[str, dict[int, float]] = {m.layer_name: {} for m in neurons}
    done = [0] * len(neurons)
    sums = [torch.zeros_like(a, dtype=torch.float64) for a in acts]

    def hook(i: int, name: str, _mod: nn.Module, _args: object, y: torch.Tensor) -> None:
        for y_t in y.view(-1, batch, *y.shape[1:]):  # one step of the chunk at a time
            sums[i] += y_t
            done[i] += 1
            if done[i] in targets:
                out[name][done[i]] = relative_error(sums[i] / done[i], acts[i])

    handles = [
        m.register_forward_hook(partial(hook, i, m.layer_name)) for i, m in enumerate(neurons)
    ]
    try:
        snn.simulate(x, steps[-1], batch_chunk=batch, record=False)
    finally:
        for h in handles:
            h.remove()
    return out
