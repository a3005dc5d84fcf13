"""Threshold balancing from calibration data: observe each ReLU, reduce to one scale lambda.

Prepare, calibrate, convert: observers are inserted after each ReLU of a copy of the folded
ANN, calibration batches stream through it, and each observer reduces what it saw to lambda,
per layer or per channel (dim 1). Memory is bounded: an exact running max, then a fixed-size
histogram on [0, max] for percentiles.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import torch
from torch import fx, nn

from dtif.convert.replace_relu import RELU_CAP_META, relu_sites, tap_relu_sites
from dtif.errors import CalibrationError, ConversionError, InputError
from dtif.models.qcfs import QCFS

HIST_BINS = 4096


@dataclass(frozen=True)
class MaxNorm:
    """lambda = the maximum ReLU output on calibration data (Diehl et al. 2015)."""

    channelwise: bool = False


@dataclass(frozen=True)
class PercentileNorm:
    """lambda = the p-th percentile of the ReLU outputs, zeros included (Rueckauer et al. 2017)."""

    p: float = 99.9
    channelwise: bool = False

    def __post_init__(self) -> None:
        if not 0.0 < self.p <= 100.0:
            raise InputError(f"PercentileNorm p must be in (0, 100], got {self.p}")


@dataclass(frozen=True)
class TrainedScale:
    """lambda = each QCFS layer's trained scale (Bu et al. 2022); no calibration data is read.

    Only for networks whose every activation is a QCFS (``dtif train --activation qcfs``).
    """

    channelwise: bool = False

    def __post_init__(self) -> None:
        if self.channelwise:
            raise InputError("TrainedScale has one lambda per layer; channelwise must be False")


Norm = MaxNorm | PercentileNorm | TrainedScale


def has_qcfs(model: nn.Module) -> bool:
    """True when ``model`` has a QCFS activation (so TrainedScale is its natural norm)."""
    return any(isinstance(m, QCFS) for m in model.modules())


def trained_scales(ann: fx.GraphModule) -> list[torch.Tensor]:
    """The trained lambda of each marked activation site, in graph order.

    Raises:
        ConversionError: a site is a plain ReLU (names them), so there is no trained scale.
    """
    modules = dict(ann.named_modules())
    sites = relu_sites(ann)
    plain = [
        str(n.meta.get("dtif.relu", n.name))
        for n in sites
        if not isinstance(modules[str(n.target)], QCFS)
    ]
    if plain:
        raise ConversionError(
            f"TrainedScale needs a QCFS network, but {len(plain)} of {len(sites)} activations are "
            f"ReLUs ({', '.join(plain[:5])}{', ...' if len(plain) > 5 else ''}). Train with "
            "`dtif train --activation qcfs` (or dtif.train.to_qcfs), or use MaxNorm/PercentileNorm."
        )
    return [modules[str(n.target)].scale.detach().float().reshape(()).clone() for n in sites]


def _per_channel(x: torch.Tensor, channelwise: bool) -> torch.Tensor:
    """[N, C, ...] -> [C, N*...] when channelwise, else [1, numel]."""
    if not channelwise:
        return x.reshape(1, -1)
    return x.transpose(0, 1).reshape(x.shape[1], -1)


class Observer(nn.Module):
    """Records the running max, and in its second pass a histogram on [0, max], of its input.

    Args:
        channelwise: keep one statistic per channel (dim 1).
    """

    def __init__(self, channelwise: bool) -> None:
        super().__init__()
        self.channelwise = channelwise
        self.max: torch.Tensor | None = None
        self.hist: torch.Tensor | None = None
        self.pass_index = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v = _per_channel(x.detach().float(), self.channelwise)
        if self.pass_index == 0:
            m = v.amax(dim=1)
            self.max = m if self.max is None else torch.maximum(self.max, m)
            return x
        assert self.max is not None  # second pass follows the first  # noqa: S101
        top = torch.clamp(self.max, min=torch.finfo(torch.float32).tiny)[:, None]
        bins = torch.clamp((v / top * HIST_BINS).long(), 0, HIST_BINS - 1)
        rows = torch.arange(v.shape[0], device=v.device)[:, None] * HIST_BINS
        counts = torch.bincount((bins + rows).reshape(-1), minlength=v.shape[0] * HIST_BINS)
        counts = counts.reshape(v.shape[0], HIST_BINS)
        self.hist = counts if self.hist is None else self.hist + counts
        return x

    def percentile(self, p: float) -> torch.Tensor:
        """The p-th percentile per row, interpolated inside the histogram bin."""
        assert self.max is not None and self.hist is not None  # noqa: S101
        cum = self.hist.cumsum(dim=1).double()
        total = cum[:, -1:]
        rank = total * p / 100.0
        idx = torch.searchsorted(cum, rank).clamp(max=HIST_BINS - 1)
        below = torch.where(idx > 0, cum.gather(1, (idx - 1).clamp(min=0)), torch.zeros_like(rank))
        inside = self.hist.gather(1, idx).double().clamp(min=1)
        frac = ((rank - below) / inside).clamp(0, 1)
        value = (idx.double() + frac) / HIST_BINS * self.max.double()[:, None]
        return torch.minimum(value.squeeze(1), self.max.double()).float()


class CalibrationData:
    """Calibration inputs, re-iterable and checked batch by batch as they stream.

    Args:
        calib: a tensor [N, ...], or an iterable of tensors or (input, label) pairs (a
            DataLoader). A one-shot iterator is materialized once.

    Raises:
        CalibrationError: (when iterated) empty, not tensors, not float, or not finite.
    """

    def __init__(self, calib: object) -> None:
        if calib is None:
            raise CalibrationError("calibration data is required: pass a tensor or a DataLoader")
        if isinstance(calib, torch.Tensor):
            self._items: Iterable[object] = [calib]
        elif isinstance(calib, Iterable):
            self._items = list(calib) if iter(calib) is calib else calib
        else:
            raise CalibrationError(
                f"calibration data must be a tensor or an iterable of batches, got "
                f"{type(calib).__name__}"
            )

    def __iter__(self) -> Iterator[torch.Tensor]:
        seen = 0
        for i, item in enumerate(self._items):
            x = item[0] if isinstance(item, (tuple, list)) and item else item
            if not isinstance(x, torch.Tensor):
                raise CalibrationError(
                    f"calibration batches must be tensors or (input, label) pairs, got "
                    f"{type(x).__name__}"
                )
            if not x.is_floating_point():
                raise CalibrationError(
                    f"calibration batch {i} has dtype {x.dtype}; give float images, normalized "
                    "as for the ANN"
                )
            if x.ndim == 0 or x.shape[0] == 0:
                continue
            if not torch.isfinite(x).all():
                raise CalibrationError(f"calibration batch {i} contains NaN or Inf values")
            seen += x.shape[0]
            yield x
        if seen == 0:
            raise CalibrationError("calibration data is empty: give at least one image")

    def first(self) -> torch.Tensor:
        """The first non-empty batch."""
        return next(iter(self))


def observe(
    model: nn.Module, batches: Iterable[torch.Tensor], observers: Iterable[Observer], passes: int
) -> None:
    """Run every batch through `model` `passes` times, telling each observer the pass index.

    Raises:
        CalibrationError: a batch does not fit the model.
    """
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    observers = list(observers)
    with torch.inference_mode():
        for pass_index in range(passes):
            for obs in observers:
                obs.pass_index = pass_index
            for i, b in enumerate(batches):
                try:
                    model(b.to(device))
                except RuntimeError as err:
                    raise CalibrationError(
                        f"calibration batch {i} of shape {tuple(b.shape)} and dtype {b.dtype} "
                        f"does not fit the model: {err}"
                    ) from err


def collect_scales(ann: fx.GraphModule, batches: CalibrationData, norm: Norm) -> list[torch.Tensor]:
    """Run calibration batches through a copy of `ann` and return lambda for each ReLU site.

    Args:
        ann: the folded ANN, its ReLUs marked by `canonicalize_relu`.
        batches: calibration inputs.
        norm: MaxNorm, PercentileNorm, or TrainedScale (reads no data).

    Returns:
        One lambda per ReLU site in graph order: [] or [C] (channelwise). Zero scales (a
        layer silent on all calibration data) become 1. A clipped ReLU's lambda is capped at
        its m: an IF neuron fires at most once a step, so its rate saturates at lambda = m as
        min(max(x, 0), m) does.

    Raises:
        CalibrationError: a batch does not fit the model.
        ConversionError: TrainedScale on a network with plain ReLUs.
    """
    if isinstance(norm, TrainedScale):
        return trained_scales(ann)
    gm, observers = tap_relu_sites(ann, lambda: Observer(norm.channelwise), "observer")
    observe(gm, batches, observers, passes=2 if isinstance(norm, PercentileNorm) else 1)
    scales = []
    caps = [node.meta.get(RELU_CAP_META) for node in relu_sites(ann)]
    for obs, cap in zip(observers, caps, strict=True):
        assert obs.max is not None  # noqa: S101 - at least one batch ran
        s = obs.percentile(norm.p) if isinstance(norm, PercentileNorm) else obs.max
        s = torch.where(s > 0, s, torch.ones_like(s)).float()
        if cap is not None:
            s = s.clamp(max=cap)
        scales.append(s if norm.channelwise else s.reshape(()))
    return scales
