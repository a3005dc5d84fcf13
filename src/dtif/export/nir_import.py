"""NIR import: a NIR graph (or file) back into a dtif spiking network (see `dtif.export.nir_export`)."""

from __future__ import annotations

import copy
import operator
import os
from collections.abc import Callable
from functools import cache, partial
from typing import Any

import numpy as np
import torch
from torch import fx, nn

from dtif.convert.static import split_static
from dtif.errors import UnsupportedOpsError
from dtif.export.nir_common import RTOL, Refusal, load_nir, pair, pool_divisor
from dtif.neurons import IFParams
from dtif.nn.neuron import SpikingNeuron
from dtif.nn.scale import Scale
from dtif.sim.network import SpikingNetwork

Builder = Callable[[str, Any], list[nn.Module]]
Fusion = Callable[[str, Any, Any], list[nn.Module] | None]


def _ints(v: Any) -> tuple[int, ...]:
    return tuple(int(x) for x in np.atleast_1d(np.asarray(v)))


def _padding(v: Any, dims: int) -> str | tuple[int, ...]:
    if isinstance(v, (str, bytes)):
        return v.decode() if isinstance(v, bytes) else v
    p = _ints(v)
    return p * dims if len(p) == 1 else p


def _tensor(a: Any) -> torch.Tensor:
    return torch.from_numpy(np.array(a, dtype=np.float32))


def _build_conv(node: Any, dims: int) -> list[nn.Module]:
    weight = _tensor(node.weight)
    groups = int(node.groups)
    conv_type = nn.Conv1d if dims == 1 else nn.Conv2d
    conv = conv_type(
        weight.shape[1] * groups,
        weight.shape[0],
        tuple(weight.shape[2:]),
        stride=_ints(node.stride) * (dims if len(_ints(node.stride)) == 1 else 1),
        padding=_padding(node.padding, dims),
        dilation=_ints(node.dilation) * (dims if len(_ints(node.dilation)) == 1 else 1),
        groups=groups,
    )
    with torch.no_grad():
        conv.weight.copy_(weight)
        assert conv.bias is not None  # noqa: S101 - built with bias=True
        conv.bias.copy_(_tensor(node.bias))
    return [conv]


def _build_affine(name: str, node: Any) -> list[nn.Module]:
    weight = _tensor(node.weight)
    bias = getattr(node, "bias", None)
    if weight.ndim != 2:
        raise Refusal(f"a {weight.ndim}-d weight; dtif's Linear takes a matrix")
    linear = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
    with torch.no_grad():
        linear.weight.copy_(weight)
        if bias is not None:
            assert linear.bias is not None  # noqa: S101 - built with a bias
            linear.bias.copy_(_tensor(bias))
    return [linear]


def _build_sum_pool(name: str, node: Any) -> list[nn.Module]:
    k, s, p = _ints(node.kernel_size), _ints(node.stride), _ints(node.padding)
    return [nn.AvgPool2d(k, s, p, count_include_pad=True, divisor_override=1)]


def _build_avg_pool(name: str, node: Any) -> list[nn.Module]:
    return [nn.AvgPool2d(_ints(node.kernel_size), _ints(node.stride), _ints(node.padding))]


def _build_flatten(name: str, node: Any) -> list[nn.Module]:
    """NIR's dims count within one sample: a dim >= 0 moves past the batch dim, one < 0 stays."""
    start, end = int(node.start_dim), int(node.end_dim)
    return [nn.Flatten(start + 1 if start >= 0 else start, end + 1 if end >= 0 else end)]


def _build_scale(name: str, node: Any) -> list[nn.Module]:
    return [Scale(_tensor(node.scale))]


def _per_channel(a: np.ndarray) -> np.ndarray | None:
    """A per-neuron array as [] (constant) or [C] (constant over dims after the first)."""
    if np.all(a == a.flat[0]):
        return np.array(a.flat[0], dtype=np.float32)
    if a.ndim == 1:
        return a.astype(np.float32)
    rows = a.reshape(a.shape[0], -1)
    if np.all(rows == rows[:, :1]):
        return rows[:, 0].astype(np.float32)
    return None


def _if_lambda(node: Any, inclusive: bool = False) -> np.ndarray:
    """dtif's lambda for a nir.IF, per neuron: spikes at r*sum(x) > v_th, i.e. sum(x) >= lambda.

    With `inclusive` (a graph written with spike_rule="inclusive") the IF fires at
    r*sum(x) >= v_th, and lambda is v_th / r.
    """
    r = np.asarray(node.r, dtype=np.float32)
    v_th = np.asarray(node.v_threshold, dtype=np.float32)
    v_reset = np.asarray(node.v_reset, dtype=np.float32)
    problems = []
    if np.any(r <= 0):
        problems.append("r <= 0")
    if np.any(v_th <= 0):
        problems.append("v_threshold <= 0")
    if np.any(v_reset != 0):
        problems.append("v_reset != 0 (dtif's IF resets to zero)")
    if problems:
        raise Refusal("IF with " + ", ".join(problems))
    above = v_th if inclusive else np.nextafter(v_th, np.float32(np.inf))
    lam = (above / r).astype(np.float32)
    return np.broadcast_to(lam, np.broadcast_shapes(r.shape, v_th.shape))


def _if_neuron(name: str, lam: np.ndarray) -> SpikingNeuron:
    reduced = _per_channel(lam)
    if reduced is None:
        raise Refusal("thresholds vary within a channel; dtif has one lambda per channel")
    return SpikingNeuron(IFParams(reset="zero"), torch.from_numpy(reduced.copy()), name)


def _build_if(name: str, node: Any, inclusive: bool = False) -> list[nn.Module]:
    """A lone nir.IF: a dtif IF layer, then 1/lambda so that each spike delivers 1."""
    lam = _if_lambda(node, inclusive)
    neuron = _if_neuron(name, lam)
    return [neuron, Scale(1.0 / torch.from_numpy(np.array(lam)))]


def _fuse_if_scale(name: str, first: Any, second: Any) -> list[nn.Module] | None:
    """IF -> Scale(lambda), the pair that `export_nir` writes: one dtif IF layer."""
    lam = _if_lambda(first)
    scale = np.asarray(second.scale, dtype=np.float32)
    if scale.shape != lam.shape or not np.allclose(scale, lam, rtol=RTOL, atol=0.0):
        return None
    return [_if_neuron(name, lam)]


def _fuse_sum_pool_scale(name: str, first: Any, second: Any) -> list[nn.Module] | None:
    """SumPool2d -> Scale(1 / divisor): AvgPool2d with or without the padding in the count."""
    k, s, p = _ints(first.kernel_size), _ints(first.stride), _ints(first.padding)
    in_type = first.input_type.get("input") if first.input_type else None
    if in_type is None:
        return None
    scale = np.asarray(second.scale, dtype=np.float32)
    for include_pad in (True, False):
        pool = nn.AvgPool2d(k, s, p, count_include_pad=include_pad)
        divisor = pool_divisor(pool, pair(tuple(int(n) for n in in_type[1:])))
        expected = (1.0 / divisor.float()).expand(scale.shape).numpy()
        if np.allclose(scale, expected, rtol=RTOL, atol=0.0):
            return [pool]
    return None


@cache
def _import_tables() -> tuple[dict[type, Builder], dict[tuple[type, type], Fusion]]:
    nir = load_nir()
    builders: dict[type, Builder] = {
        nir.Conv1d: lambda name, node: _build_conv(node, 1),
        nir.Conv2d: lambda name, node: _build_conv(node, 2),
        nir.Affine: _build_affine,
        nir.Linear: _build_affine,
        nir.SumPool2d: _build_sum_pool,
        nir.AvgPool2d: _build_avg_pool,
        nir.Flatten: _build_flatten,
        nir.Scale: _build_scale,
        nir.IF: _build_if,
    }
    fusions: dict[tuple[type, type], Fusion] = {
        (nir.IF, nir.Scale): _fuse_if_scale,
        (nir.SumPool2d, nir.Scale): _fuse_sum_pool_scale,
    }
    return builders, fusions


def _spike_rule(graph: Any) -> str:
    rule = (graph.metadata or {}).get("dtif.spike_rule", "strict")
    rule = rule.decode() if isinstance(rule, bytes) else str(rule)
    if rule not in ("strict", "inclusive"):
        raise UnsupportedOpsError(
            f"metadata dtif.spike_rule={rule!r}; dtif reads 'strict' or 'inclusive'"
        )
    return rule


def _topological(nodes: dict[str, Any], edges: list[tuple[str, str]]) -> list[str]:
    preds: dict[str, list[str]] = {n: [] for n in nodes}
    succs: dict[str, list[str]] = {n: [] for n in nodes}
    for a, b in edges:
        preds[b].append(a)
        succs[a].append(b)
    waiting = {n: len(p) for n, p in preds.items()}
    ready = sorted(n for n, k in waiting.items() if k == 0)
    order: list[str] = []
    while ready:
        n = ready.pop(0)
        order.append(n)
        for s in succs[n]:
            waiting[s] -= 1
            if waiting[s] == 0:
                ready.append(s)
    if len(order) < len(nodes):
        cyclic = sorted(set(nodes) - set(order))
        raise UnsupportedOpsError(
            f"the NIR graph has a cycle through {', '.join(cyclic)}; dtif runs feed-forward "
            "networks only"
        )
    return order


def _module_name(base: str, root: nn.Module) -> str:
    name = "".join(c if c.isalnum() or c == "_" else "_" for c in base) or "node"
    name = f"n_{name}" if name[0].isdigit() else name
    candidate, i = name, 1
    while hasattr(root, candidate):
        candidate, i = f"{name}_{i}", i + 1
    return candidate


def import_nir(graph_or_path: Any) -> SpikingNetwork:
    """Rebuild a dtif spiking network from a NIR graph or file.

    The NIR nodes become torch modules in one fx graph (inputs reaching a node are summed),
    which is split into the static prefix and the dynamic part. The pairs that `export_nir`
    writes are restored exactly: IF -> Scale(lambda) becomes one dtif IF layer (reset "zero"),
    SumPool2d -> Scale(1/divisor) an AvgPool2d. A lone nir.IF (what the portable encoding
    writes; its metadata "dtif.spike_rule" says whether it fires at v > v_threshold, the
    default, or at v >= v_threshold) becomes an IF layer with
    lambda = v_threshold / r (strict > kept by the next float up) followed by a `Scale` of
    1/lambda, so that each spike delivers 1 as in NIR; a lone SumPool2d an AvgPool2d with
    divisor 1. `snn.ann` is the same graph with ReLU in place of each spiking layer (lambda
    is a threshold balancing and changes nothing in the ANN).

    Args:
        graph_or_path: a `nir.NIRGraph`, or the path of a file written by `nir.write`.

    Returns:
        The spiking network, input shape taken from the graph's Input node.

    Raises:
        UnsupportedOpsError: every NIR node without a dtif equivalent (LIF, LI, CubaLIF,
            Delay, Threshold, subgraphs, IF that resets to a nonzero value), listed at once;
            cycles; more than one input or output.
        ImportError: the `nir` package is not installed.
    """
    nir = load_nir()
    graph = graph_or_path
    if not isinstance(graph, nir.NIRGraph):
        graph = nir.read(os.fspath(graph_or_path))
    builders, fusions = _import_tables()
    if _spike_rule(graph) == "inclusive":
        builders = {**builders, nir.IF: partial(_build_if, inclusive=True)}
    nodes: dict[str, Any] = dict(graph.nodes)
    edges = [(str(a), str(b)) for a, b in graph.edges]
    inputs = [n for n, node in nodes.items() if isinstance(node, nir.Input)]
    outputs = [n for n, node in nodes.items() if isinstance(node, nir.Output)]
    if len(inputs) != 1 or len(outputs) != 1:
        raise UnsupportedOpsError(
            f"dtif imports graphs with one Input and one Output; got inputs {inputs} and "
            f"outputs {outputs}"
        )
    order = _topological(nodes, edges)
    preds: dict[str, list[str]] = {n: [] for n in nodes}
    succs: dict[str, list[str]] = {n: [] for n in nodes}
    for a, b in edges:
        preds[b].append(a)
        succs[a].append(b)

    root = nn.Module()
    fx_graph = fx.Graph()
    env: dict[str, fx.Node] = {}
    done: set[str] = set()
    bad: list[str] = []
    for name in order:
        if name in done:
            continue
        node = nodes[name]
        if name == inputs[0]:
            env[name] = fx_graph.placeholder("x")
            continue
        missing = [p for p in preds[name] if p not in env]
        if missing or not preds[name]:
            continue  # an upstream node was refused (reported there), or a dangling node
        arg = env[preds[name][0]]
        for p in preds[name][1:]:
            arg = fx_graph.call_function(operator.add, (arg, env[p]))
        if name == outputs[0]:
            fx_graph.output(arg)
            continue
        target_name = name
        try:
            chain = None
            nxt = succs[name][0] if len(succs[name]) == 1 else None
            fusion = fusions.get((type(node), type(nodes[nxt]))) if nxt is not None else None
            if fusion is not None and nxt is not None and preds[nxt] == [name]:
                chain = fusion(name, node, nodes[nxt])
                if chain is not None:
                    done.add(nxt)
                    target_name = nxt
            if chain is None:
                builder = builders.get(type(node))
                if builder is None:
                    raise Refusal("dtif has no equivalent of this NIR node")
                chain = builder(name, node)
        except Refusal as why:
            bad.append(f"- {name}: {type(node).__name__}: {why}")
            continue
        for mod in chain:
            target = _module_name(name, root)
            root.add_module(target, mod)
            arg = fx_graph.call_module(target, (arg,))
        env[target_name] = arg
        env[name] = arg
    if bad:
        raise UnsupportedOpsError(
            f"{len(bad)} NIR node(s) have no dtif equivalent:\n" + "\n".join(bad)
        )
    gm = fx.GraphModule(root, fx_graph)
    gm.graph.lint()
    ann = copy.deepcopy(gm)
    for mod_name, mod in list(ann.named_modules()):
        if isinstance(mod, SpikingNeuron):
            ann.add_submodule(mod_name, nn.ReLU())
    ann.recompile()
    input_shape = tuple(int(n) for n in nodes[inputs[0]].input_type["input"])
    meta = {"neuron": IFParams(reset="zero"), "maxpool": "error", "source": "nir"}
    split = split_static(gm)
    return SpikingNetwork(split.static, split.dynamic, ann, input_shape, meta)
