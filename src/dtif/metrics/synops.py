"""Exact synaptic fan-out and MAC counts.

The fan-out of a spike is the number of synapses it touches on its way to the next spiking
layers (or the output layer): for a conv, every output position and channel that its input
element feeds, borders included; for a linear layer, the output features. Average pooling is
folded into the layer that follows it. The map from one spiking layer's output to the next
layers' inputs is linear, so with every weight set to 1, biases to 0 and average pools turned
into sum pools, the gradient of the sum of those inputs with respect to the layer's output is
exactly the fan-out of each element.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import fx, nn

from dtif.nn.context import RunContext, TimeAware, bind


def _window_sizes(size_in: int, size_out: int) -> torch.Tensor:
    starts = [math.floor(i * size_in / size_out) for i in range(size_out)]
    ends = [math.ceil((i + 1) * size_in / size_out) for i in range(size_out)]
    return torch.tensor([e - s for s, e in zip(starts, ends)], dtype=torch.float32)


class SumAdaptivePool(nn.Module):
    """Adaptive average pooling times its window sizes: a sum over each window."""

    def __init__(self, output_size: int | Sequence[int | None] | None, dims: int) -> None:
        super().__init__()
        self.output_size = output_size
        self.dims = dims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fn = F.adaptive_avg_pool1d if self.dims == 1 else F.adaptive_avg_pool2d
        out = fn(x, self.output_size)  # type: ignore[arg-type]  # sizes checked by torch
        count = torch.ones((), device=x.device)
        for d in range(self.dims):
            sizes = _window_sizes(x.shape[-self.dims + d], out.shape[-self.dims + d])
            shape = [1] * self.dims
            shape[d] = -1
            count = count * sizes.to(x.device).view(shape)
        return out * count


class SumPool1d(nn.Module):
    """AvgPool1d times its kernel size (exact when no padding is excluded from the count)."""

    def __init__(self, pool: nn.AvgPool1d) -> None:
        super().__init__()
        self.pool = nn.AvgPool1d(
            pool.kernel_size, pool.stride, pool.padding, pool.ceil_mode, count_include_pad=True
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(x) * float(self.pool.kernel_size[0])


def _structural_module(mod: nn.Module) -> nn.Module | None:
    """The structural twin of a linear module, or None to keep it."""
    if isinstance(mod, (nn.Conv1d, nn.Conv2d, nn.Linear)):
        twin = copy.deepcopy(mod)
        # fresh tensors: the originals may be inference tensors, which autograd cannot save
        twin.weight = nn.Parameter(torch.ones(mod.weight.shape, device=mod.weight.device))
        twin.bias = None
        return twin
    if isinstance(mod, nn.AvgPool2d):
        return nn.AvgPool2d(
            mod.kernel_size, mod.stride, mod.padding, mod.ceil_mode, True, divisor_override=1
        )
    if isinstance(mod, nn.AvgPool1d):
        return SumPool1d(mod)
    if isinstance(mod, nn.AdaptiveAvgPool2d):
        return SumAdaptivePool(mod.output_size, 2)
    if isinstance(mod, nn.AdaptiveAvgPool1d):
        return SumAdaptivePool(mod.output_size, 1)
    return None


def structural_copy(gm: fx.GraphModule) -> fx.GraphModule:
    """A copy of `gm` whose linear maps count synapses: weights 1, no biases, sum pools."""
    with torch.inference_mode(False):
        twin = copy.deepcopy(gm)
    for name, mod in list(twin.named_modules()):
        new = _structural_module(mod)
        if new is not None and name:
            twin.add_submodule(name, new)
    for node in twin.graph.nodes:
        if node.op != "call_function":
            continue
        if node.target is F.avg_pool2d:
            node.kwargs = {**node.kwargs, "divisor_override": 1}
        elif node.target in (F.adaptive_avg_pool2d, F.adaptive_avg_pool1d):
            dims = 2 if node.target is F.adaptive_avg_pool2d else 1
            name = f"sum_{node.name}"
            size = node.args[1] if len(node.args) > 1 else node.kwargs["output_size"]
            twin.add_submodule(name, SumAdaptivePool(size, dims))
            node.op, node.target, node.args, node.kwargs = "call_module", name, node.args[:1], {}
        elif node.target is F.avg_pool1d:
            kernel = node.args[1] if len(node.args) > 1 else node.kwargs["kernel_size"]
            k = kernel[0] if isinstance(kernel, (tuple, list)) else kernel
            with twin.graph.inserting_after(node):
                scaled = twin.graph.call_function(torch.mul, (node, float(k)))
            node.replace_all_uses_with(scaled, delete_user_cb=lambda u, s=scaled: u is not s)
    twin.recompile()
    return twin


def measure_fanout(
    dynamic: fx.GraphModule, boundary: Sequence[torch.Tensor]
) -> dict[str, torch.Tensor]:
    """The fan-out of every element of every time-aware layer's output.

    Args:
        dynamic: the dynamic half of a spiking network.
        boundary: its inputs for one sample, [1, ...] each.

    Returns:
        Fan-out per output element, [1, ...], by layer name.
    """
    with torch.inference_mode(False):  # the caller may be in inference mode
        twin = structural_copy(dynamic)
    layers = [m for m in twin.modules() if isinstance(m, TimeAware)]
    ctx = RunContext(batch_size=1, num_steps=1, mode="fanout")
    with torch.inference_mode(False), torch.enable_grad(), bind(layers, ctx):
        out = twin(*[torch.ones(b.shape, dtype=b.dtype, device=b.device) for b in boundary])
        outs = [o for o in torch.utils._pytree.tree_leaves(out) if isinstance(o, torch.Tensor)]
        total = sum(o.sum() for o in outs) + sum(ctx.fanout_terms)
        leaves = list(ctx.fanout_leaves.items())
        if not leaves:
            return {}
        grads = torch.autograd.grad(total, [leaf for _, leaf in leaves], allow_unused=True)
    return {
        name: (torch.zeros_like(leaf) if g is None else g).detach()
        for (name, leaf), g in zip(leaves, grads)
    }


def count_macs(module: nn.Module, *inputs: torch.Tensor) -> int:
    """Multiply-accumulates of the Conv and Linear layers of `module` for one sample.

    Args:
        module: the network (or a part of it).
        inputs: its inputs, [1, ...] each.
    """
    total = 0

    def hook(mod: nn.Module, args: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal total
        if isinstance(mod, (nn.Conv1d, nn.Conv2d)):
            per_output = mod.in_channels // mod.groups * math.prod(mod.kernel_size)
            total += out.numel() // out.shape[0] * per_output
        elif isinstance(mod, nn.Linear):
            total += out.numel() // out.shape[0] * mod.in_features

    handles = [
        m.register_forward_hook(hook)
        for m in module.modules()
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear))
    ]
    try:
        with torch.inference_mode():
            module(*inputs)
    finally:
        for h in handles:
            h.remove()
    return total
