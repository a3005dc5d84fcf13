"""Fold BatchNorm into the preceding Conv or Linear layer (eval statistics)."""

from __future__ import annotations

import copy

import torch
from torch import fx, nn

from dtif.convert.support import BN_MODULES, LINEAR_MODULES
from dtif.errors import ConversionError


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


def fold_batchnorm(gm: fx.GraphModule) -> fx.GraphModule:
    """Fold every BatchNorm node into the Conv/Linear node that feeds it.

    Before: conv -> bn -> relu.  After: conv' -> relu, with conv' = bn o conv.

    Raises:
        ConversionError: a BN that does not directly follow a Conv/Linear, whose input is also
            used elsewhere, or that has no running statistics.
    """
    modules = dict(gm.named_modules())
    calls: dict[str, int] = {}
    for node in gm.graph.nodes:
        if node.op == "call_module":
            calls[str(node.target)] = calls.get(str(node.target), 0) + 1
    for node in list(gm.graph.nodes):
        if node.op != "call_module" or not isinstance(modules[str(node.target)], BN_MODULES):
            continue
        bn = modules[str(node.target)]
        prev = node.args[0]
        where = f"BatchNorm '{node.target}'"
        if not (
            isinstance(prev, fx.Node)
            and prev.op == "call_module"
            and isinstance(modules[str(prev.target)], LINEAR_MODULES)
        ):
            raise ConversionError(
                f"{where} does not directly follow a Conv or Linear layer, so it cannot be "
                "folded; place each BatchNorm right after a conv/linear layer"
            )
        if len(prev.users) > 1:
            raise ConversionError(
                f"{where} follows '{prev.target}', whose output is also used elsewhere; folding "
                "would change that other use. Give the BN its own conv."
            )
        if bn.running_mean is None or bn.running_var is None:
            raise ConversionError(
                f"{where} has no running statistics (track_running_stats=False); dtif folds "
                "eval statistics. Train with track_running_stats=True."
            )
        target = str(prev.target)
        if calls[target] > 1:  # a conv shared between call sites: fold into a private copy
            calls[target] -= 1
            target = f"{target.replace('.', '_')}_{prev.name}"
            gm.add_submodule(target, copy.deepcopy(modules[str(prev.target)]))
            prev.target = target
            modules[target] = gm.get_submodule(target)
        _fold_into(modules[target], bn)
        node.replace_all_uses_with(prev)
        gm.graph.erase_node(node)
    gm.graph.lint()
    gm.delete_all_unused_submodules()
    gm.recompile()
    return gm
