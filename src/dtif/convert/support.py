"""The table of what dtif converts, and the check that reports every offender at once."""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn

from dtif.errors import UnsupportedOpsError
from dtif.models.qcfs import QCFS

# A QCFS activation (a quantized ReLU) converts like a ReLU; TrainedScale reads its lambda.
RELU_MODULES: tuple[type[nn.Module], ...] = (nn.ReLU, QCFS)
RELU_FUNCTIONS: set[Callable[..., Any]] = {F.relu, torch.relu, torch.relu_}
RELU_METHODS = {"relu", "relu_"}
CLAMP_FUNCTIONS: set[Callable[..., Any]] = {torch.clamp, torch.clip, torch.clamp_min}
CLAMP_METHODS = {"clamp", "clip", "clamp_min", "clamp_", "clamp_min_"}
MAXPOOL_MODULES: tuple[type[nn.Module], ...] = (nn.MaxPool1d, nn.MaxPool2d)
MAXPOOL_FUNCTIONS: set[Callable[..., Any]] = {F.max_pool1d, F.max_pool2d}
DROPOUT_MODULES: tuple[type[nn.Module], ...] = (
    nn.Dropout,
    nn.Dropout1d,
    nn.Dropout2d,
    nn.AlphaDropout,
)
DROPOUT_FUNCTIONS: set[Callable[..., Any]] = {F.dropout, F.dropout1d, F.dropout2d}
BN_MODULES: tuple[type[nn.Module], ...] = (nn.BatchNorm1d, nn.BatchNorm2d)
LINEAR_MODULES: tuple[type[nn.Module], ...] = (nn.Conv1d, nn.Conv2d, nn.Linear)
POOL_MODULES: tuple[type[nn.Module], ...] = (
    nn.AvgPool1d,
    nn.AvgPool2d,
    nn.AdaptiveAvgPool1d,
    nn.AdaptiveAvgPool2d,
)
SHAPE_MODULES: tuple[type[nn.Module], ...] = (nn.Flatten, nn.Identity)

SUPPORTED_MODULES: tuple[type[nn.Module], ...] = (
    RELU_MODULES
    + MAXPOOL_MODULES
    + DROPOUT_MODULES
    + BN_MODULES
    + LINEAR_MODULES
    + POOL_MODULES
    + SHAPE_MODULES
)
POOL_FUNCTIONS: set[Callable[..., Any]] = {
    F.avg_pool1d,
    F.avg_pool2d,
    F.adaptive_avg_pool1d,
    F.adaptive_avg_pool2d,
}
ADD_FUNCTIONS: set[Callable[..., Any]] = {operator.add, torch.add}
SUPPORTED_FUNCTIONS: set[Callable[..., Any]] = (
    RELU_FUNCTIONS
    | CLAMP_FUNCTIONS
    | MAXPOOL_FUNCTIONS
    | DROPOUT_FUNCTIONS
    | POOL_FUNCTIONS
    | ADD_FUNCTIONS
    | {torch.flatten, operator.getitem}
)
SHAPE_METHODS = {"view", "reshape", "flatten", "size", "contiguous"}
SUPPORTED_METHODS = RELU_METHODS | CLAMP_METHODS | SHAPE_METHODS | {"add"}

MAXPOOL_FIX = (
    "pass maxpool='avg' to swap it for average pooling (the ANN's accuracy after the swap is "
    "reported) or maxpool='gate' for a spiking max-pool gate (Rueckauer et al. 2017)"
)


@dataclass(frozen=True)
class Offender:
    """One node that cannot be converted."""

    name: str
    op: str
    target: str
    module_path: str
    fix: str

    def __str__(self) -> str:
        where = f" (module {self.module_path})" if self.module_path else ""
        return f"- {self.name}: {self.op} {self.target}{where}. Fix: {self.fix}"


def _arg(node: fx.Node, index: int, key: str, default: Any = None) -> Any:
    if len(node.args) > index:
        return node.args[index]
    return node.kwargs.get(key, default)


def is_relu_clamp(node: fx.Node) -> bool:
    """True for clamp(x, min=0) with no max: a ReLU spelled as a clamp."""
    is_clamp = (node.op == "call_function" and node.target in CLAMP_FUNCTIONS) or (
        node.op == "call_method" and node.target in CLAMP_METHODS
    )
    if not is_clamp:
        return False
    lo = _arg(node, 1, "min")
    hi = None if str(node.target).startswith("clamp_min") else _arg(node, 2, "max")
    return isinstance(lo, (int, float)) and lo == 0 and hi is None


def is_relu(node: fx.Node, modules: dict[str, nn.Module]) -> bool:
    """True when `node` is a ReLU in any spelling dtif knows."""
    if node.op == "call_module":
        return isinstance(modules[str(node.target)], RELU_MODULES)
    if node.op == "call_function":
        return node.target in RELU_FUNCTIONS or is_relu_clamp(node)
    if node.op == "call_method":
        return node.target in RELU_METHODS or is_relu_clamp(node)
    return False


def is_shape_read(node: object) -> bool:
    """True for x.size() / x.size(0) and x.shape: they read a shape, not tensor values."""
    if not isinstance(node, fx.Node):
        return False
    if node.op == "call_method":
        return node.target == "size"
    return (
        node.op == "call_function"
        and node.target is getattr
        and len(node.args) == 2
        and node.args[1] == "shape"
    )


def is_maxpool(node: fx.Node, modules: dict[str, nn.Module]) -> bool:
    """True for a max-pool module or function."""
    if node.op == "call_module":
        return isinstance(modules[str(node.target)], MAXPOOL_MODULES)
    return node.op == "call_function" and node.target in MAXPOOL_FUNCTIONS


def _target_name(node: fx.Node) -> str:
    target = node.target
    return getattr(target, "__name__", str(target)) if callable(target) else str(target)


def _offence(node: fx.Node, modules: dict[str, nn.Module], maxpool: str) -> str | None:
    """The fix for `node`, or None when it is supported."""
    if node.op in ("placeholder", "output", "get_attr"):
        return None
    if is_maxpool(node, modules):
        return MAXPOOL_FIX if maxpool == "error" else None
    if node.op == "call_module":
        mod = modules[str(node.target)]
        if isinstance(mod, SUPPORTED_MODULES):
            return None
        return (
            f"{type(mod).__name__} has no spiking equivalent; replace it with a supported layer "
            "(ReLU, Conv, Linear, BatchNorm, AvgPool, Flatten, Dropout) and retrain"
        )
    if node.op == "call_function":
        if node.target in CLAMP_FUNCTIONS and not is_relu_clamp(node):
            return "only clamp(min=0) with no max converts (it is a ReLU); use ReLU instead"
        if node.target is operator.getitem and not is_shape_read(node.args[0]):
            return "indexing or slicing a tensor is not supported; keep the full tensor"
        if is_shape_read(node):  # x.shape
            return None
        if node.target in SUPPORTED_FUNCTIONS:
            return None
        return (
            f"the function {_target_name(node)} has no spiking equivalent; replace it with "
            "a supported op (relu, add, flatten, avg pooling)"
        )
    if node.op == "call_method":
        if node.target in CLAMP_METHODS and not is_relu_clamp(node):
            return "only clamp(min=0) with no max converts (it is a ReLU); use relu() instead"
        if node.target in SUPPORTED_METHODS:
            return None
        return (
            f"the tensor method .{node.target}() has no spiking equivalent; replace it with a "
            "supported op (relu, add, view/reshape/flatten)"
        )
    return f"unknown node kind {node.op}"


def check_supported(gm: fx.GraphModule, maxpool: str = "error") -> None:
    """Check every node of `gm` against the support table.

    Args:
        gm: the traced model.
        maxpool: the max-pool policy ("error", "avg" or "gate").

    Raises:
        UnsupportedOpsError: one error that lists every unsupported node and its fix.
    """
    modules = dict(gm.named_modules())
    bad = []
    for node in gm.graph.nodes:
        fix = _offence(node, modules, maxpool)
        if fix is not None:
            path = str(node.target) if node.op == "call_module" else ""
            # a module's target is its path; name its type too ("2" alone says nothing)
            target = type(modules[path]).__name__ if path else _target_name(node)
            bad.append(Offender(node.name, node.op, target, path, fix))
    if bad:
        lines = "\n".join(str(b) for b in bad)
        raise UnsupportedOpsError(
            f"{len(bad)} operation(s) cannot be converted to a spiking network:\n{lines}\n"
            "Replace them, or wrap a custom block in a supported form."
        )
