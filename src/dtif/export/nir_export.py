"""NIR export and import: an IF spiking network as a Neuromorphic Intermediate Representation graph.

NIR (the `nir` package, optional extra `dtif[nir]`) describes a network as plain dataclass nodes
and edges; a node sums everything that reaches it. Its `nir.IF` is

    dv/dt = r * I;   a spike (value 1) when v > v_threshold;   then v = v_reset.

dtif runs that at dt = 1: one dtif step is one NIR time unit (forward Euler, v += r * I per
step). The analog input is presented at every step (direct coding), and the output node gives
the output layer's value at each step; dtif's `SimulationResult.outputs` is its running sum.

Two encodings. The default, `portable=True`, is what other simulators run (SpikingJelly, Norse
and any reader built on nirtorch's default map): `dtif.export.nir_portable` folds the scales
into the weights and writes no `nir.Scale` node. `portable=False` is the lossless dtif encoding
below, which `import_nir` restores bit for bit but which other readers cannot run (they lack
`nir.Scale`).

How the lossless encoding writes a dtif IF layer with lambda (`SpikingNeuron.scale`, [] or [C]) is written. dtif computes
z = x / lambda, V += z, a spike when V >= 1, V = 0 after it (reset "zero"), and each spike
delivers lambda (`if_step`). In NIR this is two nodes:

    IF(r=1, v_threshold=lambda-, v_reset=0)  ->  Scale(lambda)

where lambda- is the largest float32 below lambda, so that NIR's strict v > v_threshold equals
dtif's v >= lambda on every float32 potential. Both arrays are given per neuron (the layer's
sample shape). `import_nir` finds this pair and restores the dtif layer exactly.

What NIR cannot express, and both encodings refuse, listing every such node at once:
- IF with reset "subtract" (dtif's default): NIR's IF resets to the value v_reset, it does not
  subtract the threshold. Convert with `dtif.IF(reset="zero")` to export.
- IF with burst > 1 (NIR emits at most one spike per step) or v0 != 0 (NIR has no initial
  potential).
- DTIF neurons: their threshold follows the input current; NIR has no such primitive and no
  lossless encoding of it, so they are never exported as an IF.
- Spiking max-pool gates (NIR has no max-pool node), 1-d pooling, adaptive pooling whose input
  is not a multiple of its output, ceil-mode pooling that changes the output size, reshapes
  other than a flatten of adjacent dims, constants and any other op.

Other mappings of the lossless encoding: Conv1d/Conv2d -> nir.Conv1d/Conv2d (a missing bias is written as zeros), Linear ->
nir.Affine (nir.Linear without bias), AvgPool2d/AdaptiveAvgPool2d -> nir.SumPool2d followed by
nir.Scale(1 / divisor), the divisor per output position (so count_include_pad=False is exact),
Flatten/view/reshape -> nir.Flatten, residual adds -> edges into one node. The static prefix and
the dynamic part become one graph; `RepeatTime` is an edge, since the prefix is recomputed from
the same input at every NIR step.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import fx

from dtif.errors import InputError, UnsupportedOpsError
from dtif.export.nir_common import NO_NIR_NODE, PathLike, Refusal, load_nir
from dtif.export.nir_nodes import EXPORTERS, Site
from dtif.export.nir_portable import SPIKE_RULES, SpikeRule, export_portable
from dtif.export.nir_walk import SHAPE_BATCH, Names, describe, evaluate, exporter_key, stitch
from dtif.sim.network import SpikingNetwork


def export_nir(
    snn: SpikingNetwork,
    path: PathLike | None = None,
    *,
    portable: bool = True,
    spike_rule: SpikeRule = "strict",
) -> Any:
    """Write an IF spiking network as a NIR graph (see the module docstring for the mapping).

    Args:
        snn: a network from `dtif.convert` with `neuron=dtif.IF(reset="zero")` (burst 1, v0 0).
        path: where to write the graph with `nir.write` (HDF5), or None to only return it.
        portable: True writes the graph that other simulators run (`nir_portable`); False the
            lossless dtif encoding with `nir.Scale` nodes, read back only by `import_nir`.
        spike_rule: the threshold test of the reader, portable encoding only. "strict" (the NIR
            spec, Norse) writes each threshold as the largest float32 below it, so that
            v > v_threshold fires exactly when dtif's v >= threshold; "inclusive"
            (SpikingJelly, whose IFNode fires at v >= v_threshold) writes it as it is.

    Returns:
        The `nir.NIRGraph`: node "input" (one sample's shape), node "output" (the output
        layer's value at each step), one node per layer (IF layers named by their layer name).

    Raises:
        UnsupportedOpsError: every node that the chosen encoding cannot express, in one error.
        InputError: an unknown spike_rule, or spike_rule="inclusive" with portable=False.
        ImportError: the `nir` package is not installed.
    """
    if spike_rule not in SPIKE_RULES:
        raise InputError(f"spike_rule must be one of {list(SPIKE_RULES)}, got {spike_rule!r}")
    if portable:
        return export_portable(snn, path, spike_rule)
    if spike_rule != "strict":
        raise InputError(
            "spike_rule='inclusive' applies to the portable encoding; the lossless one "
            "(portable=False) always writes NIR's strict rule"
        )
    return _export_lossless(snn, path)


def _export_lossless(snn: SpikingNetwork, path: PathLike | None) -> Any:
    nir = load_nir()
    st = stitch(snn)
    names = Names()
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
                env[node] = evaluate(node, env, st)
                if not isinstance(env[node], torch.Tensor) or node.op == "get_attr":
                    if node.op == "get_attr":
                        raise Refusal("a constant tensor; NIR has no constant node")
                    continue  # shape arithmetic (x.size(0)) that feeds a reshape
                exporter = EXPORTERS.get(exporter_key(node, st))
                if exporter is None:
                    raise Refusal(
                        NO_NIR_NODE.get(exporter_key(node, st), "no NIR node for this op")
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
                bad.append(f"- {describe(node, st)}: {why}")
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
    meta = {
        "source": "dtif",
        "dtif.encoding": "lossless",
        "dtif.time_step": "1",
        "dtif.input_coding": "direct",
    }
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
