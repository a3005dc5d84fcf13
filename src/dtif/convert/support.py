"""The table of what dtif converts, and the check that reports every offender at once."""

from __future__ import annotations

import math
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
# Clipped ReLUs min(max(x, 0), m): a ReLU whose scale is capped at m.
CLIPPED_RELU_MODULES: tuple[type[nn.Module], ...] = (nn.ReLU6, nn.Hardtanh)
CLIPPED_RELU_FUNCTIONS: set[Callable[..., Any]] = {F.relu6, F.hardtanh, F.hardtanh_}
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
CAT_FUNCTIONS: set[Callable[..., Any]] = {torch.cat, torch.concat, torch.concatenate}
MEAN_FUNCTIONS: set[Callable[..., Any]] = {torch.mean}
MEAN_METHODS = {"mean"}
MUL_FUNCTIONS: set[Callable[..., Any]] = {operator.mul, torch.mul, torch.multiply}
DIV_FUNCTIONS: set[Callable[..., Any]] = {
    operator.truediv,
    torch.div,
    torch.divide,
    torch.true_divide,
}
MUL_METHODS = {"mul", "multiply"}
DIV_METHODS = {"div", "divide", "true_divide"}

SUPPORTED_MODULES: tuple[type[nn.Module], ...] = (
    RELU_MODULES
    + CLIPPED_RELU_MODULES
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
    | CLIPPED_RELU_FUNCTIONS
    | CLAMP_FUNCTIONS
    | CAT_FUNCTIONS
    | MEAN_FUNCTIONS
    | MUL_FUNCTIONS
    | DIV_FUNCTIONS
    | MAXPOOL_FUNCTIONS
    | DROPOUT_FUNCTIONS
    | POOL_FUNCTIONS
    | ADD_FUNCTIONS
    | {torch.flatten, operator.getitem}
)
SHAPE_METHODS = {"view", "reshape", "flatten", "size", "contiguous"}
SUPPORTED_METHODS = (
    RELU_METHODS
    | CLAMP_METHODS
    | SHAPE_METHODS
    | MEAN_METHODS
    | MUL_METHODS
    | DIV_METHODS
    | {"add"}
)

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


def _clamp_bounds(node: fx.Node) -> tuple[Any, Any]:
    """(min, max) of a clamp node; clamp_min has no max."""
    name = str(getattr(node.target, "__name__", node.target))  # a function or a method name
    hi = None if name.startswith("clamp_min") else _arg(node, 2, "max")
    return _arg(node, 1, "min"), hi


def activation_bounds(node: fx.Node, modules: dict[str, nn.Module]) -> tuple[Any, Any] | None:
    """(min, max) of a ReLU, clamp, ReLU6 or Hardtanh node (max None: no cap); None otherwise."""
    if node.op == "call_module":
        mod = modules[str(node.target)]
        if isinstance(mod, RELU_MODULES):
            return 0, None
        if isinstance(mod, CLIPPED_RELU_MODULES):  # ReLU6 is a Hardtanh(0, 6)
            return mod.min_val, mod.max_val
        return None
    if node.op == "call_function":
        if node.target in RELU_FUNCTIONS:
            return 0, None
        if node.target is F.relu6:
            return 0, 6.0
        if node.target in (F.hardtanh, F.hardtanh_):
            return _arg(node, 1, "min_val", -1.0), _arg(node, 2, "max_val", 1.0)
        if node.target in CLAMP_FUNCTIONS:
            return _clamp_bounds(node)
        return None
    if node.op == "call_method":
        if node.target in RELU_METHODS:
            return 0, None
        if node.target in CLAMP_METHODS:
            return _clamp_bounds(node)
    return None


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _valid_bounds(bounds: tuple[Any, Any]) -> bool:
    lo, hi = bounds
    if not (_is_number(lo) and lo == 0):
        return False
    return hi is None or (_is_number(hi) and math.isfinite(hi) and hi > 0)


def is_relu_clamp(node: fx.Node) -> bool:
    """True for clamp(x, min=0) with no max: a ReLU spelled as a clamp."""
    is_clamp = (node.op == "call_function" and node.target in CLAMP_FUNCTIONS) or (
        node.op == "call_method" and node.target in CLAMP_METHODS
    )
    return is_clamp and _valid_bounds(_clamp_bounds(node)) and _clamp_bounds(node)[1] is None


def is_relu(node: fx.Node, modules: dict[str, nn.Module]) -> bool:
    """True when `node` is a ReLU or a clipped ReLU min(max(x, 0), m) in any spelling."""
    bounds = activation_bounds(node, modules)
    return bounds is not None and _valid_bounds(bounds)


def relu_cap(node: fx.Node, modules: dict[str, nn.Module]) -> float | None:
    """The cap m of a clipped ReLU (ReLU6: 6), or None for a plain ReLU."""
    bounds = activation_bounds(node, modules)
    return None if bounds is None or bounds[1] is None else float(bounds[1])


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


_CLIP_FIX = (
    "only min 0 with a positive max (or none) converts: clamp(x, 0, m), Hardtanh(0, m), ReLU6 "
    "are ReLUs capped at m. A negative lower bound lets negative values through, which spikes "
    "cannot carry; use ReLU, ReLU6 or Hardtanh(0, m) and retrain"
)
_SMOOTH_FIX = (
    "has no exact spiking equivalent: an IF neuron's rate is a ReLU of its input, so "
    "activations with a negative part or a curve (LeakyReLU, GELU, SiLU, ...) are refused. "
    "Replace it with ReLU (or ReLU6 / Hardtanh(0, m)) and retrain"
)
_SMOOTH = (
    nn.LeakyReLU,
    nn.PReLU,
    nn.ELU,
    nn.SELU,
    nn.CELU,
    nn.GELU,
    nn.SiLU,
    nn.Mish,
    nn.Sigmoid,
    nn.Tanh,
    nn.Hardswish,
    nn.Hardsigmoid,
    nn.Softplus,
)

_SMOOTH_FUNCTIONS: set[Callable[..., Any]] = {
    F.leaky_relu,
    F.elu,
    F.selu,
    F.celu,
    F.gelu,
    F.silu,
    F.mish,
    F.hardswish,
    F.hardsigmoid,
    F.softplus,
    torch.sigmoid,
    torch.tanh,
}


def _dims(value: object) -> list[int] | None:
    """A `dim` argument as a list of ints, or None when it is not one."""
    if isinstance(value, int) and not isinstance(value, bool):
        return [value]
    if isinstance(value, (tuple, list)) and value and all(isinstance(d, int) for d in value):
        return list(value)
    return None


def reduced_dims(node: fx.Node) -> list[int] | None:
    """The dims a mean reduces (as written; may be negative), or None: all of them."""
    return _dims(_arg(node, 1, "dim"))


def cat_dim(node: fx.Node) -> int | None:
    """The dim a cat joins along (as written), or None when it is not an int."""
    dims = _dims(_arg(node, 1, "dim", 0))
    return dims[0] if dims is not None and len(dims) == 1 else None


def _is_constant(value: object) -> bool:
    """A number, or a tensor attribute of the model (a get_attr node)."""
    return _is_number(value) or (isinstance(value, fx.Node) and value.op == "get_attr")


def _is_scale(node: fx.Node) -> bool:
    return (node.op == "call_function" and node.target in MUL_FUNCTIONS | DIV_FUNCTIONS) or (
        node.op == "call_method" and node.target in MUL_METHODS | DIV_METHODS
    )


def is_scale_by(node: fx.Node) -> tuple[fx.Node, float] | None:
    """(x, c) for x * c, c * x or x / c with x a node and c a number; None otherwise."""
    if not _is_scale(node) or _scale_offence(node) is not None:
        return None
    a, b = _arg(node, 0, "input"), _arg(node, 1, "other")
    divide = node.target in DIV_FUNCTIONS or node.target in DIV_METHODS
    if isinstance(a, fx.Node) and _is_number(b) and (b != 0 or not divide):
        return a, float(b)
    if not divide and isinstance(b, fx.Node) and _is_number(a):
        return b, float(a)
    return None


def _scale_offence(node: fx.Node) -> str | None:
    """None for x * c, c * x and x / c with c a constant; else the fix."""
    divide = node.target in DIV_FUNCTIONS or node.target in DIV_METHODS
    a, b = _arg(node, 0, "input"), _arg(node, 1, "other")
    if divide and node.kwargs.get("rounding_mode") is not None:
        return "division with rounding is not linear; use x / c"
    if divide and not _is_constant(b):
        return (
            "dividing by a tensor computed from the input is not linear in the spikes; only "
            "division by a constant (a number or a model buffer/parameter) converts"
        )
    if not divide and not (_is_constant(a) or _is_constant(b)):
        return (
            "multiplying two tensors computed from the input (gating, attention) has no "
            "spiking equivalent; only multiplication by a constant (a number or a model "
            "buffer/parameter) converts"
        )
    return None


def _shape_op_offence(node: fx.Node) -> str | None:
    """The fix for a bad cat, mean or scale node; None when it converts (or is none of these)."""
    if node.op == "call_function" and node.target in CAT_FUNCTIONS:
        dim = cat_dim(node)
        if dim is None or dim == 0:
            return (
                "torch.cat must join along a non-batch dimension given as an int (dim=1 for "
                "channels); dim 0 is steps*batch in a spiking network"
            )
        return None
    is_mean = (node.op == "call_function" and node.target in MEAN_FUNCTIONS) or (
        node.op == "call_method" and node.target in MEAN_METHODS
    )
    if is_mean:
        dims = reduced_dims(node)
        if dims is None or 0 in dims:
            return (
                "a mean must reduce non-batch dimensions only, e.g. x.mean((2, 3)) or "
                "x.mean(dim=[2, 3], keepdim=True); a mean over all dims or dim 0 mixes the batch"
            )
        return None
    if _is_scale(node):
        return _scale_offence(node)
    return None


def _offence(node: fx.Node, modules: dict[str, nn.Module], maxpool: str) -> str | None:
    """The fix for `node`, or None when it is supported."""
    if node.op in ("placeholder", "output", "get_attr"):
        return None
    if is_maxpool(node, modules):
        return MAXPOOL_FIX if maxpool == "error" else None
    bounds = activation_bounds(node, modules)
    if bounds is not None:
        return None if _valid_bounds(bounds) else _CLIP_FIX
    shaped = _shape_op_offence(node)
    if shaped is not None:
        return shaped
    if node.op == "call_module":
        mod = modules[str(node.target)]
        if isinstance(mod, SUPPORTED_MODULES):
            return None
        if isinstance(mod, _SMOOTH):
            return f"{type(mod).__name__} {_SMOOTH_FIX}"
        return (
            f"{type(mod).__name__} has no spiking equivalent; replace it with a supported layer "
            "(ReLU, ReLU6, Conv, Linear, BatchNorm, AvgPool, Flatten, Dropout; see docs/ops.md) "
            "and retrain"
        )
    if node.op == "call_function":
        if node.target is operator.getitem and not is_shape_read(node.args[0]):
            return "indexing or slicing a tensor is not supported; keep the full tensor"
        if is_shape_read(node):  # x.shape
            return None
        if node.target in SUPPORTED_FUNCTIONS:
            return None
        if node.target in _SMOOTH_FUNCTIONS:
            return f"{_target_name(node)} {_SMOOTH_FIX}"
        return (
            f"the function {_target_name(node)} has no spiking equivalent; replace it with "
            "a supported op (relu, relu6, add, cat, mean, flatten, avg pooling, * or / by a "
            "constant; see docs/ops.md)"
        )
    if node.op == "call_method":
        if node.target in SUPPORTED_METHODS:
            return None
        return (
            f"the tensor method .{node.target}() has no spiking equivalent; replace it with a "
            "supported op (relu, clamp(0, m), add, mean, mul/div by a constant, "
            "view/reshape/flatten; see docs/ops.md)"
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
