"""NIR export and import: an IF spiking network as a Neuromorphic Intermediate Representation graph.

NIR (the `nir` package, optional extra `dtif[nir]`) describes a network as plain dataclass nodes
and edges; a node sums everything that reaches it. Its `nir.IF` is

    dv/dt = r * I;   a spike (value 1) when v > v_threshold;   then v = v_reset.

dtif runs that at dt = 1: one dtif step is one NIR time unit (forward Euler, v += r * I per
step). The analog input is presented at every step (direct coding), and the output node gives
the output layer's value at each step; dtif's `SimulationResult.outputs` is its running sum.

How a dtif IF layer with lambda (`SpikingNeuron.scale`, [] or [C]) is written. dtif computes
z = x / lambda, V += z, a spike when V >= 1, V = 0 after it (reset "zero"), and each spike
delivers lambda (`if_step`). In NIR this is two nodes:

    IF(r=1, v_threshold=lambda-, v_reset=0)  ->  Scale(lambda)

where lambda- is the largest float32 below lambda, so that NIR's strict v > v_threshold equals
dtif's v >= lambda on every float32 potential. Both arrays are given per neuron (the layer's
sample shape). `import_nir` finds this pair and restores the dtif layer exactly.

What NIR cannot express, and `export_nir` refuses, listing every such node at once:
- IF with reset "subtract" (dtif's default): NIR's IF resets to the value v_reset, it does not
  subtract the threshold. Convert with `dtif.IF(reset="zero")` to export.
- IF with burst > 1 (NIR emits at most one spike per step) or v0 != 0 (NIR has no initial
  potential).
- DTIF neurons: their threshold follows the input current; NIR has no such primitive and no
  lossless encoding of it, so they are never exported as an IF.
- Spiking max-pool gates (NIR has no max-pool node), 1-d pooling, adaptive pooling whose input
  is not a multiple of its output, ceil-mode pooling that changes the output size, reshapes
  other than a flatten of adjacent dims, constants and any other op.

Other mappings: Conv1d/Conv2d -> nir.Conv1d/Conv2d (a missing bias is written as zeros), Linear ->
nir.Affine (nir.Linear without bias), AvgPool2d/AdaptiveAvgPool2d -> nir.SumPool2d followed by
nir.Scale(1 / divisor), the divisor per output position (so count_include_pad=False is exact),
Flatten/view/reshape -> nir.Flatten, residual adds -> edges into one node. The static prefix and
the dynamic part become one graph; `RepeatTime` is an edge, since the prefix is recomputed from
the same input at every NIR step.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import fx, nn

from dtif.errors import UnsupportedOpsError
from dtif.export.nir_common import PathLike, Refusal, load_nir
from dtif.export.nir_nodes import EXPORTERS, Site
from dtif.nn.context import TimeAware
from dtif.nn.layers import SpikeMaxPool
from dtif.sim.network import SpikingNetwork

SHAPE_BATCH = 2  # batch size of the shape walk; 2 keeps the batch dim apart from size-1 dims


@dataclass
class _Stitched:
    """The static prefix and the dynamic part as one graph."""

    graph: fx.Graph
    modules: dict[str, nn.Module]
    owners: dict[fx.Node, fx.GraphModule] = field(default_factory=dict)


def _stitch(snn: SpikingNetwork) -> _Stitched:
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
    return _Stitched(graph, modules, owners)


def _shape_forward(mod: nn.Module, args: tuple[Any, ...]) -> Any:
    """A module's output shape for the walk; time-aware modules keep the shape of their input."""
    if isinstance(mod, SpikeMaxPool):
        return mod.pool(args[0])
    if isinstance(mod, TimeAware):
        return args[0]
    return mod(*args)


def _evaluate(node: fx.Node, env: dict[fx.Node, Any], st: _Stitched) -> Any:
    args = fx.map_arg(node.args, lambda a: env[a])
    kwargs = fx.map_arg(node.kwargs, lambda a: env[a])
    if node.op == "call_module":
        return _shape_forward(st.modules[str(node.target)], args)
    if node.op == "call_function":
        return node.target(*args, **kwargs)  # type: ignore[operator]  # fx call target
    if node.op == "call_method":
        return getattr(args[0], str(node.target))(*args[1:], **kwargs)
    if node.op == "get_attr":
        return operator.attrgetter(str(node.target))(st.owners[node])
    raise Refusal(f"unknown node kind {node.op}")


_CAT = "NIR has no concatenation node; export a network without torch.cat"
_MEAN = "NIR has no mean node; use an nn.AdaptiveAvgPool2d module in place of the mean"
_SCALE = "multiplying or dividing by a constant has no exporter; fold the constant into a layer"
# Ops that dtif converts but this exporter cannot express, with the reason.
_NO_NIR_NODE: dict[Any, str] = {
    **dict.fromkeys((torch.cat, torch.concat, torch.concatenate), _CAT),
    **dict.fromkeys((torch.mean, "mean"), _MEAN),
    **dict.fromkeys(
        (operator.mul, torch.mul, torch.multiply, "mul", "multiply", operator.truediv),
        _SCALE,
    ),
    **dict.fromkeys((torch.div, torch.divide, torch.true_divide, "div", "divide"), _SCALE),
}


def _exporter_key(node: fx.Node, st: _Stitched) -> Any:
    if node.op == "call_module":
        return type(st.modules[str(node.target)])
    return node.target


def _describe(node: fx.Node, st: _Stitched) -> str:
    if node.op == "call_module":
        mod = st.modules[str(node.target)]
        label = getattr(mod, "layer_name", node.target)
        return f"{node.name}: {type(mod).__name__} (module {node.target}, layer {label})"
    target = getattr(node.target, "__name__", str(node.target))
    return f"{node.name}: {node.op} {target}"


class _Names:
    """Unique NIR node names."""

    def __init__(self) -> None:
        self.taken = {"input", "output"}

    def __call__(self, base: str) -> str:
        name, i = base, 1
        while name in self.taken:
            name, i = f"{base}_{i}", i + 1
        self.taken.add(name)
        return name


def export_nir(snn: SpikingNetwork, path: PathLike | None = None) -> Any:
    """Write an IF spiking network as a NIR graph (see the module docstring for the mapping).

    Args:
        snn: a network from `dtif.convert` with `neuron=dtif.IF(reset="zero")` (burst 1, v0 0).
        path: where to write the graph with `nir.write` (HDF5), or None to only return it.

    Returns:
        The `nir.NIRGraph`: node "input" (one sample's shape), node "output" (the output
        layer's value at each step), one node per layer (IF layers named by their layer name).

    Raises:
        UnsupportedOpsError: every node that NIR cannot express, listed in one error.
        ImportError: the `nir` package is not installed.
    """
    nir = load_nir()
    st = _stitch(snn)
    names = _Names()
    nodes: dict[str, Any] = {"input": nir.Input(input_type=np.array(snn.input_shape))}
    edges: list[tuple[str, str]] = []
    sources: dict[fx.Node, tuple[str, ...]] = {}
    env: dict[fx.Node, Any] = {}
    bad: list[str] = []
    with torch.no_grad():
        for node in st.graph.nodes:
            if node.op == "placeholder":
                env[node] = torch.zeros(SHAPE_BATCH, *snn.input_shape, device=snn.device)
                sources[node] = ("input",)
                continue
            if node.op == "output":
                _export_output(node, env, sources, nodes, edges, bad)
                continue
            try:
                env[node] = _evaluate(node, env, st)
                if not isinstance(env[node], torch.Tensor) or node.op == "get_attr":
                    if node.op == "get_attr":
                        raise Refusal("a constant tensor; NIR has no constant node")
                    continue  # shape arithmetic (x.size(0)) that feeds a reshape
                exporter = EXPORTERS.get(_exporter_key(node, st))
                if exporter is None:
                    raise Refusal(
                        _NO_NIR_NODE.get(_exporter_key(node, st), "no NIR node for this op")
                    )
                site = Site(
                    node.name,
                    st.modules.get(str(node.target)) if node.op == "call_module" else None,
                    fx.map_arg(node.args, lambda a: env[a]),
                    fx.map_arg(node.kwargs, lambda a: env[a]),
                    env[node],
                )
                chain = exporter(site)
            except Refusal as why:
                bad.append(f"- {_describe(node, st)}: {why}")
                sources[node] = ()
                continue
            inputs = tuple(
                s
                for a in node.all_input_nodes
                if isinstance(env.get(a), torch.Tensor)
                for s in sources[a]
            )
            if not chain:
                sources[node] = inputs
                continue
            base = getattr(site.module, "layer_name", node.name)
            chain_names = [names(f"{base}{suffix}") for suffix, _ in chain]
            for name, (_, nir_node) in zip(chain_names, chain, strict=True):
                nodes[name] = nir_node
            edges.extend((s, chain_names[0]) for s in inputs)
            edges.extend(zip(chain_names[:-1], chain_names[1:], strict=True))
            sources[node] = (chain_names[-1],)
    _check_edges(edges, bad)
    if bad:
        raise UnsupportedOpsError(
            f"{len(bad)} node(s) cannot be expressed in NIR:\n" + "\n".join(bad)
        )
    meta = {"source": "dtif", "dtif.time_step": "1", "dtif.input_coding": "direct"}
    graph = nir.NIRGraph(nodes=nodes, edges=edges, metadata=meta)
    if path is not None:
        nir.write(path, graph)
    return graph


def _export_output(
    node: fx.Node,
    env: dict[fx.Node, Any],
    sources: dict[fx.Node, tuple[str, ...]],
    nodes: dict[str, Any],
    edges: list[tuple[str, str]],
    bad: list[str],
) -> None:
    result = node.args[0]
    if not isinstance(result, fx.Node) or not isinstance(env.get(result), torch.Tensor):
        bad.append("- output: the network returns several values; NIR export needs one tensor")
        return
    nodes["output"] = load_nir().Output(output_type=np.array(env[result].shape[1:]))
    edges.extend((s, "output") for s in sources[result])


def _check_edges(edges: list[tuple[str, str]], bad: list[str]) -> None:
    seen: set[tuple[str, str]] = set()
    for edge in edges:
        if edge in seen:
            bad.append(
                f"- {edge[1]}: receives {edge[0]} twice (x + x); NIR edges are unweighted and "
                "unique"
            )
        seen.add(edge)
