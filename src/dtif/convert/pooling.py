"""Pooling passes: the max-pool policy, and the faster twin of the common 2x2 average pool.

Max-pool policy: make every max-pool a module, then swap it for average pooling if asked.
Fast pools: every plain 2x2 AvgPool2d becomes `AvgPool2x2` (same values, faster on CPU). The
swap is made in the reference ANN, so the simulation and the dense ANN it is compared with
both use it.
"""

from __future__ import annotations

from torch import fx, nn

from dtif.convert.options import MaxPoolPolicy
from dtif.convert.support import MAXPOOL_FUNCTIONS, is_maxpool
from dtif.errors import ConversionError
from dtif.nn.pooling import AvgPool2x2

_AVG = {1: nn.AvgPool1d, 2: nn.AvgPool2d}
_MAX = {1: nn.MaxPool1d, 2: nn.MaxPool2d}


def _pool_kwargs(node: fx.Node) -> dict[str, object]:
    names = ("kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices")
    kw = dict(zip(names, node.args[1:]))
    kw.update(node.kwargs)
    return kw


def apply_pool_policy(gm: fx.GraphModule, policy: MaxPoolPolicy) -> fx.GraphModule:
    """Turn functional max-pools into modules; with policy "avg", swap them for AvgPool.

    Before: max_pool2d(x, 2).  After ("gate"/"error"): MaxPool2d module; ("avg"): AvgPool2d.

    Raises:
        ConversionError: "avg" asked for a dilated max-pool, which has no average twin.
    """
    modules = dict(gm.named_modules())
    for node in list(gm.graph.nodes):
        if not is_maxpool(node, modules):
            continue
        if node.op == "call_function" and node.target in MAXPOOL_FUNCTIONS:
            dims = 1 if "1d" in node.target.__name__ else 2
            kw = _pool_kwargs(node)
            if kw.pop("return_indices", False):
                raise ConversionError(f"max-pool '{node.name}' returns indices; not supported")
            name = f"maxpool_{node.name}"
            gm.add_submodule(name, _MAX[dims](**kw))  # type: ignore[arg-type]  # fx kwargs
            node.op, node.target, node.args, node.kwargs = "call_module", name, node.args[:1], {}
            modules[name] = gm.get_submodule(name)
        if policy != "avg":
            continue
        pool = modules[str(node.target)]
        dilation = pool.dilation if isinstance(pool.dilation, tuple) else (pool.dilation,)
        if any(d != 1 for d in dilation):
            raise ConversionError(
                f"max-pool '{node.target}' is dilated; average pooling has no dilation. "
                "Use maxpool='gate'."
            )
        dims = 1 if isinstance(pool, nn.MaxPool1d) else 2
        avg = _AVG[dims](
            pool.kernel_size,
            pool.stride,
            pool.padding,
            ceil_mode=pool.ceil_mode,
            count_include_pad=False,
        )
        gm.add_submodule(str(node.target), avg)
    gm.graph.lint()
    gm.recompile()
    return gm


def _is_plain_2x2(pool: nn.Module) -> bool:
    """An nn.AvgPool2d with kernel 2, stride 2, no padding, floor mode and no divisor override."""
    if type(pool) is not nn.AvgPool2d:
        return False

    def pair(v: object) -> tuple[object, ...]:  # 2, (2, 2) and [2, 2] alike
        return tuple(v) if isinstance(v, (tuple, list)) else (v, v)

    return (
        pair(pool.kernel_size) == (2, 2)
        and pair(pool.stride) == (2, 2)
        and pair(pool.padding) == (0, 0)
        and not pool.ceil_mode
        and pool.divisor_override is None
    )


def use_fast_pools(gm: fx.GraphModule) -> fx.GraphModule:
    """Swap every plain 2x2 AvgPool2d module for `AvgPool2x2` (same values, faster on CPU)."""
    modules = dict(gm.named_modules())
    for node in gm.graph.nodes:
        if node.op == "call_module" and _is_plain_2x2(modules[str(node.target)]):
            gm.add_submodule(str(node.target), AvgPool2x2())
    return gm
