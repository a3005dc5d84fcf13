"""Fold multiplication and division by a number into the conv/linear layer next to it."""

from __future__ import annotations

from torch import fx, nn

from dtif.convert.fold_bn import module_calls, private_module
from dtif.convert.support import DIV_FUNCTIONS, DIV_METHODS, LINEAR_MODULES, is_scale_by


def _factor(node: fx.Node) -> tuple[fx.Node, float] | None:
    """(the tensor operand, the factor) of x * c, c * x or x / c with c a number; else None."""
    number = is_scale_by(node)
    if number is None:
        return None
    x, c = number
    divide = node.target in DIV_FUNCTIONS or node.target in DIV_METHODS
    return x, (1.0 / c if divide else float(c))


def _layer(node: object, modules: dict[str, nn.Module]) -> bool:
    return (
        isinstance(node, fx.Node)
        and node.op == "call_module"
        and isinstance(modules[str(node.target)], LINEAR_MODULES)
    )


def fold_constant_scales(gm: fx.GraphModule) -> fx.GraphModule:
    """Fold x * c and x / c (c a number) into the conv/linear before or after it.

    Before: conv -> (* c) -> relu.  After: conv' -> relu, with conv' = c * conv (W and b).
    Before: relu -> (* c) -> conv.  After: relu -> conv', with W' = c W (zero padding stays
    zero). A scaling with no such neighbour stays in the graph: it is linear, so it converts
    exactly as it is.
    """
    modules = dict(gm.named_modules())
    calls = module_calls(gm)
    for node in list(gm.graph.nodes):
        found = _factor(node)
        if found is None:
            continue
        x, c = found
        users = list(node.users)
        if _layer(x, modules) and len(x.users) == 1:
            layer = private_module(gm, x, modules, calls)
            layer.weight = nn.Parameter(layer.weight.detach() * c)
            if layer.bias is not None:
                layer.bias = nn.Parameter(layer.bias.detach() * c)
        elif len(users) == 1 and _layer(users[0], modules) and users[0].args[:1] == (node,):
            layer = private_module(gm, users[0], modules, calls)
            layer.weight = nn.Parameter(layer.weight.detach() * c)
        else:
            continue
        node.replace_all_uses_with(x)
        gm.graph.erase_node(node)
    gm.graph.lint()
    gm.delete_all_unused_submodules()
    gm.recompile()
    return gm
