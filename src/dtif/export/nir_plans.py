"""The portable NIR encoding, first pass: what each fx node becomes (`Plan`), or why no reader
can run it (`Refusal`). The table `PLANS` maps module types, functions and method names."""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import fx, nn

from dtif.export.nir_common import NO_NIR_NODE, Refusal, check_nir_neuron, pair
from dtif.nn.layers import RepeatTime, SpikeMaxPool
from dtif.nn.neuron import SpikingNeuron
from dtif.nn.scale import Scale


@dataclass
class Plan:
    """What one fx node becomes: its kind and what the kind needs."""

    kind: Literal["affine", "pool", "reshape", "pass", "add", "neuron", "scale"]
    module: nn.Module | None = None
    area: float = 1.0  # pool: what the window's sum is divided by
    window: tuple[tuple[int, int], tuple[int, int]] = ((1, 1), (1, 1))  # pool: kernel, stride
    in_shape: tuple[int, ...] = ()
    out_shape: tuple[int, ...] = ()


def conv_padding(mod: nn.Conv1d | nn.Conv2d) -> tuple[int, ...]:
    """The zero padding per side of each spatial dim; refuses what readers cannot pad."""
    if mod.padding_mode != "zeros":
        raise Refusal(f"padding_mode={mod.padding_mode!r}; NIR convolutions pad with zeros")
    if not isinstance(mod.padding, str):
        return tuple(int(p) for p in mod.padding)
    if mod.padding == "valid":
        return (0,) * len(mod.kernel_size)
    total = [d * (k - 1) for d, k in zip(mod.dilation, mod.kernel_size, strict=True)]
    if any(t % 2 for t in total):
        raise Refusal("padding='same' with an even kernel pads one side more; readers pad both")
    return tuple(t // 2 for t in total)


def _plan_affine(plan: Plan) -> Plan:
    mod = plan.module
    if isinstance(mod, (nn.Conv1d, nn.Conv2d)):
        conv_padding(mod)
    elif isinstance(mod, nn.Linear) and len(plan.in_shape) != 1:
        raise Refusal(f"Linear on a {len(plan.in_shape)}-d sample; NIR's Affine takes vectors")
    return dataclasses.replace(plan, kind="affine")


def _pool_plan(plan: Plan, pool: nn.AvgPool2d) -> Plan:
    k, s, p = pair(pool.kernel_size), pair(pool.stride or pool.kernel_size), pair(pool.padding)
    if len(plan.in_shape) != 3:
        raise Refusal("2-d pooling of a sample that is not [C, H, W]")
    if p != (0, 0):
        raise Refusal(
            f"padding={p}: the readers' SumPool2d (nirtorch, Norse) drops the padding; "
            "use padding=0 or export with portable=False"
        )
    floor = tuple((n - kk) // ss + 1 for n, kk, ss in zip(plan.in_shape[1:], k, s, strict=True))
    if plan.out_shape[1:] != floor:
        raise Refusal("ceil_mode=True changes the output size; NIR's SumPool2d floors it")
    area = float(pool.divisor_override or k[0] * k[1])
    return dataclasses.replace(plan, kind="pool", area=area, window=(k, s))


def _adaptive_pool(plan: Plan, output_size: Any) -> nn.AvgPool2d:
    h, w = plan.in_shape[-2:]
    size = (output_size, output_size) if isinstance(output_size, int) else tuple(output_size)
    oh, ow = size[0] or h, size[-1] or w
    if h % oh or w % ow:
        raise Refusal(f"adaptive pooling from {h}x{w} to {oh}x{ow} has windows of unequal size")
    return nn.AvgPool2d((h // oh, w // ow), (h // oh, w // ow))


def _plan_avgpool(plan: Plan) -> Plan:
    assert isinstance(plan.module, nn.AvgPool2d)  # noqa: S101 - the table keys by type
    return _pool_plan(plan, plan.module)


def _plan_adaptive(plan: Plan) -> Plan:
    assert isinstance(plan.module, nn.AdaptiveAvgPool2d)  # noqa: S101 - table keys by type
    return _pool_plan(plan, _adaptive_pool(plan, plan.module.output_size))


def _plan_neuron(plan: Plan) -> Plan:
    mod = plan.module
    assert isinstance(mod, SpikingNeuron)  # noqa: S101 - the table keys by type
    check_nir_neuron(mod)
    return dataclasses.replace(plan, kind="neuron")


def _plan_maxpool(plan: Plan) -> Plan:
    raise Refusal("spiking max-pool gate; NIR has no max-pool node. Convert with maxpool='avg'")


def _plan_add(plan: Plan) -> Plan:
    return dataclasses.replace(plan, kind="add")


def _plan_pass(plan: Plan) -> Plan:
    return dataclasses.replace(plan, kind="pass")


def _plan_reshape(plan: Plan) -> Plan:
    if plan.in_shape != plan.out_shape and flatten_dims(plan.in_shape, plan.out_shape) is None:
        raise Refusal(
            f"reshape {list(plan.in_shape)} -> {list(plan.out_shape)} is not a flatten of "
            "adjacent dims"
        )
    return dataclasses.replace(plan, kind="reshape")


def _plan_scale(plan: Plan) -> Plan:
    return dataclasses.replace(plan, kind="scale")


PLANS: dict[Any, Callable[[Plan], Plan]] = {  # by module type, function or method name
    nn.Conv1d: _plan_affine,
    nn.Conv2d: _plan_affine,
    nn.Linear: _plan_affine,
    nn.AvgPool2d: _plan_avgpool,  # and its subclass AvgPool2x2
    nn.AdaptiveAvgPool2d: _plan_adaptive,
    nn.Flatten: _plan_reshape,
    nn.Identity: _plan_pass,
    RepeatTime: _plan_pass,
    SpikingNeuron: _plan_neuron,
    SpikeMaxPool: _plan_maxpool,
    Scale: _plan_scale,
    operator.add: _plan_add,
    torch.add: _plan_add,
    torch.flatten: _plan_reshape,
    "add": _plan_add,
    "flatten": _plan_reshape,
    "view": _plan_reshape,
    "reshape": _plan_reshape,
    "contiguous": _plan_pass,
}


def flatten_dims(src: tuple[int, ...], dst: tuple[int, ...]) -> tuple[int, int] | None:
    """(start, end), both >= 0, of the flatten that turns shape src into dst, or None."""
    for start in range(len(src)):
        for end in range(start + 1, len(src)):
            merged = (*src[:start], int(np.prod(src[start : end + 1])), *src[end + 1 :])
            if merged == dst:
                return start, end
    return None


def plan_node(node: fx.Node, env: dict[fx.Node, Any], modules: dict[str, nn.Module]) -> Plan:
    """The plan of one fx node whose output (in `env`, batch first) is a tensor.

    Raises:
        Refusal: no reader runs this node; the message says why and how to fix it.
    """
    module = modules.get(str(node.target)) if node.op == "call_module" else None
    key = type(module) if module is not None else node.target
    if isinstance(module, nn.AvgPool2d):
        key = nn.AvgPool2d
    tensors = [a for a in node.all_input_nodes if isinstance(env.get(a), torch.Tensor)]
    base = Plan(
        "pass",
        module,
        in_shape=tuple(env[tensors[0]].shape[1:]) if tensors else (),
        out_shape=tuple(env[node].shape[1:]),
    )
    if node.target is F.avg_pool2d:
        return _pool_plan(base, nn.AvgPool2d(*node.args[1:], **node.kwargs))
    if node.target is F.adaptive_avg_pool2d:
        size = node.args[1] if len(node.args) > 1 else node.kwargs["output_size"]
        return _pool_plan(base, _adaptive_pool(base, size))
    if node.target in (operator.add, torch.add, "add"):
        if len(tensors) != 2 or len(node.args) + len(node.kwargs) != 2:
            raise Refusal("only the sum of two tensors maps to NIR (as two edges into one node)")
        if any(env[t].shape != env[node].shape for t in tensors):
            raise Refusal("a broadcasting add; NIR sums inputs of equal shape")
    handler = PLANS.get(key)
    if handler is None:
        raise Refusal(NO_NIR_NODE.get(key, "no NIR node that readers run for this op"))
    return handler(base)
