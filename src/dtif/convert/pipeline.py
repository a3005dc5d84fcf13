"""`convert`: the ordered passes that turn a trained ANN into a spiking network.

prepare (trace -> select_output -> check_supported -> remove_dropout -> fold_batchnorm ->
fold_constant_scales -> canonicalize_relu -> apply_pool_policy -> use_fast_pools) -> calibrate (collect_scales) -> build (replace_relu,
max-pool gates, check reshapes, split_static).
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp

from dtif.convert.constant_scale import fold_constant_scales
from dtif.convert.dropout import remove_dropout
from dtif.convert.fold_bn import BN_BEFORE_LINEAR_META, fold_batchnorm
from dtif.convert.normalize import (
    CalibrationData,
    MaxNorm,
    Norm,
    TrainedScale,
    collect_scales,
    has_qcfs,
)
from dtif.convert.options import MaxPoolPolicy, check_policy
from dtif.convert.outputs import OutputKey, check_tensor_output, select_output
from dtif.convert.pooling import apply_pool_policy, use_fast_pools
from dtif.convert.replace_relu import (
    RELU_CAP_META,
    RELU_META,
    canonicalize_relu,
    relu_sites,
    replace_relu,
)
from dtif.convert.static import dynamic_nodes, split_static
from dtif.convert.support import MAXPOOL_MODULES, check_supported
from dtif.convert.trace import trace
from dtif.errors import ConversionError, InputError, UnsupportedOpsError
from dtif.models.qcfs import QCFS
from dtif.neurons import DTIFParams, IFParams, NeuronParams
from dtif.nn.layers import SpikeMaxPool
from dtif.nn.neuron import SpikingNeuron
from dtif.sim.network import SpikingNetwork


def _check_finite(gm: fx.GraphModule) -> None:
    bad = [
        name
        for name, t in [*gm.named_parameters(), *gm.named_buffers()]
        if t.is_floating_point() and not torch.isfinite(t).all()
    ]
    if bad:
        raise ConversionError(
            f"the model has NaN or Inf values in {', '.join(bad)}; the weights or BN statistics "
            "are corrupt. Retrain or reload the checkpoint."
        )


def prepare_ann(
    model: nn.Module, maxpool: MaxPoolPolicy = "error", output: OutputKey | None = None
) -> fx.GraphModule:
    """Trace `model` (a copy) and run the ANN passes; the result is the reference ANN.

    Args:
        model: the trained ANN.
        maxpool: the max-pool policy.
        output: the index or key of the output to keep, for a model that returns several.

    Raises:
        UnsupportedOpsError: unsupported nodes, all listed in one error; several outputs
            and no `output`.
        ConversionError: a BN that cannot be folded, or non-finite weights.
    """
    check_policy(maxpool)
    gm = select_output(trace(model), output)
    check_supported(gm, maxpool)
    _check_finite(gm)
    gm = remove_dropout(gm)
    gm = fold_batchnorm(gm)
    gm = fold_constant_scales(gm)
    gm = canonicalize_relu(gm)
    gm = apply_pool_policy(gm, maxpool)
    gm = use_fast_pools(gm)
    _check_finite(gm)
    return gm


def _check_bn_before_linear(node: fx.Node) -> None:
    """A BN folded into the Linear after it was exact only if it saw [N, C] features."""
    bn = node.meta.get(BN_BEFORE_LINEAR_META)
    x = node.args[0] if node.args else None
    shape = getattr(x.meta.get("tensor_meta"), "shape", None) if isinstance(x, fx.Node) else None
    if bn is not None and shape is not None and len(shape) != 2:
        raise ConversionError(
            f"BatchNorm '{bn}' normalizes dim 1 of a {len(shape)}-D tensor that the Linear "
            f"'{node.target}' reads along its last dim, so it cannot be folded; flatten before "
            "the BatchNorm, or place it right after a conv/linear layer"
        )


def _check_batch_preserved(ann: fx.GraphModule, input_shape: tuple[int, ...]) -> None:
    """Reshapes after the first ReLU must keep dim 0, which becomes steps*batch."""
    gm = copy.deepcopy(ann)
    device = next((p.device for p in gm.parameters()), torch.device("cpu"))
    try:
        out = ShapeProp(gm).propagate(torch.zeros((2, *input_shape), device=device))
    except Exception as err:  # noqa: BLE001 - reported as a shape problem
        cause = err.__cause__ or err  # ShapeProp wraps the op's own error
        # The calibration batches ran, so the model depends on the batch size.
        raise UnsupportedOpsError(
            f"the model does not run on a batch of 2 inputs of shape {input_shape} "
            f"({type(cause).__name__}: {cause}); a reshape with a fixed batch size such as "
            "x.view(32, -1) is the usual cause. In a spiking network the leading dimension is "
            "steps*batch: use x.flatten(1) or x.view(x.size(0), -1)."
        ) from err
    check_tensor_output(out)
    after_relu: set[fx.Node] = set()
    bad = []
    for node in gm.graph.nodes:
        if RELU_META in node.meta or any(a in after_relu for a in node.all_input_nodes):
            after_relu.add(node)
        _check_bn_before_linear(node)
        meta = node.meta.get("tensor_meta")
        # every tensor after the first ReLU keeps dim 0 (cat, mean, reshapes, ...)
        shape = getattr(meta, "shape", None)
        if (
            node in after_relu
            and node.op != "output"
            and shape is not None
            and (len(shape) == 0 or shape[0] != 2)
        ):
            bad.append(node.name)
    if bad:
        raise UnsupportedOpsError(
            f"op(s) {', '.join(bad)} mix the batch dimension (a reshape, a cat or mean over "
            "dim 0); in a spiking network the leading dimension is steps*batch. Keep dim 0: "
            "use x.flatten(1) or x.view(x.size(0), -1), cat along dim=1, mean over (2, 3)."
        )


def _neuron_for(neuron: NeuronParams, index: int, count: int) -> NeuronParams:
    return neuron.for_layer(index, count) if isinstance(neuron, DTIFParams) else neuron


def check_burst(ann: fx.GraphModule, burst: int) -> None:
    """Refuse burst > 1 on a network whose activations saturate (clipped ReLU or QCFS).

    Raises:
        ConversionError: naming the saturating sites.
    """
    if burst <= 1:
        return
    modules = dict(ann.named_modules())
    capped = [
        str(n.meta[RELU_META])
        for n in relu_sites(ann)
        if RELU_CAP_META in n.meta or isinstance(modules.get(str(n.target)), QCFS)
    ]
    if capped:
        raise ConversionError(
            f"clipped activation(s) {', '.join(capped)} (QCFS, ReLU6, Hardtanh(0, m), "
            "clamp(0, m)) saturate at their cap, as a neuron that fires at most once a step "
            f"does; burst={burst} lets them exceed it. Use burst=1."
        )


def build_snn(
    ann: fx.GraphModule,
    input_shape: tuple[int, ...],
    neuron: NeuronParams,
    scales: list[torch.Tensor],
    maxpool: MaxPoolPolicy,
    meta: dict[str, Any] | None = None,
) -> SpikingNetwork:
    """Build the spiking network from the reference ANN and one lambda per ReLU site.

    Before: conv -> ReLU -> pool -> ...  After: static [conv] | dynamic [SpikingNeuron -> pool
    -> ...], each ReLU a spiking layer with threshold balancing by its lambda.
    """
    _check_batch_preserved(ann, input_shape)
    gm = copy.deepcopy(ann)
    sites = relu_sites(gm)
    if len(scales) != len(sites):
        raise ConversionError(f"got {len(scales)} scales for {len(sites)} spiking layers")
    device = next((p.device for p in gm.parameters()), torch.device("cpu"))

    check_burst(gm, neuron.burst)

    def make(index: int, node: fx.Node) -> nn.Module:
        params = _neuron_for(neuron, index, len(sites))
        return SpikingNeuron(params, scales[index].to(device), str(node.meta[RELU_META]))

    gm = replace_relu(gm, make)
    if maxpool == "gate":
        modules = dict(gm.named_modules())
        dynamic = dynamic_nodes(gm)
        for node in gm.graph.nodes:
            mod = modules.get(str(node.target)) if node.op == "call_module" else None
            if isinstance(mod, MAXPOOL_MODULES) and node in dynamic:
                gm.add_submodule(str(node.target), SpikeMaxPool(mod, node.name))
        gm.recompile()
    info = {**(meta or {}), "neuron": neuron, "maxpool": maxpool}
    split = split_static(gm)
    return SpikingNetwork(split.static, split.dynamic, ann, tuple(input_shape), info)


def convert(
    model: nn.Module,
    calib: object,
    neuron: NeuronParams | None = None,
    norm: Norm | None = None,
    maxpool: MaxPoolPolicy = "error",
    output: OutputKey | None = None,
) -> SpikingNetwork:
    """Convert a trained ANN into a spiking network. The model itself is never mutated.

    Args:
        model: a trained CNN with ReLU activations (see the support table).
        calib: calibration images: a tensor [N, ...] or an iterable of tensors or
            (input, label) pairs. Take them from the training split, never the test split.
        neuron: `IF()` (default) or `DTIF(...)`.
        norm: `MaxNorm()` or `PercentileNorm(p)`, per layer or channelwise, or
            `TrainedScale()` (each QCFS layer's trained lambda). Default: `TrainedScale()` for
            a network with QCFS activations, else `MaxNorm()`.
        maxpool: "error" (default), "avg" (swap for average pooling) or "gate" (spiking gate).
        output: for a model whose forward returns a tuple, list or dict: the index or key of
            the output to convert. None (default) refuses such a model.

    Returns:
        The spiking network; `snn.simulate(x, num_steps)` runs it.

    Raises:
        UnsupportedOpsError: every unsupported node, listed in one error.
        ConversionError: a pattern that cannot be converted (e.g. an unfoldable BN).
        CalibrationError: empty, non-finite or ill-shaped calibration data.
    """
    neuron = neuron if neuron is not None else IFParams()
    if norm is None:
        norm = TrainedScale() if isinstance(model, nn.Module) and has_qcfs(model) else MaxNorm()
    if not isinstance(neuron, (IFParams, DTIFParams)):
        raise InputError(f"neuron must be dtif.IF(...) or dtif.DTIF(...), got {neuron!r}")
    data = CalibrationData(calib)
    ann = prepare_ann(model, maxpool, output)
    example = data.first()
    device = next((p.device for p in ann.parameters()), torch.device("cpu"))
    scales = collect_scales(ann, data, norm)
    meta = {"norm": norm}
    return build_snn(
        ann, tuple(example.shape[1:]), neuron, [s.to(device) for s in scales], maxpool, meta
    )
