"""Graph preparations for a run: event-driven Linear layers, and which layers may overwrite input."""

from __future__ import annotations

import copy
import operator
import weakref

import torch
from torch import fx, nn

from dtif.nn.linear import SPARSE_MIN_WEIGHTS, EventLinear
from dtif.nn.neuron import SpikingNeuron

_EVENT_GRAPHS: weakref.WeakKeyDictionary[fx.GraphModule, tuple[fx.Graph, fx.GraphModule]] = (
    weakref.WeakKeyDictionary()
)


def event_driven(dynamic: fx.GraphModule) -> fx.GraphModule:
    """`dynamic` with each Linear of >= `SPARSE_MIN_WEIGHTS` weights wrapped in `EventLinear`.

    The result is a new GraphModule over a copy of the graph that shares every module (and
    so the parameters and the time-aware layers) with `dynamic`, which is left untouched. It
    is cached per `dynamic` and graph; without such layers, `dynamic` itself is returned.
    """
    cached = _EVENT_GRAPHS.get(dynamic)
    if cached is not None and cached[0] is dynamic.graph:
        return cached[1]
    modules = dict(dynamic.named_modules())
    big = {
        str(n.target)
        for n in dynamic.graph.nodes
        if n.op == "call_module"
        and isinstance(modules[str(n.target)], nn.Linear)
        and modules[str(n.target)].weight.numel() >= SPARSE_MIN_WEIGHTS
    }
    result = dynamic
    if big:
        result = fx.GraphModule(dynamic, copy.deepcopy(dynamic.graph))
        for node in result.graph.nodes:
            if node.op == "call_module" and str(node.target) in big:
                name = "event_" + str(node.target).replace(".", "_")
                if not hasattr(result, name):
                    result.add_submodule(name, EventLinear(modules[str(node.target)]))
                node.target = name
        result.recompile()
    _EVENT_GRAPHS[dynamic] = (dynamic.graph, result)
    return result


_FRESH_MODULES = (
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.Linear,
    EventLinear,
    nn.AvgPool1d,
    nn.AvgPool2d,
    nn.AvgPool3d,
)
_FRESH_FUNCTIONS = (operator.add, torch.add)


def overwritable_inputs(dynamic: fx.GraphModule) -> frozenset[str]:
    """The spiking layers of `dynamic` that may write their spikes over their input tensor.

    That is safe when the input is made afresh on every call, by a convolution, a Linear
    layer, an average pool or an out-of-place addition (a residual sum), and the spiking
    layer is its only reader. A graph input (the static part's output, reused by every
    chunk), a view, or a tensor read twice never qualifies. Writing over the input saves each
    such layer its own chunk-sized spike buffer; the results are bit-identical either way.
    """
    modules = dict(dynamic.named_modules())
    names = set()
    for node in dynamic.graph.nodes:
        mod = modules.get(str(node.target)) if node.op == "call_module" else None
        if not isinstance(mod, SpikingNeuron) or len(node.args) != 1 or node.kwargs:
            continue
        src = node.args[0]
        if not isinstance(src, fx.Node) or len(src.users) != 1:
            continue
        if src.op == "call_module":
            fresh = isinstance(modules.get(str(src.target)), _FRESH_MODULES)
        else:
            fresh = (
                src.op == "call_function"
                and src.target in _FRESH_FUNCTIONS
                and "out" not in src.kwargs
            )
        if fresh:
            names.add(mod.layer_name)
    return frozenset(names)
