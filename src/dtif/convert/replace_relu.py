"""ReLU passes: give every ReLU spelling its own module, then swap those for spiking neurons."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import fx, nn

from dtif.convert.support import CLAMP_METHODS, RELU_METHODS, is_relu
from dtif.errors import ConversionError

RELU_META = "dtif.relu"


# ops whose output may share memory with their input (an in-place ReLU on one changes both)
_ALIAS_METHODS = {"view", "reshape", "flatten", "contiguous"}
_ALIAS_MODULES: tuple[type[nn.Module], ...] = (nn.Flatten, nn.Identity)


def _is_inplace(node: fx.Node, modules: dict[str, nn.Module]) -> bool:
    """True for a ReLU that overwrites its input: x.relu_(), nn.ReLU(inplace=True), ..."""
    if node.op == "call_module":
        return bool(getattr(modules[str(node.target)], "inplace", False))
    if node.op == "call_method":
        return str(node.target).endswith("_")
    inplace = node.kwargs.get("inplace", node.args[1] if len(node.args) > 1 else False)
    return node.target is torch.relu_ or (node.target is F.relu and inplace is True)


def _is_alias(node: fx.Node, modules: dict[str, nn.Module]) -> bool:
    if node.op == "call_method":
        return node.target in _ALIAS_METHODS or (
            node.target in RELU_METHODS | CLAMP_METHODS and str(node.target).endswith("_")
        )
    if node.op == "call_module":
        return isinstance(modules.get(str(node.target)), _ALIAS_MODULES)
    return node.op == "call_function" and node.target is torch.flatten


def _aliases(x: fx.Node, relu: fx.Node, modules: dict[str, nn.Module]) -> set[fx.Node]:
    """The nodes other than `relu` that may share memory with `x`: its view chain up to the
    base, and every view of that base."""
    base = x
    while _is_alias(base, modules) and isinstance(base.args[0], fx.Node):
        base = base.args[0]
    seen, todo = {base}, [base]
    while todo:
        for user in todo.pop().users:
            if user is relu:
                continue
            if user not in seen and _is_alias(user, modules) and user.args[0] in seen:
                seen.add(user)
                todo.append(user)
    return seen


def _apply_inplace(gm: fx.GraphModule, node: fx.Node, modules: dict[str, nn.Module]) -> None:
    """Make the data flow of an in-place ReLU explicit, as eager PyTorch runs it.

    Before: y = relu_(x); z = f(x) (or a bare `x.relu_()` statement, whose result fx drops).
    After: y = relu_(x); z = f(y). Every use of x after the ReLU reads the ReLU's output.

    Raises:
        ConversionError: the ReLU overwrites a tensor that shares memory with another value
            used later (a view, or the base of a view); dtif cannot tell what that value holds.
    """
    x = node.args[0]
    if not isinstance(x, fx.Node):
        return
    order = {n: i for i, n in enumerate(gm.graph.nodes)}
    for user in list(x.users):
        if user is not node and order[user] > order[node]:
            user.replace_input_with(x, node)
    shared = [
        a.name
        for a in _aliases(x, node, modules) - {x}
        if any(order[u] > order[node] for u in a.users)
    ]
    if shared:
        raise ConversionError(
            f"the in-place ReLU '{node.name}' overwrites '{x.name}', which shares memory with "
            f"{', '.join(sorted(shared))}, used after it; dtif cannot follow in-place writes "
            "through views. Use an out-of-place ReLU (inplace=False, F.relu, x.relu())."
        )


def canonicalize_relu(gm: fx.GraphModule) -> fx.GraphModule:
    """Give every ReLU call site its own nn.ReLU module, marked in `node.meta["dtif.relu"]`.

    Before: F.relu(x), torch.relu(x), x.relu(), x.clamp(min=0), a shared or in-place nn.ReLU.
    After: call_module `dtif_<node>` (a fresh nn.ReLU) at each site, so each becomes one
    spiking layer with its own state. An in-place ReLU also takes the place of its input in
    every later use (see `_apply_inplace`), since in eager PyTorch they read the ReLU'd tensor.

    Raises:
        ConversionError: an in-place ReLU writes through a view that is used later.
    """
    modules = dict(gm.named_modules())
    for node in list(gm.graph.nodes):
        if not is_relu(node, modules):
            continue
        if _is_inplace(node, modules):
            _apply_inplace(gm, node, modules)
        target = f"dtif_{node.name}"
        gm.add_submodule(target, nn.ReLU())
        node.op, node.target, node.args, node.kwargs = "call_module", target, node.args[:1], {}
        node.meta[RELU_META] = node.name
    gm.graph.lint()
    gm.delete_all_unused_submodules()
    gm.recompile()
    return gm


def relu_sites(gm: fx.GraphModule) -> list[fx.Node]:
    """The ReLU nodes marked by `canonicalize_relu`, in graph order."""
    return [n for n in gm.graph.nodes if RELU_META in n.meta]


def replace_relu(
    gm: fx.GraphModule, make_neuron: Callable[[int, fx.Node], nn.Module]
) -> fx.GraphModule:
    """Swap each marked ReLU module for `make_neuron(index, node)`.

    Before: x -> ReLU -> y.  After: x -> SpikingNeuron -> y (same target name).
    """
    for i, node in enumerate(relu_sites(gm)):
        gm.add_submodule(str(node.target), make_neuron(i, node))
    gm.recompile()
    return gm
