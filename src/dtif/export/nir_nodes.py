"""NIR export, node by node: the table from a dtif op to the NIR node(s) that express it."""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dtif.export.nir_common import (
    Refusal,
    check_nir_neuron,
    load_nir,
    pair,
    pool_divisor,
)
from dtif.nn.layers import RepeatTime, SpikeMaxPool
from dtif.nn.neuron import SpikingNeuron
from dtif.nn.pooling import AvgPool2x2


@dataclass
class Site:
    """One fx node with its evaluated arguments (batch SHAPE_BATCH) and output."""

    name: str
    module: nn.Module | None
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    output: Any

    @property
    def in_shape(self) -> tuple[int, ...]:
        return tuple(self.args[0].shape[1:])

    @property
    def out_shape(self) -> tuple[int, ...]:
        return tuple(self.output.shape[1:])


Chain = list[tuple[str, Any]]  # (name suffix, NIR node); [] passes its inputs through (sum)
Exporter = Callable[[Site], Chain]


def _array(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().float().numpy().copy()


def _bias(mod: nn.Conv1d | nn.Conv2d) -> np.ndarray:
    if mod.bias is None:
        return np.zeros(mod.out_channels, dtype=np.float32)
    return _array(mod.bias)


def _check_padding_mode(mod: nn.Conv1d | nn.Conv2d) -> None:
    if mod.padding_mode != "zeros":
        raise Refusal(f"padding_mode={mod.padding_mode!r}; NIR convolutions pad with zeros")


def _conv1d(site: Site) -> Chain:
    mod = site.module
    assert isinstance(mod, nn.Conv1d)  # noqa: S101 - the table keys by type
    _check_padding_mode(mod)
    padding = mod.padding if isinstance(mod.padding, str) else int(mod.padding[0])
    node = load_nir().Conv1d(
        input_shape=int(site.in_shape[-1]),
        weight=_array(mod.weight),
        stride=int(mod.stride[0]),
        padding=padding,
        dilation=int(mod.dilation[0]),
        groups=int(mod.groups),
        bias=_bias(mod),
    )
    return [("", node)]


def _conv2d(site: Site) -> Chain:
    mod = site.module
    assert isinstance(mod, nn.Conv2d)  # noqa: S101 - the table keys by type
    _check_padding_mode(mod)
    padding = mod.padding if isinstance(mod.padding, str) else pair(mod.padding)
    node = load_nir().Conv2d(
        input_shape=pair(site.in_shape[-2:]),
        weight=_array(mod.weight),
        stride=pair(mod.stride),
        padding=padding,
        dilation=pair(mod.dilation),
        groups=int(mod.groups),
        bias=_bias(mod),
    )
    return [("", node)]


def _linear(site: Site) -> Chain:
    mod = site.module
    assert isinstance(mod, nn.Linear)  # noqa: S101 - the table keys by type
    if len(site.in_shape) != 1:
        raise Refusal(f"Linear on a {len(site.in_shape)}-d sample; NIR's Affine takes vectors")
    nir = load_nir()
    if mod.bias is None:
        return [("", nir.Linear(weight=_array(mod.weight)))]
    return [("", nir.Affine(weight=_array(mod.weight), bias=_array(mod.bias)))]


def _sum_pool_chain(pool: nn.AvgPool2d, site: Site) -> Chain:
    nir = load_nir()
    k, s, p = pair(pool.kernel_size), pair(pool.stride or pool.kernel_size), pair(pool.padding)
    if len(site.in_shape) != 3:
        raise Refusal("2-d pooling of a sample that is not [C, H, W]")
    h, w = site.in_shape[1:]
    floor_shape = tuple(
        (n + 2 * pp - kk) // ss + 1 for n, pp, kk, ss in zip((h, w), p, k, s, strict=True)
    )
    if site.out_shape[1:] != floor_shape:
        raise Refusal("ceil_mode=True changes the output size; NIR's SumPool2d floors it")
    divisor = pool_divisor(pool, (h, w))
    scale = (1.0 / divisor.float()).expand(site.out_shape).contiguous()
    sum_pool = nir.SumPool2d(kernel_size=np.array(k), stride=np.array(s), padding=np.array(p))
    return [("", sum_pool), ("_scale", nir.Scale(scale=_array(scale)))]


def _avgpool2d(site: Site) -> Chain:
    assert isinstance(site.module, nn.AvgPool2d)  # noqa: S101 - the table keys by type
    return _sum_pool_chain(site.module, site)


def _avgpool2d_function(site: Site) -> Chain:
    return _sum_pool_chain(nn.AvgPool2d(*site.args[1:], **site.kwargs), site)


def _adaptive_window(site: Site, output_size: Any) -> nn.AvgPool2d:
    h, w = site.in_shape[-2:]
    size = (output_size, output_size) if isinstance(output_size, int) else tuple(output_size)
    oh, ow = size[0] or h, size[-1] or w
    if h % oh or w % ow:
        raise Refusal(
            f"adaptive pooling from {h}x{w} to {oh}x{ow} has windows of unequal size; "
            "NIR's SumPool2d needs one window"
        )
    return nn.AvgPool2d((h // oh, w // ow), (h // oh, w // ow))


def _adaptive_avgpool2d(site: Site) -> Chain:
    assert isinstance(site.module, nn.AdaptiveAvgPool2d)  # noqa: S101 - table keys by type
    return _sum_pool_chain(_adaptive_window(site, site.module.output_size), site)


def _adaptive_avgpool2d_function(site: Site) -> Chain:
    size = site.args[1] if len(site.args) > 1 else site.kwargs["output_size"]
    return _sum_pool_chain(_adaptive_window(site, size), site)


def _reshape(site: Site) -> Chain:
    """flatten/view/reshape: a nir.Flatten of adjacent dims, or nothing when the shape stays."""
    src, dst = site.in_shape, site.out_shape
    if src == dst:
        return []
    for start in range(len(src)):
        for end in range(start + 1, len(src)):
            merged = (*src[:start], int(np.prod(src[start : end + 1])), *src[end + 1 :])
            if merged == dst:
                end_dim = -1 if end == len(src) - 1 else end
                node = load_nir().Flatten(
                    input_type=np.array(src), start_dim=start, end_dim=end_dim
                )
                return [("", node)]
    raise Refusal(f"reshape {list(src)} -> {list(dst)} is not a flatten of adjacent dims")


def _identity(site: Site) -> Chain:
    return []


def _add(site: Site) -> Chain:
    tensors = [a for a in (*site.args, *site.kwargs.values()) if isinstance(a, torch.Tensor)]
    if len(tensors) != 2 or len(site.args) + len(site.kwargs) != 2:
        raise Refusal("only the sum of two tensors maps to NIR (as two edges into one node)")
    if any(tuple(t.shape) != tuple(site.output.shape) for t in tensors):
        raise Refusal("a broadcasting add; NIR sums inputs of equal shape")
    return []


def _neuron(site: Site) -> Chain:
    mod = site.module
    assert isinstance(mod, SpikingNeuron)  # noqa: S101 - the table keys by type
    check_nir_neuron(mod)
    shape = site.out_shape
    lam = mod.scale.detach().cpu().float()
    if lam.ndim == 1:
        lam = lam.view(-1, *([1] * (len(shape) - 1)))
    lam_full = _array(lam.expand(shape).contiguous())
    nir = load_nir()
    threshold = np.nextafter(lam_full, np.float32(-np.inf))
    zeros = np.zeros(shape, dtype=np.float32)
    neuron = nir.IF(r=np.ones(shape, dtype=np.float32), v_threshold=threshold, v_reset=zeros)
    return [("", neuron), ("_scale", nir.Scale(scale=lam_full))]


def _refuse_maxpool(site: Site) -> Chain:
    raise Refusal("spiking max-pool gate; NIR has no max-pool node. Convert with maxpool='avg'")


EXPORTERS: dict[Any, Exporter] = {
    # call_module: keyed by module type
    nn.Conv1d: _conv1d,
    nn.Conv2d: _conv2d,
    nn.Linear: _linear,
    nn.AvgPool2d: _avgpool2d,
    AvgPool2x2: _avgpool2d,
    nn.AdaptiveAvgPool2d: _adaptive_avgpool2d,
    nn.Flatten: _reshape,
    nn.Identity: _identity,
    RepeatTime: _identity,
    SpikingNeuron: _neuron,
    SpikeMaxPool: _refuse_maxpool,
    # call_function: keyed by function
    operator.add: _add,
    torch.add: _add,
    torch.flatten: _reshape,
    F.avg_pool2d: _avgpool2d_function,
    F.adaptive_avg_pool2d: _adaptive_avgpool2d_function,
    # call_method: keyed by name
    "add": _add,
    "flatten": _reshape,
    "view": _reshape,
    "reshape": _reshape,
    "contiguous": _identity,
}
