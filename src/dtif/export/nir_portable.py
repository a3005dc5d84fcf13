"""The portable NIR encoding: a graph that other simulators run as they are.

Readers such as SpikingJelly 2.0.0 and Norse 1.1.0 (both through nirtorch) implement Affine,
Conv2d, SumPool2d without padding, Flatten and IF with one threshold per layer. They have no
`nir.Scale`, so this encoding writes none: every scale is folded into the weights.

Each tensor of the graph carries a unit u (per element of one sample): the value dtif computes
is u times the value the reader computes. The input has u = 1. An IF layer's spikes have
u = lambda (a spike delivers lambda in dtif, 1 in the reader); a sum pool divides u by its
window's area; a flatten reshapes u. An affine layer (Conv1d, Conv2d, Linear) takes its input
unit into its weights and chooses its output unit: that of the IF layer it feeds (so the IF's
threshold is 1), that of the other branch of a residual add, or 1 before the output.

    W' = W * u_in / u_out,   b' = b / u_out,   IF(r=1, v_threshold=lambda / u_in, v_reset=0)

When every lambda and window area is a power of two these products are exact, and a reader's
potentials equal dtif's bit for bit; otherwise they differ by rounding (a spike can flip where
a potential lands within a few ulps of the threshold).

The threshold test: dtif fires at v >= threshold. NIR's IF, and Norse, fire at v > v_threshold;
`spike_rule="strict"` writes the largest float32 below the threshold, which makes the two tests
equal on every float32 potential. SpikingJelly's IFNode fires at v >= v_threshold;
`spike_rule="inclusive"` writes the threshold itself. The graph's metadata
"dtif.spike_rule" records the choice, and `import_nir` reads it back.

Refused, naming each node and the fix (besides what the lossless encoding refuses): a padded
or ceil-mode pool (sum-pool readers drop the padding), an IF layer whose thresholds differ
between neurons after folding (channel-wise lambda joined by a residual branch), a residual
add whose branches arrive in different units, an output that is not in the ANN's units, a
convolution whose padding is asymmetric or not zeros.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import fx, nn

from dtif.errors import UnsupportedOpsError
from dtif.export.nir_common import PathLike, Refusal, load_nir, pair
from dtif.export.nir_plans import Plan, conv_padding, flatten_dims, plan_node
from dtif.export.nir_walk import SHAPE_BATCH, Names, describe, evaluate, stitch
from dtif.nn.neuron import SpikingNeuron
from dtif.nn.scale import Scale
from dtif.sim.network import SpikingNetwork

SpikeRule = Literal["strict", "inclusive"]
SPIKE_RULES: tuple[SpikeRule, ...] = ("strict", "inclusive")
Unit = torch.Tensor  # float64, one sample's shape


@dataclass
class _Walk:
    """State of the unit pass: plans, units, and the NIR nodes written so far."""

    env: dict[fx.Node, Any]
    plans: dict[fx.Node, Plan]
    units: dict[fx.Node, Unit]
    sources: dict[fx.Node, tuple[str, ...]]

    def ones(self, node: fx.Node) -> Unit:
        return torch.ones(tuple(self.env[node].shape[1:]), dtype=torch.float64)

    def lam(self, node: fx.Node) -> Unit:
        """A neuron's lambda for each neuron of one sample."""
        mod = self.plans[node].module
        assert isinstance(mod, SpikingNeuron)  # noqa: S101 - planned as a neuron
        lam = mod.scale.detach().cpu().double()
        shape = tuple(self.env[node].shape[1:])
        if lam.ndim == 1:
            lam = lam.view(-1, *([1] * (len(shape) - 1)))
        return lam.expand(shape).clone()

    def wanted(self, node: fx.Node) -> Unit:
        """The unit an affine output should take: what its consumer needs, else 1."""
        users = [u for u in node.users if u.op == "output" or u in self.plans]
        if len(users) != 1 or users[0].op == "output":
            return self.ones(node)
        user = users[0]
        plan = self.plans[user]
        if plan.kind == "neuron":
            return self.lam(user)
        if plan.kind == "add":
            other = [a for a in user.all_input_nodes if a is not node]
            if other and other[0] in self.units:
                return self.units[other[0]]
            return self.wanted(user)
        if plan.kind in ("pass", "reshape"):
            return self.wanted(user).reshape(self.ones(node).shape)
        if plan.kind == "pool":
            per_channel = _per_channel(self.wanted(user))
            if per_channel is not None:
                view = per_channel.view(-1, *([1] * (self.ones(node).ndim - 1)))
                return (view * plan.area).expand(self.ones(node).shape).clone()
        return self.ones(node)


def _per_channel(unit: Unit) -> Unit | None:
    """[C] when the unit is constant over the dims after the first, else None."""
    if unit.ndim == 0:
        return unit.reshape(1)
    rows = unit.reshape(unit.shape[0], -1)
    return rows[:, 0].clone() if bool((rows == rows[:, :1]).all()) else None


def _array(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().float().numpy().copy()


def _dense_weight(mod: nn.Conv1d | nn.Conv2d) -> torch.Tensor:
    """The weight [O, C, k...] of an ungrouped convolution equal to a grouped one."""
    w = mod.weight.detach().double()
    g = mod.groups
    if g == 1:
        return w
    out_per, in_per = mod.out_channels // g, mod.in_channels // g
    dense = w.new_zeros(mod.out_channels, mod.in_channels, *w.shape[2:])
    for i in range(g):
        rows, cols = slice(i * out_per, (i + 1) * out_per), slice(i * in_per, (i + 1) * in_per)
        dense[rows, cols] = w[rows]
    return dense


def _affine_node(mod: nn.Module, u_in: Unit, u_out: Unit, in_shape: tuple[int, ...]) -> Any:
    nir = load_nir()
    bias = getattr(mod, "bias", None)
    if isinstance(mod, nn.Linear):
        out_col = u_out.reshape(-1, 1)
        w = mod.weight.detach().double() * u_in.reshape(1, -1) / out_col
        b = (bias.detach().double() if bias is not None else 0.0) / u_out.reshape(-1)
        return nir.Affine(weight=_array(w), bias=_array(b))
    assert isinstance(mod, (nn.Conv1d, nn.Conv2d))  # noqa: S101 - planned as affine
    c_in, c_out = _per_channel(u_in), _per_channel(u_out)
    if c_in is None or c_out is None:
        raise Refusal("a convolution whose input or output unit varies within a channel")
    w = _dense_weight(mod)
    ones = [1] * (w.ndim - 2)
    w = w * c_in.view(1, -1, *ones) / c_out.view(-1, 1, *ones)
    b = (bias.detach().double() if bias is not None else 0.0) / c_out.expand(mod.out_channels)
    padding = conv_padding(mod)
    if isinstance(mod, nn.Conv1d):
        return nir.Conv1d(
            input_shape=int(in_shape[-1]),
            weight=_array(w),
            stride=int(mod.stride[0]),
            padding=int(padding[0]),
            dilation=int(mod.dilation[0]),
            groups=1,
            bias=_array(b),
        )
    return nir.Conv2d(
        input_shape=pair(in_shape[-2:]),
        weight=_array(w),
        stride=pair(mod.stride),
        padding=pair(padding),
        dilation=pair(mod.dilation),
        groups=1,
        bias=_array(b),
    )


def _threshold(lam: Unit, u_in: Unit, rule: SpikeRule) -> float:
    t = (lam / u_in).float()
    if not bool((t == t.flatten()[0]).all()):
        raise Refusal(
            "its thresholds differ between neurons once the scales are folded (channel-wise "
            "lambda meeting a residual branch); readers take one threshold per layer. Convert "
            "with a layer-wise norm, or export with portable=False"
        )
    value = np.float32(t.flatten()[0].item())
    return float(np.nextafter(value, np.float32(-np.inf)) if rule == "strict" else value)


def _step(walk: _Walk, node: fx.Node, rule: SpikeRule) -> Any:
    """Give `node` its unit and sources; returns the NIR node to write, if any."""
    nir = load_nir()
    plan = walk.plans[node]
    args = [a for a in node.all_input_nodes if isinstance(walk.env.get(a), torch.Tensor)]
    u_in = walk.units[args[0]]
    walk.sources[node] = walk.sources[args[0]]
    if plan.kind == "pass":
        walk.units[node] = u_in
        return None
    if plan.kind == "scale":
        assert isinstance(plan.module, Scale)  # noqa: S101 - planned as a scale
        walk.units[node] = u_in * plan.module.scale.double().expand(u_in.shape)
        return None
    if plan.kind == "add":
        if not torch.equal(u_in, walk.units[args[1]]):
            raise Refusal(
                "the two branches arrive in different units (a spike train of one lambda "
                "added to another); readers have no nir.Scale to match them. Export with "
                "portable=False"
            )
        walk.units[node] = u_in
        walk.sources[node] = walk.sources[args[0]] + walk.sources[args[1]]
        return None
    if plan.kind == "reshape":
        walk.units[node] = u_in.reshape(plan.out_shape)
        if plan.in_shape == plan.out_shape:
            return None
        dims = flatten_dims(plan.in_shape, plan.out_shape)
        assert dims is not None  # noqa: S101 - checked by the plan
        ndim = len(plan.in_shape)
        flat = nir.Flatten(
            input_type=np.array(plan.in_shape), start_dim=dims[0] - ndim, end_dim=dims[1] - ndim
        )
        return flat
    if plan.kind == "pool":
        c_in = _per_channel(u_in)
        if c_in is None:
            raise Refusal("a pool whose input unit varies within a channel")
        view = c_in.view(-1, 1, 1) / plan.area
        walk.units[node] = view.expand(plan.out_shape).clone()
        k, s = plan.window
        pool = nir.SumPool2d(kernel_size=np.array(k), stride=np.array(s), padding=np.zeros(2))
        return pool
    if plan.kind == "affine":
        assert plan.module is not None  # noqa: S101 - planned as affine
        u_out = walk.wanted(node)
        walk.units[node] = u_out
        return _affine_node(plan.module, u_in, u_out, plan.in_shape)
    lam = walk.lam(node)  # a neuron
    v_th = _threshold(lam, u_in, rule)
    walk.units[node] = lam
    shape = plan.out_shape
    neuron = nir.IF(
        r=np.ones(shape, dtype=np.float32),
        v_threshold=np.full(shape, v_th, dtype=np.float32),
        v_reset=np.zeros(shape, dtype=np.float32),
    )
    return neuron


def export_portable(snn: SpikingNetwork, path: PathLike | None, rule: SpikeRule) -> Any:
    """The portable encoding of `export_nir` (module docstring); same arguments and errors."""
    nir = load_nir()
    st = stitch(snn)
    env: dict[fx.Node, Any] = {}
    plans: dict[fx.Node, Plan] = {}
    bad: list[str] = []
    with torch.no_grad():
        for node in st.graph.nodes:
            if node.op == "placeholder":
                env[node] = torch.zeros(SHAPE_BATCH, *snn.input_shape, device=snn.device)
            elif node.op != "output":
                try:
                    env[node] = evaluate(node, env, st)
                    if node.op == "get_attr":
                        raise Refusal("a constant tensor; NIR has no constant node")
                    if isinstance(env[node], torch.Tensor):
                        plans[node] = plan_node(node, env, st.modules)
                except Refusal as why:
                    bad.append(f"- {describe(node, st)}: {why}")
    walk = _Walk(env, plans, {}, {})
    names = Names()
    nodes: dict[str, Any] = {"input": nir.Input(input_type=np.array(snn.input_shape))}
    edges: list[tuple[str, str]] = []
    for node in st.graph.nodes:
        if node.op == "placeholder":
            walk.units[node] = walk.ones(node)
            walk.sources[node] = ("input",)
        elif node.op == "output":
            _write_output(walk, node, nodes, edges, bad)
        elif node in plans and all(
            a in walk.units for a in node.all_input_nodes if isinstance(env.get(a), torch.Tensor)
        ):
            try:
                written = _step(walk, node, rule)
            except Refusal as why:
                bad.append(f"- {describe(node, st)}: {why}")
                continue
            if written is not None:
                name = names(getattr(plans[node].module, "layer_name", node.name))
                nir_node = written
                nodes[name] = nir_node
                edges.extend((s, name) for s in walk.sources[node])
                walk.sources[node] = (name,)
    _check_edges(edges, bad)
    if bad:
        raise UnsupportedOpsError(
            f"{len(bad)} node(s) cannot be written as a NIR graph that other simulators run:\n"
            + "\n".join(bad)
        )
    meta = {
        "source": "dtif",
        "dtif.encoding": "portable",
        "dtif.spike_rule": rule,
        "dtif.time_step": "1",
        "dtif.input_coding": "direct",
    }
    graph = nir.NIRGraph(nodes=nodes, edges=edges, metadata=meta)
    if path is not None:
        nir.write(path, graph)
    return graph


def _write_output(
    walk: _Walk, node: fx.Node, nodes: dict[str, Any], edges: list[tuple[str, str]], bad: list[str]
) -> None:
    result = node.args[0]
    if not isinstance(result, fx.Node) or not isinstance(walk.env.get(result), torch.Tensor):
        bad.append("- output: the network returns several values; NIR export needs one tensor")
        return
    if result not in walk.units:
        return  # refused upstream
    if not torch.equal(walk.units[result], walk.ones(result)):
        bad.append(
            "- output: the last layer's value arrives scaled (it is a spike train or a pool, "
            "not an affine layer); readers have no nir.Scale. End the network with a Linear "
            "or Conv layer, or export with portable=False"
        )
        return
    shape = np.array(walk.env[result].shape[1:])
    nodes["output"] = load_nir().Output(output_type=shape)
    edges.extend((s, "output") for s in walk.sources[result])


def _check_edges(edges: list[tuple[str, str]], bad: list[str]) -> None:
    seen: set[tuple[str, str]] = set()
    for edge in edges:
        if edge in seen:
            bad.append(f"- {edge[1]}: receives {edge[0]} twice (x + x); NIR edges are unique")
        seen.add(edge)
