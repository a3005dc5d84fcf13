"""Fold BatchNorm into the preceding Conv or Linear layer (eval statistics)."""

from __future__ import annotations

import copy

import torch
from torch import fx, nn

from dtif.convert.support import BN_MODULES, LINEAR_MODULES
from dtif.errors import ConversionError

#: node.meta key on a Linear that a BN before it was folded into: the BN's name. The fold is
#: exact on [N, C] inputs only; `build_snn` checks the input's shape.
BN_BEFORE_LINEAR_META = "dtif.bn_before_linear"


def fold_bn_weights(
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    mean: torch.Tensor,
    var: torch.Tensor,
    eps: float,
    gamma: torch.Tensor | None,
    beta: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fold y = gamma * (Wx + b - mean) / sqrt(var + eps) + beta into one affine map.

    Args:
        weight: [C_out, ...] conv or linear weight.
        bias: [C_out] or None.
        mean, var: [C_out] running statistics.
        eps: the BN epsilon.
        gamma, beta: [C_out] affine parameters, or None when BN has none.

    Returns:
        (weight, bias) of the folded layer.
    """
    gamma = torch.ones_like(mean) if gamma is None else gamma
    beta = torch.zeros_like(mean) if beta is None else beta
    bias = torch.zeros_like(mean) if bias is None else bias
    factor = gamma / torch.sqrt(var + eps)
    w = weight * factor.reshape(-1, *([1] * (weight.ndim - 1)))
    return w, (bias - mean) * factor + beta


def fold_bn_into_next(
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    mean: torch.Tensor,
    var: torch.Tensor,
    eps: float,
    gamma: torch.Tensor | None,
    beta: torch.Tensor | None,
    groups: int = 1,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fold a BN that feeds a layer: W(a * y + c) + b = (W a) y + (b + W c), per input channel.

    Exact for a linear layer and for a conv without zero padding (a padded zero would become
    c after the BN, but stays 0 in the folded conv).

    Args:
        weight: [C_out, C_in / groups, ...] conv or [C_out, C_in] linear weight.
        bias: [C_out] or None.
        mean, var: [C_in] running statistics of the BN.
        eps: the BN epsilon.
        gamma, beta: [C_in] affine parameters, or None when BN has none.
        groups: the conv's groups.

    Returns:
        (weight, bias) of the folded layer.
    """
    gamma = torch.ones_like(mean) if gamma is None else gamma
    beta = torch.zeros_like(mean) if beta is None else beta
    a = gamma / torch.sqrt(var + eps)
    c = beta - mean * a
    c_out, c_in_group = weight.shape[0], weight.shape[1]
    # the input channel of weight[o, j]: group (o // (C_out / groups)), offset j
    group = torch.arange(c_out, device=weight.device) // (c_out // groups)
    channel = group[:, None] * c_in_group + torch.arange(c_in_group, device=weight.device)
    view = (c_out, c_in_group, *([1] * (weight.ndim - 2)))
    w = weight * a[channel].reshape(view)
    shift = (weight * c[channel].reshape(view)).flatten(1).sum(1)
    b = torch.zeros(c_out, dtype=weight.dtype, device=weight.device) if bias is None else bias
    return w, b + shift


def _fold_into(layer: nn.Module, bn: nn.Module) -> None:
    w, b = fold_bn_weights(
        layer.weight.detach(),
        None if layer.bias is None else layer.bias.detach(),
        bn.running_mean,
        bn.running_var,
        bn.eps,
        None if bn.weight is None else bn.weight.detach(),
        None if bn.bias is None else bn.bias.detach(),
    )
    layer.weight = nn.Parameter(w)
    layer.bias = nn.Parameter(b)


def _fold_into_next(layer: nn.Module, bn: nn.Module, flat: bool) -> None:
    """`flat`: a flatten lies between, so each BN channel covers in_features / C features."""
    repeat = layer.weight.shape[1] // bn.num_features if flat else 1

    def per_feature(t: torch.Tensor | None) -> torch.Tensor | None:
        return None if t is None else t.detach().repeat_interleave(repeat)

    w, b = fold_bn_into_next(
        layer.weight.detach(),
        None if layer.bias is None else layer.bias.detach(),
        per_feature(bn.running_mean),  # type: ignore[arg-type]  # checked by the caller
        per_feature(bn.running_var),  # type: ignore[arg-type]
        bn.eps,
        per_feature(bn.weight),
        per_feature(bn.bias),
        getattr(layer, "groups", 1),
    )
    layer.weight = nn.Parameter(w)
    layer.bias = nn.Parameter(b)


def _unpadded(layer: nn.Module) -> bool:
    padding = getattr(layer, "padding", 0)
    if isinstance(padding, str):  # "valid" or "same"
        return padding == "valid"
    pads = padding if isinstance(padding, tuple) else (padding,)
    return all(p == 0 for p in pads)


def _is_flatten_1(node: fx.Node, modules: dict[str, nn.Module]) -> bool:
    """nn.Flatten(), torch.flatten(x, 1) or x.flatten(1): [N, C, ...] -> [N, C * ...]."""
    if node.op == "call_module":
        mod = modules[str(node.target)]
        return isinstance(mod, nn.Flatten) and mod.start_dim == 1 and mod.end_dim == -1
    is_function = node.op == "call_function" and node.target is torch.flatten
    if is_function or (node.op == "call_method" and node.target == "flatten"):
        start = node.args[1] if len(node.args) > 1 else node.kwargs.get("start_dim", 0)
        end = node.args[2] if len(node.args) > 2 else node.kwargs.get("end_dim", -1)
        return start == 1 and end == -1
    return False


def _only_reader(node: fx.Node) -> fx.Node | None:
    if len(node.users) != 1:
        return None
    (user,) = node.users
    return user if user.args[:1] == (node,) else None


def _next_layer(node: fx.Node, modules: dict[str, nn.Module]) -> tuple[fx.Node, bool] | None:
    """The one Conv/Linear (without zero padding) that reads `node`, directly or (a Linear)
    through a flatten of dims 1.., with True in the second case; None when there is none."""
    user = _only_reader(node)
    if user is None:
        return None
    flat = _is_flatten_1(user, modules)
    if flat:
        user = _only_reader(user)
        if user is None:
            return None
    if user.op != "call_module":
        return None
    layer = modules[str(user.target)]
    if flat and not isinstance(layer, nn.Linear):
        return None
    return (user, flat) if isinstance(layer, LINEAR_MODULES) and _unpadded(layer) else None


def module_calls(gm: fx.GraphModule) -> dict[str, int]:
    """How many call sites each module has."""
    calls: dict[str, int] = {}
    for node in gm.graph.nodes:
        if node.op == "call_module":
            calls[str(node.target)] = calls.get(str(node.target), 0) + 1
    return calls


def private_module(
    gm: fx.GraphModule, node: fx.Node, modules: dict[str, nn.Module], calls: dict[str, int]
) -> nn.Module:
    """The module of `node`, copied first when other call sites share it."""
    target = str(node.target)
    if calls[target] > 1:  # a conv shared between call sites: fold into a private copy
        calls[target] -= 1
        new = f"{target.replace('.', '_')}_{node.name}"
        gm.add_submodule(new, copy.deepcopy(modules[target]))
        node.target = new
        modules[new] = gm.get_submodule(new)
        calls[new] = 1
        target = new
    return modules[target]


def fold_batchnorm(gm: fx.GraphModule) -> fx.GraphModule:
    """Fold every BatchNorm node into the Conv/Linear node that feeds it, or else (a BN after
    a ReLU) into the Conv/Linear node that reads it.

    Before: conv -> bn -> relu.  After: conv' -> relu, with conv' = bn o conv.
    Before: relu -> bn -> conv (no zero padding).  After: relu -> conv', with conv' = conv o bn.

    Raises:
        ConversionError: a BN that neither directly follows a Conv/Linear (whose output has
            no other use) nor directly feeds one without zero padding, or that has no running
            statistics.
    """
    modules = dict(gm.named_modules())
    calls = module_calls(gm)
    for node in list(gm.graph.nodes):
        if node.op != "call_module" or not isinstance(modules[str(node.target)], BN_MODULES):
            continue
        bn = modules[str(node.target)]
        prev = node.args[0]
        where = f"BatchNorm '{node.target}'"
        if bn.running_mean is None or bn.running_var is None:
            raise ConversionError(
                f"{where} has no running statistics (track_running_stats=False); dtif folds "
                "eval statistics. Train with track_running_stats=True."
            )
        follows = (
            isinstance(prev, fx.Node)
            and prev.op == "call_module"
            and isinstance(modules[str(prev.target)], LINEAR_MODULES)
        )
        if follows and len(prev.users) == 1:
            _fold_into(private_module(gm, prev, modules, calls), bn)
            node.replace_all_uses_with(prev)
            gm.graph.erase_node(node)
            continue
        found = _next_layer(node, modules)
        if found is not None and (
            not found[1] or modules[str(found[0].target)].weight.shape[1] % bn.num_features == 0
        ):
            nxt, flat = found
            layer = private_module(gm, nxt, modules, calls)
            _fold_into_next(layer, bn, flat)
            if isinstance(layer, nn.Linear) and not flat:
                nxt.meta[BN_BEFORE_LINEAR_META] = str(node.target)
            node.replace_all_uses_with(prev)
            gm.graph.erase_node(node)
            continue
        if follows:
            raise ConversionError(
                f"{where} follows '{prev.target}', whose output is also used elsewhere; folding "
                "would change that other use. Give the BN its own conv."
            )
        raise ConversionError(
            f"{where} does not directly follow a Conv or Linear layer, nor directly feed one "
            "without zero padding as its only reader, so it cannot be folded exactly; place each "
            "BatchNorm right after a conv/linear layer, or right before an unpadded one"
        )
    gm.graph.lint()
    gm.delete_all_unused_submodules()
    gm.recompile()
    return gm
