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

import copy
import dataclasses
import operator
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import fx, nn

from dtif.convert.pooling import AvgPool2x2
from dtif.convert.static import split_static
from dtif.errors import UnsupportedOpsError
from dtif.neurons import DTIFParams, IFParams
from dtif.neurons.module import SpikingNeuron
from dtif.sim.context import TimeAware
from dtif.sim.layers import RepeatTime, SpikeMaxPool
from dtif.sim.network import SpikingNetwork

NIR_MISSING = "NIR export needs the `nir` package: pip install 'dtif[nir]'"
SHAPE_BATCH = 2  # batch size of the shape walk; 2 keeps the batch dim apart from size-1 dims
RTOL = 1e-6  # tolerance when matching a Scale node to the pattern that dtif writes

PathLike = str | os.PathLike[str]


def _nir() -> Any:
    try:
        import nir
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(NIR_MISSING) from err
    return nir


class Scale(nn.Module):
    """Elementwise scaling by a fixed array, the torch twin of `nir.Scale`.

    Args:
        scale: the factor, shaped like one sample (it broadcasts over the leading dim).
    """

    def __init__(self, scale: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("scale", scale.detach().clone().float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale.to(x.dtype)


class _Refusal(Exception):
    """A node that NIR cannot express; the message says why."""


# ---------------------------------------------------------------------------------------------
# export


@dataclass
class _Site:
    """One fx node with its evaluated arguments (batch SHAPE_BATCH) and output."""

    name: str
    module: nn.Module | None
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    output: Any

    @property
    def in_shape(self) -> tuple[int, ...]:
        return tuple(self.args[0].shape[1:])

    @property
    def out_shape(self) -> tuple[int, ...]:
        return tuple(self.output.shape[1:])


Chain = list[tuple[str, Any]]  # (name suffix, NIR node); [] passes its inputs through (sum)
Exporter = Callable[[_Site], Chain]


def _array(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().float().numpy().copy()


def _pair(v: int | tuple[int, ...]) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[-1]))


def _bias(mod: nn.Conv1d | nn.Conv2d) -> np.ndarray:
    if mod.bias is None:
        return np.zeros(mod.out_channels, dtype=np.float32)
    return _array(mod.bias)


def _check_padding_mode(mod: nn.Conv1d | nn.Conv2d) -> None:
    if mod.padding_mode != "zeros":
        raise _Refusal(f"padding_mode={mod.padding_mode!r}; NIR convolutions pad with zeros")


def _conv1d(site: _Site) -> Chain:
    mod = site.module
    assert isinstance(mod, nn.Conv1d)  # noqa: S101 - the table keys by type
    _check_padding_mode(mod)
    padding = mod.padding if isinstance(mod.padding, str) else int(mod.padding[0])
    node = _nir().Conv1d(
        input_shape=int(site.in_shape[-1]),
        weight=_array(mod.weight),
        stride=int(mod.stride[0]),
        padding=padding,
        dilation=int(mod.dilation[0]),
        groups=int(mod.groups),
        bias=_bias(mod),
    )
    return [("", node)]


def _conv2d(site: _Site) -> Chain:
    mod = site.module
    assert isinstance(mod, nn.Conv2d)  # noqa: S101 - the table keys by type
    _check_padding_mode(mod)
    padding = mod.padding if isinstance(mod.padding, str) else _pair(mod.padding)
    node = _nir().Conv2d(
        input_shape=_pair(site.in_shape[-2:]),
        weight=_array(mod.weight),
        stride=_pair(mod.stride),
        padding=padding,
        dilation=_pair(mod.dilation),
        groups=int(mod.groups),
        bias=_bias(mod),
    )
    return [("", node)]


def _linear(site: _Site) -> Chain:
    mod = site.module
    assert isinstance(mod, nn.Linear)  # noqa: S101 - the table keys by type
    if len(site.in_shape) != 1:
        raise _Refusal(f"Linear on a {len(site.in_shape)}-d sample; NIR's Affine takes vectors")
    nir = _nir()
    if mod.bias is None:
        return [("", nir.Linear(weight=_array(mod.weight)))]
    return [("", nir.Affine(weight=_array(mod.weight), bias=_array(mod.bias)))]


def _pool_divisor(pool: nn.AvgPool2d, in_hw: tuple[int, int]) -> torch.Tensor:
    """What AvgPool2d divides each output window's sum by, [H', W']."""
    k, s, p = _pair(pool.kernel_size), _pair(pool.stride or pool.kernel_size), _pair(pool.padding)
    if pool.divisor_override:
        return torch.tensor(float(pool.divisor_override))
    ones = torch.ones(1, 1, *in_hw)
    counts = F.avg_pool2d(ones, k, s, p, pool.ceil_mode, True, divisor_override=1)[0, 0]
    if pool.count_include_pad or p == (0, 0):
        return torch.tensor(float(k[0] * k[1]))
    return counts


def _sum_pool_chain(pool: nn.AvgPool2d, site: _Site) -> Chain:
    nir = _nir()
    k, s, p = _pair(pool.kernel_size), _pair(pool.stride or pool.kernel_size), _pair(pool.padding)
    if len(site.in_shape) != 3:
        raise _Refusal("2-d pooling of a sample that is not [C, H, W]")
    h, w = site.in_shape[1:]
    floor_shape = tuple(
        (n + 2 * pp - kk) // ss + 1 for n, pp, kk, ss in zip((h, w), p, k, s, strict=True)
    )
    if site.out_shape[1:] != floor_shape:
        raise _Refusal("ceil_mode=True changes the output size; NIR's SumPool2d floors it")
    divisor = _pool_divisor(pool, (h, w))
    scale = (1.0 / divisor.float()).expand(site.out_shape).contiguous()
    sum_pool = nir.SumPool2d(kernel_size=np.array(k), stride=np.array(s), padding=np.array(p))
    return [("", sum_pool), ("_scale", nir.Scale(scale=_array(scale)))]


def _avgpool2d(site: _Site) -> Chain:
    assert isinstance(site.module, nn.AvgPool2d)  # noqa: S101 - the table keys by type
    return _sum_pool_chain(site.module, site)


def _avgpool2d_function(site: _Site) -> Chain:
    return _sum_pool_chain(nn.AvgPool2d(*site.args[1:], **site.kwargs), site)


def _adaptive_window(site: _Site, output_size: Any) -> nn.AvgPool2d:
    h, w = site.in_shape[-2:]
    size = (output_size, output_size) if isinstance(output_size, int) else tuple(output_size)
    oh, ow = size[0] or h, size[-1] or w
    if h % oh or w % ow:
        raise _Refusal(
            f"adaptive pooling from {h}x{w} to {oh}x{ow} has windows of unequal size; "
            "NIR's SumPool2d needs one window"
        )
    return nn.AvgPool2d((h // oh, w // ow), (h // oh, w // ow))


def _adaptive_avgpool2d(site: _Site) -> Chain:
    assert isinstance(site.module, nn.AdaptiveAvgPool2d)  # noqa: S101 - table keys by type
    return _sum_pool_chain(_adaptive_window(site, site.module.output_size), site)


def _adaptive_avgpool2d_function(site: _Site) -> Chain:
    size = site.args[1] if len(site.args) > 1 else site.kwargs["output_size"]
    return _sum_pool_chain(_adaptive_window(site, size), site)


def _reshape(site: _Site) -> Chain:
    """flatten/view/reshape: a nir.Flatten of adjacent dims, or nothing when the shape stays."""
    src, dst = site.in_shape, site.out_shape
    if src == dst:
        return []
    for start in range(len(src)):
        for end in range(start + 1, len(src)):
            merged = (*src[:start], int(np.prod(src[start : end + 1])), *src[end + 1 :])
            if merged == dst:
                end_dim = -1 if end == len(src) - 1 else end
                node = _nir().Flatten(input_type=np.array(src), start_dim=start, end_dim=end_dim)
                return [("", node)]
    raise _Refusal(f"reshape {list(src)} -> {list(dst)} is not a flatten of adjacent dims")


def _identity(site: _Site) -> Chain:
    return []


def _add(site: _Site) -> Chain:
    tensors = [a for a in (*site.args, *site.kwargs.values()) if isinstance(a, torch.Tensor)]
    if len(tensors) != 2 or len(site.args) + len(site.kwargs) != 2:
        raise _Refusal("only the sum of two tensors maps to NIR (as two edges into one node)")
    if any(tuple(t.shape) != tuple(site.output.shape) for t in tensors):
        raise _Refusal("a broadcasting add; NIR sums inputs of equal shape")
    return []


def _neuron(site: _Site) -> Chain:
    mod = site.module
    assert isinstance(mod, SpikingNeuron)  # noqa: S101 - the table keys by type
    params = mod.params
    if isinstance(params, DTIFParams):
        raise _Refusal(
            "DTIF neuron: its threshold follows the input current, and NIR has no primitive "
            "for it (a fixed-threshold nir.IF would change the dynamics). Convert with "
            "neuron=dtif.IF(reset='zero') to export"
        )
    problems = []
    if params.reset != "zero":
        problems.append(
            f"reset={params.reset!r}: NIR's IF resets to v_reset instead of subtracting the "
            "threshold; convert with dtif.IF(reset='zero')"
        )
    if params.burst != 1:
        problems.append(f"burst={params.burst}: NIR's IF emits at most one spike per step")
    if params.v0 != 0.0:
        problems.append(f"v0={params.v0}: NIR has no initial membrane potential")
    if problems:
        raise _Refusal("IF neuron with " + "; ".join(problems))
    shape = site.out_shape
    lam = mod.scale.detach().cpu().float()
    if lam.ndim == 1:
        lam = lam.view(-1, *([1] * (len(shape) - 1)))
    lam_full = _array(lam.expand(shape).contiguous())
    nir = _nir()
    threshold = np.nextafter(lam_full, np.float32(-np.inf))
    zeros = np.zeros(shape, dtype=np.float32)
    neuron = nir.IF(r=np.ones(shape, dtype=np.float32), v_threshold=threshold, v_reset=zeros)
    return [("", neuron), ("_scale", nir.Scale(scale=lam_full))]


def _refuse_maxpool(site: _Site) -> Chain:
    raise _Refusal("spiking max-pool gate; NIR has no max-pool node. Convert with maxpool='avg'")


_EXPORTERS: dict[Any, Exporter] = {
    # call_module: keyed by module type
    nn.Conv1d: _conv1d,
    nn.Conv2d: _conv2d,
    nn.Linear: _linear,
    nn.AvgPool2d: _avgpool2d,
    AvgPool2x2: _avgpool2d,
    nn.AdaptiveAvgPool2d: _adaptive_avgpool2d,
    nn.Flatten: _reshape,
    nn.Identity: _identity,
    RepeatTime: _identity,
    SpikingNeuron: _neuron,
    SpikeMaxPool: _refuse_maxpool,
    # call_function: keyed by function
    operator.add: _add,
    torch.add: _add,
    torch.flatten: _reshape,
    F.avg_pool2d: _avgpool2d_function,
    F.adaptive_avg_pool2d: _adaptive_avgpool2d_function,
    # call_method: keyed by name
    "add": _add,
    "flatten": _reshape,
    "view": _reshape,
    "reshape": _reshape,
    "contiguous": _identity,
}


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
    raise _Refusal(f"unknown node kind {node.op}")


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
    nir = _nir()
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
                        raise _Refusal("a constant tensor; NIR has no constant node")
                    continue  # shape arithmetic (x.size(0)) that feeds a reshape
                exporter = _EXPORTERS.get(_exporter_key(node, st))
                if exporter is None:
                    raise _Refusal("no NIR node for this op")
                site = _Site(
                    node.name,
                    st.modules.get(str(node.target)) if node.op == "call_module" else None,
                    fx.map_arg(node.args, lambda a: env[a]),
                    fx.map_arg(node.kwargs, lambda a: env[a]),
                    env[node],
                )
                chain = exporter(site)
            except _Refusal as why:
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
    nodes["output"] = _nir().Output(output_type=np.array(env[result].shape[1:]))
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


# ---------------------------------------------------------------------------------------------
# import


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
        raise _Refusal(f"a {weight.ndim}-d weight; dtif's Linear takes a matrix")
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
    start, end = int(node.start_dim), int(node.end_dim)
    return [nn.Flatten(start + 1, end + 1 if end >= 0 else end)]


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


def _if_lambda(node: Any) -> np.ndarray:
    """dtif's lambda for a nir.IF, per neuron: spikes at r*sum(x) > v_th, i.e. sum(x) >= lambda."""
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
        raise _Refusal("IF with " + ", ".join(problems))
    lam = (np.nextafter(v_th, np.float32(np.inf)) / r).astype(np.float32)
    return np.broadcast_to(lam, np.broadcast_shapes(r.shape, v_th.shape))


def _if_neuron(name: str, lam: np.ndarray) -> SpikingNeuron:
    reduced = _per_channel(lam)
    if reduced is None:
        raise _Refusal("thresholds vary within a channel; dtif has one lambda per channel")
    return SpikingNeuron(IFParams(reset="zero"), torch.from_numpy(reduced.copy()), name)


def _build_if(name: str, node: Any) -> list[nn.Module]:
    """A lone nir.IF: a dtif IF layer, then 1/lambda so that each spike delivers 1."""
    lam = _if_lambda(node)
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
        divisor = _pool_divisor(pool, _pair(tuple(int(n) for n in in_type[1:])))
        expected = (1.0 / divisor.float()).expand(scale.shape).numpy()
        if np.allclose(scale, expected, rtol=RTOL, atol=0.0):
            return [pool]
    return None


@cache
def _import_tables() -> tuple[dict[type, Builder], dict[tuple[type, type], Fusion]]:
    nir = _nir()
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
    SumPool2d -> Scale(1/divisor) an AvgPool2d. A lone nir.IF becomes an IF layer with
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
    nir = _nir()
    graph = graph_or_path
    if not isinstance(graph, nir.NIRGraph):
        graph = nir.read(os.fspath(graph_or_path))
    builders, fusions = _import_tables()
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
                    raise _Refusal("dtif has no equivalent of this NIR node")
                chain = builder(name, node)
        except _Refusal as why:
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
    neuron = IFParams(reset="zero")
    meta = {
        "neuron": {"type": type(neuron).__name__, **dataclasses.asdict(neuron)},
        "maxpool": "error",
        "source": "nir",
    }
    return SpikingNetwork(split_static(gm), ann, input_shape, meta)
