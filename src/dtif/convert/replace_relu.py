"""ReLU passes: give every ReLU spelling its own module, then swap those for spiking neurons."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import TypeVar

import torch
import torch.nn.functional as F
from torch import fx, nn

from dtif.convert.support import CLAMP_METHODS, RELU_METHODS, is_relu, relu_cap
from dtif.errors import ConversionError
from dtif.models.qcfs import QCFS

Tap = TypeVar("Tap", bound=nn.Module)

RELU_META = "dtif.relu"
#: node.meta key of a clipped ReLU's cap m (ReLU6: 6.0); absent for a plain ReLU.
RELU_CAP_META = "dtif.relu_cap"


# Ops whose output may share memory with their input, so that an in-place ReLU on one changes
# the other: the same tensor (identity, contiguous, an in-place op), or a view of another shape.
_SAME_METHODS = {"contiguous"} | {m for m in RELU_METHODS | CLAMP_METHODS if m.endswith("_")}
_VIEW_METHODS = {"view", "reshape", "flatten"}


def _is_inplace(node: fx.Node, modules: dict[str, nn.Module]) -> bool:
    """True for a ReLU that overwrites its input: x.relu_(), nn.ReLU(inplace=True), ..."""
    if node.op == "call_module":
        return bool(getattr(modules[str(node.target)], "inplace", False))
    if node.op == "call_method":
        return str(node.target).endswith("_")
    inplace = node.kwargs.get("inplace", node.args[1] if len(node.args) > 1 else False)
    in_place_fns = (torch.relu_, F.hardtanh_)
    return node.target in in_place_fns or (
        node.target in (F.relu, F.relu6, F.hardtanh) and inplace is True
    )


def _alias_kind(node: fx.Node, modules: dict[str, nn.Module]) -> str | None:
    """The aliasing of `node`: "same" (it returns its input), "view", or None (new memory)."""
    if node.op == "call_method":
        if node.target in _SAME_METHODS:
            return "same"
        return "view" if node.target in _VIEW_METHODS else None
    if node.op == "call_module":
        mod = modules.get(str(node.target))
        if isinstance(mod, nn.Identity):
            return "same"
        return "view" if isinstance(mod, nn.Flatten) else None
    if node.op == "call_function" and node.target is torch.flatten:
        return "view"
    return None


def _aliases(
    x: fx.Node, relu: fx.Node, modules: dict[str, nn.Module], order: dict[fx.Node, int]
) -> tuple[set[fx.Node], set[fx.Node]]:
    """The nodes made before `relu` that share memory with its input `x`: (the same tensor,
    its views).

    Aliasing links a node to its input when the node returns that input ("same") or a view of
    it ("view"); the aliases of x are the nodes linked to it, "same" when every link is.
    """

    def links(n: fx.Node, same_only: bool) -> list[fx.Node]:
        out = []
        kind = _alias_kind(n, modules)
        if kind is not None and (kind == "same" or not same_only) and n.args:
            out.append(n.args[0])
        for user in n.users:
            kind = _alias_kind(user, modules)
            made_before = order[user] < order[relu]  # later views read the ReLU's output
            linked = kind == "same" or (kind == "view" and not same_only)
            if linked and made_before and user.args and user.args[0] is n:
                out.append(user)
        return [a for a in out if isinstance(a, fx.Node) and a is not relu]

    def reach(same_only: bool) -> set[fx.Node]:
        seen, todo = {x}, [x]
        while todo:
            for a in links(todo.pop(), same_only):
                if a not in seen:
                    seen.add(a)
                    todo.append(a)
        return seen

    same = reach(same_only=True)
    return same, reach(same_only=False) - same


def _apply_inplace(gm: fx.GraphModule, node: fx.Node, modules: dict[str, nn.Module]) -> None:
    """Make the data flow of an in-place ReLU explicit, as eager PyTorch runs it.

    Before: y = relu_(x); z = f(x) (or a bare `x.relu_()` statement, whose result fx drops).
    After: y = relu_(x); z = f(y). Every use, after the ReLU, of x or of a node that returns
    the same tensor (nn.Identity, contiguous) reads the ReLU's output.

    Raises:
        ConversionError: the ReLU overwrites a tensor that a view of another shape (or the
            base of such a view) shares, and that view is used after it.
    """
    x = node.args[0]
    if not isinstance(x, fx.Node):
        return
    order = {n: i for i, n in enumerate(gm.graph.nodes)}
    same, views = _aliases(x, node, modules, order)
    for a in same:
        for user in list(a.users):
            if user is not node and order[user] > order[node]:
                user.replace_input_with(a, node)
    shared = [v.name for v in views if any(order[u] > order[node] for u in v.users)]
    if shared:
        raise ConversionError(
            f"the in-place ReLU '{node.name}' overwrites '{x.name}', which shares memory with "
            f"{', '.join(sorted(shared))}, used after it; dtif cannot follow in-place writes "
            "through views. Use an out-of-place ReLU (inplace=False, F.relu, x.relu())."
        )


def canonicalize_relu(gm: fx.GraphModule) -> fx.GraphModule:
    """Give every ReLU call site its own nn.ReLU module, marked in `node.meta["dtif.relu"]`.

    Before: F.relu(x), torch.relu(x), x.relu(), x.clamp(min=0), a shared or in-place nn.ReLU;
    clipped ReLUs (ReLU6, F.relu6, Hardtanh(0, m), clamp(x, 0, m)); QCFS activations.
    After: call_module `dtif_<node>` (a fresh nn.ReLU; nn.Hardtanh(0, m) with the cap m in
    `node.meta["dtif.relu_cap"]`; or a copy of a QCFS activation, which keeps its levels and
    lambda) at each site, so each becomes one spiking layer with its own
    state. An in-place ReLU also takes the place of its input in
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
        cap = relu_cap(node, modules)
        target = f"dtif_{node.name}"
        mod = modules.get(str(node.target)) if node.op == "call_module" else None
        if isinstance(mod, QCFS):
            site: nn.Module = copy.deepcopy(mod)
        else:
            site = nn.ReLU() if cap is None else nn.Hardtanh(0.0, cap)
        gm.add_submodule(target, site)
        x = node.args[0] if node.args else node.kwargs["input"]
        node.op, node.target, node.args, node.kwargs = "call_module", target, (x,), {}
        node.meta[RELU_META] = node.name
        if cap is not None:
            node.meta[RELU_CAP_META] = cap
    gm.graph.lint()
    gm.delete_all_unused_submodules()
    gm.recompile()
    return gm


def relu_sites(gm: fx.GraphModule) -> list[fx.Node]:
    """The ReLU nodes marked by `canonicalize_relu`, in graph order."""
    return [n for n in gm.graph.nodes if RELU_META in n.meta]


def tap_relu_sites(
    gm: fx.GraphModule, make_tap: Callable[[], Tap], prefix: str
) -> tuple[fx.GraphModule, list[Tap]]:
    """A copy of `gm` with `make_tap()` applied to the output of every marked ReLU.

    Returns the copy and the taps, in graph order; `gm` is left untouched.
    """
    tapped = copy.deepcopy(gm)
    taps = []
    for node in relu_sites(tapped):
        tap = make_tap()
        name = f"{prefix}_{node.name}"
        tapped.add_submodule(name, tap)
        with tapped.graph.inserting_after(node):
            new = tapped.graph.call_module(name, (node,))
        node.replace_all_uses_with(new, delete_user_cb=lambda user, new=new: user is not new)
        taps.append(tap)
    tapped.recompile()
    return tapped, taps


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
