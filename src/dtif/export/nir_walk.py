"""The walk that both NIR encodings share: the static prefix and the dynamic part as one fx
graph, each node's output evaluated at batch SHAPE_BATCH (shapes only), names and descriptions."""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from typing import Any

from torch import fx, nn

from dtif.export.nir_common import Refusal
from dtif.nn.context import TimeAware
from dtif.nn.layers import SpikeMaxPool
from dtif.sim.network import SpikingNetwork

SHAPE_BATCH = 2  # batch size of the shape walk; 2 keeps the batch dim apart from size-1 dims


@dataclass
class Stitched:
    """The static prefix and the dynamic part as one graph."""

    graph: fx.Graph
    modules: dict[str, nn.Module]
    owners: dict[fx.Node, fx.GraphModule] = field(default_factory=dict)


def stitch(snn: SpikingNetwork) -> Stitched:
    graph = fx.Graph()
    owners: dict[fx.Node, fx.GraphModule] = {}
    env: dict[fx.Node, fx.Node] = {}
    boundary: list[fx.Node] = []
    for n in snn.static.graph.nodes:
        if n.op == "output":
            boundary = [env[a] for a in n.args[0]]
        else:
            env[n] = graph.node_copy(n, lambda a: env[a])
            owners[env[n]] = snn.static
    denv: dict[fx.Node, fx.Node] = {}
    placeholders = [n for n in snn.dynamic.graph.nodes if n.op == "placeholder"]
    for i, n in enumerate(placeholders):
        denv[n] = boundary[i]
    for n in snn.dynamic.graph.nodes:
        if n.op == "placeholder":
            continue
        if n.op == "output":
            graph.output(fx.map_arg(n.args[0], lambda a: denv[a]))
        else:
            denv[n] = graph.node_copy(n, lambda a: denv[a])
            owners[denv[n]] = snn.dynamic
    modules = {**dict(snn.static.named_modules()), **dict(snn.dynamic.named_modules())}
    return Stitched(graph, modules, owners)


def shape_forward(mod: nn.Module, args: tuple[Any, ...]) -> Any:
    """A module's output shape for the walk; time-aware modules keep the shape of their input."""
    if isinstance(mod, SpikeMaxPool):
        return mod.pool(args[0])
    if isinstance(mod, TimeAware):
        return args[0]
    return mod(*args)


def evaluate(node: fx.Node, env: dict[fx.Node, Any], st: Stitched) -> Any:
    args = fx.map_arg(node.args, lambda a: env[a])
    kwargs = fx.map_arg(node.kwargs, lambda a: env[a])
    if node.op == "call_module":
        return shape_forward(st.modules[str(node.target)], args)
    if node.op == "call_function":
        return node.target(*args, **kwargs)  # type: ignore[operator]  # fx call target
    if node.op == "call_method":
        return getattr(args[0], str(node.target))(*args[1:], **kwargs)
    if node.op == "get_attr":
        return operator.attrgetter(str(node.target))(st.owners[node])
    raise Refusal(f"unknown node kind {node.op}")


def exporter_key(node: fx.Node, st: Stitched) -> Any:
    if node.op == "call_module":
        return type(st.modules[str(node.target)])
    return node.target


def describe(node: fx.Node, st: Stitched) -> str:
    if node.op == "call_module":
        mod = st.modules[str(node.target)]
        label = getattr(mod, "layer_name", node.target)
        return f"{node.name}: {type(mod).__name__} (module {node.target}, layer {label})"
    target = getattr(node.target, "__name__", str(node.target))
    return f"{node.name}: {node.op} {target}"


class Names:
    """Unique NIR node names."""

    def __init__(self) -> None:
        self.taken = {"input", "output"}

    def __call__(self, base: str) -> str:
        name, i = base, 1
        while name in self.taken:
            name, i = f"{base}_{i}", i + 1
        self.taken.add(name)
        return name
