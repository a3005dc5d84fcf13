"""Split the spiking graph into a static prefix, run once, and a dynamic part, run per step.

Everything upstream of the first spiking layer sees the constant analog input, so it is the
same at every step: it is computed once per batch. A node is dynamic when it is a time-aware
layer or takes a dynamic input. Static values that feed dynamic non-neuron ops (an add that
joins a branch from before the first neuron) are repeated in time by `RepeatTime`.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import fx

from dtif.convert.support import is_shape_read
from dtif.errors import UnsupportedOpsError
from dtif.nn.context import TimeAware
from dtif.nn.layers import RepeatTime


@dataclass
class SplitGraph:
    """The two halves of a spiking network.

    Attributes:
        static: input -> tuple of boundary values, run once per batch.
        dynamic: boundary values -> output, run once per time chunk on stacked tensors.
    """

    static: fx.GraphModule
    dynamic: fx.GraphModule


def dynamic_nodes(gm: fx.GraphModule) -> set[fx.Node]:
    modules = dict(gm.named_modules())
    dynamic: set[fx.Node] = set()
    for node in gm.graph.nodes:
        time_aware = node.op == "call_module" and isinstance(modules[str(node.target)], TimeAware)
        if time_aware or any(a in dynamic for a in node.all_input_nodes):
            dynamic.add(node)
    return dynamic


def split_static(gm: fx.GraphModule) -> SplitGraph:
    """Split `gm` into its static prefix and its dynamic remainder.

    Raises:
        UnsupportedOpsError: a non-tensor static value (such as the batch size read from the
            input) feeds the dynamic part, where the leading dimension is steps*batch.
    """
    dynamic = dynamic_nodes(gm)
    modules = dict(gm.named_modules())
    nodes = [n for n in gm.graph.nodes if n.op != "output"]
    out_node = next(n for n in gm.graph.nodes if n.op == "output")
    constants = [n for n in nodes if n.op == "get_attr"]
    boundary = [
        n
        for n in nodes
        if n not in dynamic
        and n.op != "get_attr"
        and any(u in dynamic or u is out_node for u in n.users)
    ]
    for n in boundary:
        if is_shape_read(n) or (
            n.op == "call_function" and any(is_shape_read(a) for a in n.all_input_nodes)
        ):
            raise UnsupportedOpsError(
                f"'{n.name}' reads the batch size before the first ReLU and uses it after; in a "
                "spiking network the leading dimension is steps*batch. Use x.flatten(1) or "
                "x.view(x.size(0), -1) on the tensor you reshape."
            )

    static_graph = fx.Graph()
    env: dict[fx.Node, fx.Node] = {}
    for n in nodes:
        if n not in dynamic:
            env[n] = static_graph.node_copy(n, lambda a: env[a])
    static_graph.output(tuple(env[n] for n in boundary))

    dyn_graph = fx.Graph()
    denv: dict[fx.Node, fx.Node] = {}
    repeated: dict[fx.Node, fx.Node] = {}
    for i, n in enumerate(boundary):
        denv[n] = dyn_graph.placeholder(f"boundary_{i}_{n.name}")
    for n in constants:
        denv[n] = dyn_graph.node_copy(n)

    def lookup(user: fx.Node, a: fx.Node) -> fx.Node:
        if a in dynamic or a.op == "get_attr":
            return denv[a]
        takes_static = user.op == "call_module" and isinstance(modules[str(user.target)], TimeAware)
        if takes_static:
            return denv[a]
        if a not in repeated:
            name = f"repeat_{a.name}"
            gm.add_submodule(name, RepeatTime(name))
            repeated[a] = dyn_graph.call_module(name, (denv[a],))
        return repeated[a]

    for n in nodes:
        if n in dynamic:
            denv[n] = dyn_graph.node_copy(n, lambda a, n=n: lookup(n, a))
    result = out_node.args[0]
    dyn_graph.output(fx.map_arg(result, lambda a: denv[a]))
    static_gm = fx.GraphModule(gm, static_graph)
    dynamic_gm = fx.GraphModule(gm, dyn_graph)
    return SplitGraph(static=static_gm, dynamic=dynamic_gm)
