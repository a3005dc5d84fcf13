"""`calibrate_biases`: layer-wise bias calibration at a small T (after SNN Calibration's light mode).

At T steps a spiking layer's rate r_l(T) misses the ANN's activation a_l by an error whose
mean per channel is a steady offset (early spikes, rounding, a threshold that moves with the
input). Layer by layer in graph order, with the layers before it already corrected, the input
of layer l gets the mean per channel of a_l - r_l(T) over calibration images:

- by default for the first T steps only (`SpikingNeuron.set_input_offset`), so that the rate
  at T is corrected and the correction fades as 1/t afterwards, and the rate still converges
  to the ANN's activation;
- with `persistent=True` in the bias of the conv or linear that feeds the layer, at every
  step (SNN Calibration's light mode), which leaves an error at large T (docs/dtif.md).
"""

from __future__ import annotations

import operator
from typing import Any

import torch
from torch import fx, nn
from tqdm.auto import tqdm

from dtif.calibrate.layer_error import ann_activations
from dtif.calibrate.search import search_images
from dtif.convert.normalize import CalibrationData
from dtif.errors import InputError
from dtif.nn.layers import RepeatTime
from dtif.nn.neuron import SpikingNeuron
from dtif.sim.network import SpikingNetwork

_ADDS = (operator.add, operator.iadd, torch.add)


def _call_count(snn: SpikingNetwork, target: str) -> int:
    return sum(
        1
        for gm in (snn.static, snn.dynamic)
        for n in gm.graph.nodes
        if n.op == "call_module" and n.target == target
    )


def _static_source(snn: SpikingNetwork, placeholder: fx.Node) -> fx.Node:
    """The node of the static graph that a boundary placeholder of the dynamic graph carries."""
    index = [n for n in snn.dynamic.graph.nodes if n.op == "placeholder"].index(placeholder)
    out = next(n for n in snn.static.graph.nodes if n.op == "output")
    return out.args[0][index]


def _feeding_layer(snn: SpikingNetwork, node: fx.Node) -> nn.Module | None:
    """The conv/linear whose output reaches `node` through adds only, or None."""
    graph_of = snn.static if node.graph is snn.static.graph else snn.dynamic
    if node.op == "placeholder" and graph_of is snn.dynamic:
        return _feeding_layer(snn, _static_source(snn, node))
    if node.op == "call_module":
        mod = graph_of.get_submodule(str(node.target))
        if isinstance(mod, RepeatTime):
            return _feeding_layer(snn, node.args[0])  # type: ignore[arg-type]
        if isinstance(mod, nn.Linear | nn.Conv1d | nn.Conv2d | nn.Conv3d):
            if len(node.users) != 1 or _call_count(snn, str(node.target)) != 1:
                return None  # its output goes elsewhere too: a bias change would leak
            return mod
        return None
    if (node.op == "call_function" and node.target in _ADDS) or (
        node.op == "call_method" and node.target == "add"
    ):
        for arg in node.args:
            if isinstance(arg, fx.Node):
                found = _feeding_layer(snn, arg)
                if found is not None:
                    return found
    return None


def bias_layers(snn: SpikingNetwork) -> list[nn.Module]:
    """For each spiking layer, in graph order, the conv or linear whose bias feeds it.

    Raises:
        InputError: a spiking layer that is not fed by a conv or linear with a bias of its
            own (through residual adds at most).
    """
    modules = dict(snn.dynamic.named_modules())
    found: list[nn.Module] = []
    for node in snn.dynamic.graph.nodes:
        mod = modules.get(str(node.target)) if node.op == "call_module" else None
        if not isinstance(mod, SpikingNeuron):
            continue
        layer = _feeding_layer(snn, node.args[0])  # type: ignore[arg-type]
        if layer is None or getattr(layer, "bias", None) is None:
            raise InputError(
                f"bias calibration needs a conv or linear layer with a bias right before each "
                f"ReLU (residual adds allowed); spiking layer {mod.layer_name!r} has none. "
                "Give that layer bias=True (or a BatchNorm after it), or convert without "
                "bias calibration."
            )
        found.append(layer)
    return found


def _mean_rate(snn: SpikingNetwork, neuron: SpikingNeuron, x: torch.Tensor, steps: int) -> Any:
    """The layer's output summed over `steps` steps, divided by `steps`: [B, ...]."""
    batch = x.shape[0]
    total: list[torch.Tensor] = []

    def hook(_mod: nn.Module, _args: object, y: torch.Tensor) -> None:
        s = y.view(-1, batch, *y.shape[1:]).sum(dim=0, dtype=torch.float64)
        total.append(s)

    handle = neuron.register_forward_hook(hook)
    try:
        snn.simulate(x, steps, batch_chunk=batch, record=False)
    finally:
        handle.remove()
    return torch.stack(total).sum(dim=0) / steps


def calibrate_biases(
    snn: SpikingNetwork,
    calib: object,
    steps: int,
    *,
    persistent: bool = False,
    num_images: int = 256,
    seed: int = 0,
    progress: bool = False,
) -> list[torch.Tensor]:
    """Correct, in place, the input of each spiking layer for its mean rate at T = `steps`.

    Args:
        snn: the converted network (its neurons' input offsets or its conv/linear biases
            change; its ANN does not).
        calib: calibration images (training split): a tensor or an iterable of batches.
        steps: the T at which the mean rate should match the ANN's activation, >= 1.
        persistent: False: the correction is added to the input for the first `steps` steps
            only; True: to the bias that feeds the layer, at every step.
        num_images: calibration images used (a seeded subset).
        seed: seed of the subset.
        progress: show a progress bar.

    Returns:
        The correction of each layer, per channel, in graph order (in the ANN's units).

    Raises:
        InputError: steps < 1; with `persistent`, a spiking layer without a bias to correct
            (see `bias_layers`).
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise InputError(f"bias calibration steps must be an integer >= 1, got {steps!r}")
    neurons = snn.neurons()
    layers: list[nn.Module | None] = list(bias_layers(snn)) if persistent else [None] * len(neurons)
    x = search_images(CalibrationData(calib), num_images, seed).to(snn.device)
    acts = ann_activations(snn.ann, x)
    if len(acts) != len(neurons):
        raise InputError(
            f"{len(neurons)} spiking layers but {len(acts)} ReLU sites in the ANN: bias "
            "calibration needs a network made by dtif.convert"
        )
    snn.profile(tuple(x.shape[1:]))
    deltas: list[torch.Tensor] = []
    for neuron, layer, act in tqdm(
        list(zip(neurons, layers, acts)), desc="calibrate biases", disable=not progress
    ):
        with torch.inference_mode():
            err = act.double() - _mean_rate(snn, neuron, x, steps)
        dims = [d for d in range(err.ndim) if d != 1]
        delta = err.mean(dim=dims) if dims else err
        if layer is None:
            offset = delta.float().expand(steps, *delta.shape)
            old = neuron.input_offset
            if old is not None and old.shape != offset.shape:
                raise InputError(
                    f"spiking layer {neuron.layer_name!r} already has an input offset over "
                    f"{old.shape[0]} steps; calibrate again with steps={old.shape[0]}, or "
                    "convert afresh"
                )
            neuron.set_input_offset(offset if old is None else old + offset.to(old.device))
        else:
            bias = layer.bias
            if delta.numel() != bias.numel():
                raise InputError(
                    f"spiking layer {neuron.layer_name!r} has {delta.numel()} channels along "
                    f"dim 1 but its bias has {bias.numel()}: bias calibration needs channels "
                    "on dim 1"
                )
            with torch.no_grad():
                bias.add_(delta.to(bias.dtype).view_as(bias))
        deltas.append(delta.float().cpu())
    snn.meta["bias_calibration"] = {
        "steps": steps,
        "persistent": persistent,
        "num_images": int(x.shape[0]),
    }
    return deltas
