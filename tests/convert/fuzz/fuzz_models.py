"""Random tiny architectures for the converter fuzzer, and the oracle that says what to expect.

A plain module, not ``conftest.py``, so that the fuzzer and the regression tests import it under
a unique name.

A generated model is a tree of small modules: `Seq` (named steps run in order), `Residual`
(a body plus an identity or 1x1-conv/linear + BN shortcut, joined by an add), `Act` (one ReLU in
one of many spellings), `Flatten` (several spellings), `AvgPool` / `MaxPool` (module or
functional), `Drop` (dropout), `Twice` (one conv and one ReLU module, each called at two
sites), `Alias` (nn.Identity, contiguous), `Clip` (a clipped ReLU: ReLU6, Hardtanh(0, m),
clamp(0, m), ...), `ScaleBy` (* or / by a number or a buffer), `Mean` (over the spatial dims),
`Cat` (a tensor and a conv + ReLU branch along channels, or a tensor with itself along the
last dim), and `Bad` (an op that has no spiking equivalent).
Shapes are found by running each new step on a dummy input, so that no step is invalid for
its input.

The oracle (`expected_offenders`) traces the model with torch.fx itself and lists every node
that lies inside a `Bad` module, and every max-pool node under the "error" policy: exactly
those, and nothing else, must be named by `dtif.UnsupportedOpsError`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from hypothesis import strategies as st
from torch import fx, nn

import dtif

BATCH = 32
MAX_CHANNELS = 4

# ---------------------------------------------------------------------------------------------
# building blocks


RELU_SPELLINGS = (
    "nn.ReLU",
    "nn.ReLU(inplace)",
    "F.relu",
    "F.relu(inplace)",
    "F.relu(x, True)",
    "torch.relu",
    "torch.relu_",
    "Tensor.relu",
    "Tensor.relu_",
    "x.clamp(min=0)",
    "torch.clamp(x, 0)",
    "torch.clip(x, min=0)",
    "x.clamp_min(0)",
    "torch.clamp_min(x, 0.0)",
    # in place, as a statement: the result is not used, the tensor itself changes
    "nn.ReLU(inplace) stmt",
    "Tensor.relu_ stmt",
    "F.relu(inplace) stmt",
    "x.clamp_(min=0) stmt",
    "x.clamp_min_(0) stmt",
)
INPLACE_SPELLINGS = frozenset(
    s
    for s in RELU_SPELLINGS
    if "inplace" in s or "True" in s or s.endswith("_") or s.endswith("stmt")
)


class Act(nn.Module):
    """One ReLU, spelled as `spelling` (see RELU_SPELLINGS)."""

    def __init__(self, spelling: str) -> None:
        super().__init__()
        self.spelling = spelling
        if spelling.startswith("nn.ReLU"):
            self.relu = nn.ReLU(inplace="inplace" in spelling)

    def extra_repr(self) -> str:
        return self.spelling

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: C901 - one branch per spelling
        s = self.spelling
        if s in ("nn.ReLU", "nn.ReLU(inplace)"):
            return self.relu(x)
        if s == "F.relu":
            return F.relu(x)
        if s == "F.relu(inplace)":
            return F.relu(x, inplace=True)
        if s == "F.relu(x, True)":
            return F.relu(x, True)
        if s == "torch.relu":
            return torch.relu(x)
        if s == "torch.relu_":
            return torch.relu_(x)
        if s == "Tensor.relu":
            return x.relu()
        if s == "Tensor.relu_":
            return x.relu_()
        if s == "x.clamp(min=0)":
            return x.clamp(min=0)
        if s == "torch.clamp(x, 0)":
            return torch.clamp(x, 0)
        if s == "torch.clip(x, min=0)":
            return torch.clip(x, min=0)
        if s == "x.clamp_min(0)":
            return x.clamp_min(0)
        if s == "torch.clamp_min(x, 0.0)":
            return torch.clamp_min(x, 0.0)
        if s == "nn.ReLU(inplace) stmt":
            self.relu(x)
        elif s == "Tensor.relu_ stmt":
            x.relu_()
        elif s == "F.relu(inplace) stmt":
            F.relu(x, inplace=True)
        elif s == "x.clamp_(min=0) stmt":
            x.clamp_(min=0)
        elif s == "x.clamp_min_(0) stmt":
            x.clamp_min_(0)
        else:
            raise ValueError(s)
        return x


FLATTEN_SPELLINGS = (
    "nn.Flatten",
    "torch.flatten(x, 1)",
    "x.view(x.size(0), -1)",
    "x.flatten(1)",
    "x.reshape(x.size(0), -1)",
    "x.view(x.shape[0], -1)",
    "x.view(-1, features)",
)


class Flatten(nn.Module):
    """Flatten to [B, features], spelled as `spelling`."""

    def __init__(self, spelling: str, features: int) -> None:
        super().__init__()
        self.spelling = spelling
        self.features = features
        if spelling == "nn.Flatten":
            self.flatten = nn.Flatten()

    def extra_repr(self) -> str:
        return self.spelling

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.spelling
        if s == "nn.Flatten":
            return self.flatten(x)
        if s == "torch.flatten(x, 1)":
            return torch.flatten(x, 1)
        if s == "x.view(x.size(0), -1)":
            return x.view(x.size(0), -1)
        if s == "x.flatten(1)":
            return x.flatten(1)
        if s == "x.reshape(x.size(0), -1)":
            return x.reshape(x.size(0), -1)
        if s == "x.view(x.shape[0], -1)":
            return x.view(x.shape[0], -1)
        return x.view(-1, self.features)


@dataclass(frozen=True)
class PoolArgs:
    kernel: int
    stride: int
    padding: int
    dilation: int = 1
    ceil_mode: bool = False
    count_include_pad: bool = True


class AvgPool(nn.Module):
    """Average pooling, as a module or a function; or adaptive (output size `adaptive`)."""

    def __init__(
        self, dims: int, functional: bool, args: PoolArgs | None, adaptive: int | None
    ) -> None:
        super().__init__()
        self.dims, self.functional, self.args, self.adaptive = dims, functional, args, adaptive
        if not functional:
            if adaptive is not None:
                self.pool: nn.Module = (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d)[dims - 1](
                    adaptive
                )
            else:
                assert args is not None
                self.pool = (nn.AvgPool1d, nn.AvgPool2d)[dims - 1](
                    args.kernel,
                    args.stride,
                    args.padding,
                    ceil_mode=args.ceil_mode,
                    count_include_pad=args.count_include_pad,
                )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.functional:
            return self.pool(x)
        if self.adaptive is not None:
            fn = (F.adaptive_avg_pool1d, F.adaptive_avg_pool2d)[self.dims - 1]
            return fn(x, self.adaptive)
        a = self.args
        assert a is not None
        avg = (F.avg_pool1d, F.avg_pool2d)[self.dims - 1]
        return avg(x, a.kernel, a.stride, a.padding, a.ceil_mode, a.count_include_pad)


class MaxPool(nn.Module):
    """Max pooling, as a module or a function. With `as_avg`, the average-pool twin that
    maxpool='avg' promises (count_include_pad=False): the independent reference of that policy.
    """

    def __init__(self, dims: int, functional: bool, args: PoolArgs) -> None:
        super().__init__()
        self.dims, self.functional, self.args = dims, functional, args
        self.as_avg = False
        if not functional:
            self.pool = (nn.MaxPool1d, nn.MaxPool2d)[dims - 1](
                args.kernel, args.stride, args.padding, args.dilation, ceil_mode=args.ceil_mode
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.args
        if self.as_avg:
            avg = (F.avg_pool1d, F.avg_pool2d)[self.dims - 1]
            return avg(x, a.kernel, a.stride, a.padding, a.ceil_mode, False)
        if not self.functional:
            return self.pool(x)
        fn = (F.max_pool1d, F.max_pool2d)[self.dims - 1]
        return fn(x, a.kernel, a.stride, a.padding, a.dilation, ceil_mode=a.ceil_mode)


DROPOUT_SPELLINGS = ("nn.Dropout", "nn.Dropout(inplace)", "nn.DropoutNd", "F.dropout")


class Drop(nn.Module):
    """Dropout (an identity in eval mode)."""

    def __init__(self, spelling: str, dims: int) -> None:
        super().__init__()
        self.spelling = spelling
        if spelling == "nn.Dropout":
            self.drop: nn.Module = nn.Dropout(0.3)
        elif spelling == "nn.Dropout(inplace)":
            self.drop = nn.Dropout(0.3, inplace=True)
        elif spelling == "nn.DropoutNd":
            self.drop = (nn.Dropout, nn.Dropout1d, nn.Dropout2d)[dims](0.2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.spelling == "F.dropout":
            return F.dropout(x, 0.4, self.training)
        return self.drop(x)


BAD_KINDS = (
    "nn.GELU",
    "nn.Sigmoid",
    "torch.sigmoid",
    "torch.tanh",
    "nn.Tanh",
    "nn.LayerNorm",
    "x.max(dim)",
    "torch.amax",
    "x * x",
    "F.softmax",
    "x / x.sum(1)",
    "x - 1",
    "F.leaky_relu",
    "nn.Hardtanh",
    "x.clamp(-1, 6)",
    "x.clamp(min=0.1)",
    "torch.exp",
    "x.mean()",
)


class Bad(nn.Module):
    """An op with no spiking equivalent. Every fx node it produces must be named."""

    def __init__(self, kind: str, last_dim: int) -> None:
        super().__init__()
        self.kind = kind
        if kind == "nn.GELU":
            self.op: nn.Module = nn.GELU()
        elif kind == "nn.Sigmoid":
            self.op = nn.Sigmoid()
        elif kind == "nn.Tanh":
            self.op = nn.Tanh()
        elif kind == "nn.LayerNorm":
            self.op = nn.LayerNorm(last_dim)
        elif kind == "nn.Hardtanh":
            self.op = nn.Hardtanh()  # [-1, 1]: lets negative values through

    def extra_repr(self) -> str:
        return self.kind

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: C901 - one branch per kind
        k = self.kind
        if hasattr(self, "op"):
            return self.op(x)
        if k == "torch.sigmoid":
            return torch.sigmoid(x)
        if k == "torch.tanh":
            return torch.tanh(x)
        if k == "x.max(dim)":
            return x.max(dim=1, keepdim=True)[0]
        if k == "torch.amax":
            return torch.amax(x, dim=1, keepdim=True)
        if k == "x * x":
            return x * x
        if k == "F.softmax":
            return F.softmax(x, dim=1)
        if k == "x / x.sum(1)":
            return x / x.sum(1, keepdim=True)
        if k == "x - 1":
            return x - 1
        if k == "F.leaky_relu":
            return F.leaky_relu(x, 0.1)
        if k == "x.clamp(-1, 6)":
            return x.clamp(-1, 6)
        if k == "x.clamp(min=0.1)":
            return x.clamp(min=0.1)
        if k == "torch.exp":
            return torch.exp(x)
        if k == "x.mean()":
            return x - x.mean()
        raise ValueError(k)


CLIP_SPELLINGS = (
    "nn.ReLU6",
    "F.relu6",
    "F.relu6(inplace)",
    "nn.Hardtanh(0, m)",
    "F.hardtanh(x, 0, m)",
    "x.clamp(0, m)",
    "torch.clamp(x, min=0, max=m)",
    "x.clip(0, m)",
)


class Clip(nn.Module):
    """A clipped ReLU min(max(x, 0), m), spelled as `spelling` (ReLU6 spellings: m = 6)."""

    def __init__(self, spelling: str, cap: float) -> None:
        super().__init__()
        self.spelling = spelling
        self.cap = 6.0 if "6" in spelling else cap
        if spelling == "nn.ReLU6":
            self.op: nn.Module = nn.ReLU6()
        elif spelling == "nn.Hardtanh(0, m)":
            self.op = nn.Hardtanh(0.0, self.cap)

    def extra_repr(self) -> str:
        return f"{self.spelling}, m={self.cap}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s, m = self.spelling, self.cap
        if hasattr(self, "op"):
            return self.op(x)
        if s == "F.relu6":
            return F.relu6(x)
        if s == "F.relu6(inplace)":
            return F.relu6(x, inplace=True)
        if s == "F.hardtanh(x, 0, m)":
            return F.hardtanh(x, 0.0, m)
        if s == "x.clamp(0, m)":
            return x.clamp(0, m)
        if s == "torch.clamp(x, min=0, max=m)":
            return torch.clamp(x, min=0, max=m)
        if s == "x.clip(0, m)":
            return x.clip(0, m)
        raise ValueError(s)


SCALE_SPELLINGS = ("x * c", "c * x", "x / c", "torch.mul(x, c)", "x.div(c)", "x * buffer")


class ScaleBy(nn.Module):
    """Multiplication or division by a constant: a number or a buffer (per channel)."""

    def __init__(self, spelling: str, c: float, channels: int, spatial: int) -> None:
        super().__init__()
        self.spelling, self.c = spelling, c
        gen = torch.Generator().manual_seed(channels)
        shape = (channels, *([1] * spatial))
        self.register_buffer("factor", torch.rand(shape, generator=gen) * 2 - 0.5)

    def extra_repr(self) -> str:
        return f"{self.spelling}, c={self.c}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s, c = self.spelling, self.c
        if s == "x * c":
            return x * c
        if s == "c * x":
            return c * x
        if s == "x / c":
            return x / c
        if s == "torch.mul(x, c)":
            return torch.mul(x, c)
        if s == "x.div(c)":
            return x.div(c)
        if s == "x * buffer":
            return x * self.factor
        raise ValueError(s)


class Mean(nn.Module):
    """A mean over the spatial dims: x.mean(dims) or torch.mean(x, dim=dims, keepdim=...)."""

    def __init__(self, spatial: int, method: bool, keepdim: bool, negative: bool) -> None:
        super().__init__()
        dims = tuple(range(2, 2 + spatial))
        self.dims = tuple(d - 2 - spatial for d in dims) if negative else dims
        self.method, self.keepdim = method, keepdim

    def extra_repr(self) -> str:
        return f"dims={self.dims}, method={self.method}, keepdim={self.keepdim}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.method:
            return x.mean(self.dims, keepdim=self.keepdim)
        return torch.mean(x, dim=list(self.dims), keepdim=self.keepdim)


class Cat(nn.Module):
    """torch.cat of x and a branch relu(layer(x)) along channels (dim 1), or of x and x along
    the last dim (`spatial_join`)."""

    def __init__(self, layer: nn.Module | None, spelling: str) -> None:
        super().__init__()
        self.layer, self.spelling = layer, spelling
        self.act = nn.ReLU()

    def extra_repr(self) -> str:
        return self.spelling

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.layer is None:
            return torch.cat([x, x], dim=-1)
        branch = self.act(self.layer(x))
        if self.spelling == "torch.concat":
            return torch.concat((branch, x), dim=1)
        return torch.cat([x, branch], 1)


class Twice(nn.Module):
    """One conv (or linear) module and one nn.ReLU module, each called at two sites:
    act(bn2(layer(act(bn1(layer(x)))))). BN folding must give each site its own copy."""

    def __init__(self, layer: nn.Module, bn1: nn.Module | None, bn2: nn.Module | None) -> None:
        super().__init__()
        self.layer, self.bn1, self.bn2 = layer, bn1, bn2
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer(x)
        x = self.act(x if self.bn1 is None else self.bn1(x))
        x = self.layer(x)
        return self.act(x if self.bn2 is None else self.bn2(x))


class Alias(nn.Module):
    """A step that returns its input tensor itself: nn.Identity or x.contiguous()."""

    def __init__(self, spelling: str) -> None:
        super().__init__()
        self.spelling = spelling
        if spelling == "nn.Identity":
            self.identity = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.identity(x) if self.spelling == "nn.Identity" else x.contiguous()


class Seq(nn.Module):
    """Named steps run in order."""

    def __init__(self, steps: list[tuple[str, nn.Module]]) -> None:
        super().__init__()
        for i, (tag, step) in enumerate(steps):
            self.add_module(f"s{i}_{tag}", step)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for step in self._modules.values():
            assert step is not None
            x = step(x)
        return x


JOINS = ("+", "torch.add", "Tensor.add", "+=")
# steps whose output never aliases their input
FRESH_OUTPUT = (
    nn.Conv1d,
    nn.Conv2d,
    nn.Linear,
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    AvgPool,
    MaxPool,
    Twice,
    ScaleBy,
    Mean,
    Cat,
)


class Residual(nn.Module):
    """out = post(join(body(pre(x)), shortcut(x))), shortcut = x or `down(x)`.

    With an in-place `pre` and `shortcut_first=False`, the shortcut sees the ReLU'd x, as in
    eager PyTorch: dtif must reproduce that.
    """

    def __init__(
        self,
        body: Seq,
        down: nn.Module | None,
        pre: Act | None,
        post: Act | None,
        join: str,
        shortcut_first: bool,
    ) -> None:
        super().__init__()
        self.pre, self.body, self.down, self.post = pre, body, down, post
        self.join, self.shortcut_first = join, shortcut_first

    def extra_repr(self) -> str:
        return f"join={self.join!r}, shortcut_first={self.shortcut_first}"

    def _shortcut(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.down is None else self.down(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        sc = self._shortcut(x) if self.shortcut_first else None
        h = x if self.pre is None else self.pre(x)
        out = self.body(h)
        if sc is None:
            sc = self._shortcut(x)
        if self.join == "+":
            out = out + sc
        elif self.join == "torch.add":
            out = torch.add(out, sc)
        elif self.join == "Tensor.add":
            out = out.add(sc)
        else:
            out += sc
        return out if self.post is None else self.post(out)


class FuzzNet(nn.Module):
    def __init__(self, body: Seq) -> None:
        super().__init__()
        self.body = body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


# ---------------------------------------------------------------------------------------------
# the generator


@dataclass
class Case:
    """One generated model, its inputs and conversion settings."""

    model: nn.Module
    x: torch.Tensor
    maxpool: str
    neuron: Any
    norm: Any

    def __repr__(self) -> str:
        return (
            f"Case(x={tuple(self.x.shape)}, maxpool={self.maxpool!r}, neuron={self.neuron}, "
            f"norm={self.norm})\n{self.model}"
        )


def _shape_after(step: nn.Module, shape: tuple[int, ...]) -> tuple[int, ...] | None:
    """The sample shape after `step`, or None when the step does not fit `shape`."""
    try:
        with torch.no_grad():
            y = step.eval()(torch.randn(2, *shape))
    except RuntimeError:
        return None
    if y.ndim < 2 or y.shape[0] != 2 or y.numel() == 0:
        return None
    return tuple(y.shape[1:])


class Builder:
    """Draws steps while tracking the sample shape (C, *spatial) or (features,)."""

    def __init__(self, draw: st.DrawFn, bad_rate: float, pool_rate: float) -> None:
        self.draw = draw
        self.bad_rate = bad_rate
        self.pool_rate = pool_rate

    def chance(self, p: float) -> bool:
        return p > 0 and self.draw(st.floats(0, 1)) < p

    # --- single steps

    def act(self) -> Act:
        return Act(self.draw(st.sampled_from(RELU_SPELLINGS)))

    def bad(self, shape: tuple[int, ...]) -> tuple[Bad, tuple[int, ...]] | None:
        step = Bad(self.draw(st.sampled_from(BAD_KINDS)), shape[-1])
        out = _shape_after(step, shape)
        return None if out is None else (step, out)

    def conv(
        self, shape: tuple[int, ...], same: bool = False, cout: int | None = None
    ) -> tuple[list[tuple[str, nn.Module]], tuple[int, ...]] | None:
        draw = self.draw
        dims = len(shape) - 1
        cin = shape[0]
        cout = cout if cout is not None else draw(st.integers(1, MAX_CHANNELS))
        if same:
            k = draw(st.sampled_from([1, 3]))
            stride, pad, dil = draw(st.integers(1, 2)), k // 2, 1
        else:
            k = draw(st.integers(1, 3))
            stride, pad, dil = draw(st.integers(1, 2)), draw(st.integers(0, k // 2)), 1
            if k > 1 and self.chance(0.2):
                dil = 2
        g = math.gcd(cin, cout)
        groups = draw(st.sampled_from([d for d in range(1, g + 1) if g % d == 0]))
        conv = (nn.Conv1d, nn.Conv2d)[dims - 1](
            cin, cout, k, stride, pad, dil, groups=groups, bias=draw(st.booleans())
        )
        steps: list[tuple[str, nn.Module]] = [(f"conv{dims}d", conv)]
        if draw(st.booleans()):
            bn = (nn.BatchNorm1d, nn.BatchNorm2d)[dims - 1](cout, affine=draw(st.booleans()))
            steps.append(("bn", bn))
        out = _shape_after(nn.Sequential(*(m for _, m in steps)), shape)
        return None if out is None else (steps, out)

    def linear(
        self, shape: tuple[int, ...], out_features: int | None = None
    ) -> tuple[list[tuple[str, nn.Module]], tuple[int, ...]]:
        draw = self.draw
        n = out_features if out_features is not None else draw(st.integers(1, 8))
        steps: list[tuple[str, nn.Module]] = [
            ("linear", nn.Linear(shape[0], n, bias=draw(st.booleans())))
        ]
        if draw(st.booleans()):
            steps.append(("bn", nn.BatchNorm1d(n, affine=draw(st.booleans()))))
        return steps, (n,)

    def pool_args(self, size: int, same: bool) -> PoolArgs:
        draw = self.draw
        if same:  # keeps the size: odd kernel, stride 1, padding k // 2
            k = draw(st.sampled_from([1, 3]))
            return PoolArgs(k, 1, k // 2, count_include_pad=draw(st.booleans()))
        k = draw(st.integers(1, max(1, min(3, size))))
        return PoolArgs(
            kernel=k,
            stride=draw(st.integers(1, k)),
            padding=draw(st.integers(0, k // 2)),
            dilation=draw(st.sampled_from([1, 1, 1, 2])),
            ceil_mode=draw(st.booleans()),
            count_include_pad=draw(st.booleans()),
        )

    def pool(
        self, shape: tuple[int, ...], same: bool = False
    ) -> tuple[nn.Module, tuple[int, ...]] | None:
        draw = self.draw
        dims = len(shape) - 1
        size = min(shape[1:])
        kind = draw(st.sampled_from(["max", "max", "avg", "adaptive"] if not same else ["max"]))
        functional = draw(st.booleans())
        step: nn.Module
        if kind == "max" and self.chance(self.pool_rate):
            step = MaxPool(dims, functional, self.pool_args(size, same))
        elif kind == "adaptive":
            step = AvgPool(dims, functional, None, draw(st.integers(1, size)))
        else:
            args = self.pool_args(size, same)
            step = AvgPool(dims, functional, PoolArgs(**{**args.__dict__, "dilation": 1}), None)
        out = _shape_after(step, shape)
        return None if out is None else (step, out)

    # --- sequences

    def seq(
        self, shape: tuple[int, ...], depth: int, length: int, same: bool = False
    ) -> tuple[list[tuple[str, nn.Module]], tuple[int, ...]]:
        """Up to `length` steps from `shape`. `same`: spatial size is kept or strided only by
        'same' convs (a residual body, whose shortcut is a 1x1 conv of the same stride)."""
        steps: list[tuple[str, nn.Module]] = []
        for _ in range(length):
            drawn = self.step(shape, depth, same)
            if drawn is None:
                continue
            new, shape = drawn
            steps += new
        return steps, shape

    def step(
        self, shape: tuple[int, ...], depth: int, same: bool
    ) -> tuple[list[tuple[str, nn.Module]], tuple[int, ...]] | None:
        draw = self.draw
        spatial = len(shape) > 1
        if self.chance(self.bad_rate):
            bad = self.bad(shape)
            return None if bad is None else ([("bad", bad[0])], bad[1])
        choices = ["layer", "layer", "act", "drop", "residual", "twice", "alias", "clip", "scale"]
        choices += ["cat"] if not same else []
        if spatial:
            choices += ["pool", "pool"] if not same else ["pool"]
            if not same:
                choices += ["flatten", "mean"]
        kind = draw(st.sampled_from(choices))
        if kind == "act":
            return [("act", self.act())], shape
        if kind == "clip":
            spelling = draw(st.sampled_from(CLIP_SPELLINGS))
            return [("clip", Clip(spelling, draw(st.sampled_from([0.05, 0.3, 1.0, 6.0]))))], shape
        if kind == "scale":
            spelling = draw(st.sampled_from(SCALE_SPELLINGS))
            c = draw(st.sampled_from([0.25, 2.0, -1.0, 3.0]))
            return [("scale", ScaleBy(spelling, c, shape[0], len(shape) - 1))], shape
        if kind == "mean":
            keepdim = draw(st.booleans())
            step = Mean(len(shape) - 1, draw(st.booleans()), keepdim, draw(st.booleans()))
            out = _shape_after(step, shape)
            return None if out is None else ([("mean", step)], out)
        if kind == "cat":
            return self.cat(shape)
        if kind == "alias":
            return [("alias", Alias(draw(st.sampled_from(["nn.Identity", "contiguous"]))))], shape
        if kind == "twice":
            return self.twice(shape)
        if kind == "drop":
            spelling = draw(st.sampled_from(DROPOUT_SPELLINGS))
            return [("drop", Drop(spelling, len(shape) - 1))], shape
        if kind == "flatten":
            spelling = draw(st.sampled_from(FLATTEN_SPELLINGS))
            features = math.prod(shape)
            return [("flatten", Flatten(spelling, features))], (features,)
        if kind == "pool":
            drawn = self.pool(shape, same)
            return None if drawn is None else ([("pool", drawn[0])], drawn[1])
        if kind == "residual":
            if depth >= 2:
                return None
            return self.residual(shape, depth)
        layer = self.conv(shape, same) if spatial else self.linear(shape)
        if layer is None:
            return None
        steps, out = layer
        if draw(st.integers(0, 9)) < 7:
            steps = [*steps, ("act", self.act())]
        return steps, out

    def cat(
        self, shape: tuple[int, ...]
    ) -> tuple[list[tuple[str, nn.Module]], tuple[int, ...]] | None:
        draw = self.draw
        dims = len(shape) - 1
        spelling = draw(st.sampled_from(["torch.cat", "torch.concat", "spatial"]))
        layer: nn.Module | None = None
        if spelling != "spatial":
            cout = draw(st.integers(1, MAX_CHANNELS))
            k = draw(st.sampled_from([1, 3]))
            layer = (
                (nn.Conv1d, nn.Conv2d)[dims - 1](shape[0], cout, k, 1, k // 2)
                if dims
                else nn.Linear(shape[0], cout)
            )
        step = Cat(layer, spelling)
        out = _shape_after(step, shape)
        return None if out is None else ([("cat", step)], out)

    def twice(
        self, shape: tuple[int, ...]
    ) -> tuple[list[tuple[str, nn.Module]], tuple[int, ...]] | None:
        draw = self.draw
        dims = len(shape) - 1
        c = shape[0]
        if dims:
            k = draw(st.sampled_from([1, 3]))
            layer: nn.Module = (nn.Conv1d, nn.Conv2d)[dims - 1](c, c, k, 1, k // 2)
        else:
            layer = nn.Linear(c, c)
        bn = (nn.BatchNorm1d, nn.BatchNorm1d, nn.BatchNorm2d)[dims]
        bns = [bn(c) if draw(st.booleans()) else None for _ in range(2)]
        step = Twice(layer, *bns)
        out = _shape_after(step, shape)
        return None if out != shape else ([("twice", step)], shape)

    def residual(
        self, shape: tuple[int, ...], depth: int
    ) -> tuple[list[tuple[str, nn.Module]], tuple[int, ...]] | None:
        draw = self.draw
        spatial = len(shape) > 1
        body, out = self.seq(shape, depth + 1, draw(st.integers(1, 3)), same=True)
        if not body:
            return None
        down: nn.Module | None = None
        if out != shape or draw(st.integers(0, 3)) == 0:  # a projection shortcut
            if spatial:
                stride = round(shape[1] / out[1]) if out[1] else 1
                strides = [s for s in (1, 2, 4, 8) if (shape[1] - 1) // s + 1 == out[1]]
                stride = strides[0] if strides else stride
                conv = (nn.Conv1d, nn.Conv2d)[len(shape) - 2](
                    shape[0], out[0], 1, stride, bias=draw(st.booleans())
                )
                layers: list[nn.Module] = [conv]
                if draw(st.booleans()):
                    layers.append((nn.BatchNorm1d, nn.BatchNorm2d)[len(shape) - 2](out[0]))
            else:
                layers = [nn.Linear(shape[0], out[0])]
                if draw(st.booleans()):
                    layers.append(nn.BatchNorm1d(out[0]))
            down = nn.Sequential(*layers)
            if _shape_after(down, shape) != out:
                return None
        pre = self.act() if draw(st.integers(0, 3)) == 0 else None
        post = self.act() if draw(st.integers(0, 3)) > 0 else None
        join = draw(st.sampled_from(JOINS))
        if join == "+=" and not isinstance(body[-1][1], FRESH_OUTPUT):
            # fx traces `out += sc` as out + sc; that is only eager's semantics when `out` is a
            # fresh tensor (not an alias of the block's input)
            join = "+"
        block = Residual(Seq(body), down, pre, post, join, draw(st.booleans()))
        if _shape_after(block, shape) != out:
            return None
        return [("res", block)], out


def randomize(model: nn.Module, gen: torch.Generator) -> None:
    """Random weights (uniform, ~1.7 / sqrt(fan-in)) and random BN statistics."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("weight") and p.ndim > 1:
                bound = 1.7 / max(1, p[0].numel()) ** 0.5
            else:
                bound = 0.5
            p.copy_((torch.rand(p.shape, generator=gen) * 2 - 1) * bound)
        for m in model.modules():
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                c = m.num_features
                m.running_mean.copy_(torch.randn(c, generator=gen) * 0.5)
                m.running_var.copy_(torch.rand(c, generator=gen) * 1.5 + 0.25)
                if m.affine:
                    m.weight.copy_(torch.randn(c, generator=gen))
                    m.bias.copy_(torch.randn(c, generator=gen) * 0.5)


NEURONS: dict[str, Callable[[], Any]] = {
    "IF": lambda: dtif.IF(),
    "IF v0=0.5": lambda: dtif.IF(v0=0.5),
    "DTIF binary alpha=4": lambda: dtif.DTIF(alpha=4.0),
}


@st.composite
def cases(draw: st.DrawFn, bad_rate: float | None = None) -> Case:
    """A random model with random weights, BN statistics and inputs, and conversion settings."""
    if bad_rate is None:
        bad_rate = draw(st.sampled_from([0.0, 0.0, 0.0, 0.15]))
    maxpool = draw(st.sampled_from(["error", "avg", "gate"]))
    # max-pools are rarer under "error", where any of them makes the whole model fail
    b = Builder(draw, bad_rate, pool_rate=0.3 if maxpool == "error" else 1.0)
    kind = draw(st.sampled_from(["conv2d", "conv2d", "conv2d", "conv1d", "mlp"]))
    if kind == "conv2d":
        shape: tuple[int, ...] = (
            draw(st.integers(1, 3)),
            draw(st.integers(1, 12)),
            draw(st.integers(1, 12)),
        )
    elif kind == "conv1d":
        shape = (draw(st.integers(1, 3)), draw(st.integers(1, 12)))
    else:
        shape = (draw(st.integers(1, 12)),)
    in_shape = shape
    steps, shape = b.seq(shape, 0, draw(st.integers(1, 5)))
    ending = draw(st.sampled_from(["linear", "linear", "linear", "linear", "as is"]))
    if ending == "linear":
        if len(shape) > 1:
            spelling = draw(st.sampled_from(FLATTEN_SPELLINGS))
            steps.append(("flatten", Flatten(spelling, math.prod(shape))))
            shape = (math.prod(shape),)
        steps.append(("fc", nn.Linear(shape[0], draw(st.integers(2, 6)))))
    model = FuzzNet(Seq(steps))
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    randomize(model, gen)
    x = torch.randn(BATCH, *in_shape, generator=gen)
    if draw(st.booleans()):
        x = x.abs()  # like images: non-negative
    x = x * draw(st.sampled_from([0.1, 1.0, 1.0, 5.0]))
    neuron = draw(st.sampled_from(list(NEURONS)))
    channelwise = draw(st.booleans())
    return Case(
        model=model.eval(),
        x=x,
        maxpool=maxpool,
        neuron=NEURONS[neuron](),
        norm=dtif.MaxNorm(channelwise=channelwise),
    )


# ---------------------------------------------------------------------------------------------
# the oracle


def _inside(node: fx.Node, cls: type) -> bool:
    stack = node.meta.get("nn_module_stack") or {}
    for value in stack.values():
        owner = value[-1] if isinstance(value, tuple) else value
        if owner is cls or owner == f"{cls.__module__}.{cls.__qualname__}":
            return True
    return False


def expected_offenders(model: nn.Module, maxpool: str) -> set[str]:
    """Names of the fx nodes that dtif must report: every node inside a `Bad` module, and
    every max-pool node under maxpool='error'."""
    gm = fx.symbolic_trace(model)
    names = set()
    for node in gm.graph.nodes:
        if node.op in ("placeholder", "output", "get_attr"):
            continue
        if _inside(node, Bad) or (maxpool == "error" and _inside(node, MaxPool)):
            names.add(node.name)
    return names


def dilated_maxpools(model: nn.Module) -> list[str]:
    """Paths of the max-pools with dilation > 1 (maxpool='avg' cannot swap them)."""
    return [n for n, m in model.named_modules() if isinstance(m, MaxPool) and m.args.dilation > 1]


def set_maxpool_as_avg(model: nn.Module, on: bool) -> None:
    for m in model.modules():
        if isinstance(m, MaxPool):
            m.as_avg = on


def named_offenders(message: str) -> set[str]:
    """The node names listed in an UnsupportedOpsError message ("- name: op target ...")."""
    return {line[2:].split(":", 1)[0] for line in message.splitlines() if line.startswith("- ")}


# ---------------------------------------------------------------------------------------------
# the check

NUM_STEPS = 1024
SLOW_STEPS = 4096
TIME_CHUNK = 128
#: max |rate - ANN output| allowed, as a fraction of max |ANN output|, by max-pool policy
TOLERANCE = {"error": 0.04, "avg": 0.04, "gate": 0.05}
#: fraction of the batch whose predicted class must agree (near-ties excluded)
MIN_AGREEMENT = {"error": 0.95, "avg": 0.95, "gate": 0.90}
#: a sample whose two top ANN outputs are closer than this (fraction of max |output|) is a tie
TIE = 0.02


@dataclass
class Outcome:
    """What happened to one case: "converted" ("converted slowly": only at SLOW_STEPS),
    "dead output", "unsupported" or "not foldable"."""

    kind: str
    error: float = 0.0  # max |rate - reference| / max |reference|
    agreement: float = 1.0
    depth: int = 0  # spiking layers on the longest path


def spiking_depth(ann: fx.GraphModule) -> int:
    """The number of spiking layers (ReLU sites) on the longest input-output path."""
    depth: dict[fx.Node, int] = {}
    for node in ann.graph.nodes:
        here = 1 if "dtif.relu" in node.meta else 0
        depth[node] = here + max((depth[a] for a in node.all_input_nodes), default=0)
    return max(depth.values(), default=0)


def reference_outputs(case: Case) -> torch.Tensor:
    """The ANN output that the SNN must approach: the model itself, or (maxpool='avg') its
    twin with every max-pool swapped for average pooling."""
    set_maxpool_as_avg(case.model, case.maxpool == "avg")
    try:
        with torch.no_grad():
            return case.model(case.x.clone()).flatten(1)  # clone: in-place ReLUs on the input
    finally:
        set_maxpool_as_avg(case.model, False)


def check_case(case: Case) -> Outcome:
    """Convert `case`; assert that it either converts and agrees, or raises the right error.

    Raises:
        AssertionError: a wrong outcome (silent mismatch, wrong or incomplete offender list).
        Exception: any exception dtif should not raise is left to propagate.
    """
    offenders = expected_offenders(case.model, case.maxpool)
    dilated = dilated_maxpools(case.model) if case.maxpool == "avg" else []
    try:
        snn = dtif.convert(
            case.model, case.x, neuron=case.neuron, norm=case.norm, maxpool=case.maxpool
        )
    except dtif.UnsupportedOpsError as err:
        assert offenders, f"UnsupportedOpsError for a supported model: {err}"
        named = named_offenders(str(err))
        assert named == offenders, (
            f"offenders named {sorted(named)}, expected {sorted(offenders)}:\n{err}"
        )
        return Outcome("unsupported")
    except dtif.ConversionError as err:
        assert not offenders and dilated, f"unexpected ConversionError: {err}"
        assert "dilated" in str(err), str(err)
        return Outcome("not foldable")
    assert not offenders, f"converted a model with unsupported ops {sorted(offenders)}"
    assert not dilated, f"maxpool='avg' swapped dilated max-pools {dilated}"
    expected = reference_outputs(case)
    with torch.no_grad():
        ann = snn.ann(case.x).flatten(1)
    scale = float(expected.abs().max())
    torch.testing.assert_close(ann, expected, rtol=1e-4, atol=1e-4 * max(scale, 1.0))
    if scale == 0.0:
        # Every output is a ReLU that is silent on every input: no scale to measure the SNN
        # against (its layer gets lambda = 1, and a few transient spikes are rate-coding error).
        return Outcome("dead output")
    tol, min_agree = TOLERANCE[case.maxpool], MIN_AGREEMENT[case.maxpool]
    err, agreement = _compare(snn, case.x, expected, NUM_STEPS)
    outcome = Outcome("converted", err, agreement, spiking_depth(snn.ann))
    if err <= tol and agreement >= min_agree:
        return outcome
    # Rate coding converges as 1/T, with a constant that grows with the ratio of a layer's
    # input granularity to its threshold (one spike of lambda = 26 into a layer of lambda =
    # 0.5). Such a case must be within tolerance at SLOW_STEPS and converging; a conversion
    # bug (a lost ReLU, a wrong scale) is not.
    err_slow, agreement = _compare(snn, case.x, expected, SLOW_STEPS)
    assert err_slow <= tol and err_slow <= 0.6 * err, (
        f"max |rate - ANN| = {err:.3%} of max |ANN output| at T={NUM_STEPS} and "
        f"{err_slow:.3%} at T={SLOW_STEPS}; tolerance {tol:.0%}"
    )
    assert agreement >= min_agree, f"predictions agree on {agreement:.1%} at T={SLOW_STEPS}"
    return Outcome("converted slowly", err_slow, agreement, outcome.depth)


def _compare(
    snn: dtif.SpikingNetwork, x: torch.Tensor, expected: torch.Tensor, num_steps: int
) -> tuple[float, float]:
    """(max |rate - expected| / max |expected|, agreement of predicted classes on the inputs
    whose two top expected outputs are not tied)."""
    scale = float(expected.abs().max())
    res = snn.simulate(x, num_steps, time_chunk=TIME_CHUNK, record=False)
    rate = res.outputs[-1].flatten(1) / num_steps
    err = float((rate - expected).abs().max()) / scale
    agreement = 1.0
    if expected.shape[1] > 1:
        top2 = expected.topk(2, dim=1).values
        clear = top2[:, 0] - top2[:, 1] > TIE * scale
        if clear.any():
            same = rate.argmax(1) == expected.argmax(1)
            agreement = float(same[clear].double().mean())
    return err, agreement
