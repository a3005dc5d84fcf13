"""`calibrate_dtif`: choose DTIF's per-layer alpha and v0 on calibration images.

Objective: on calibration images only, the SNN should agree with the ANN's own predictions as
early as possible. For a horizon of 2 x target_steps steps, the loss is the mean over
T = 1..horizon of the fraction of images whose SNN prediction at T differs from the ANN's,
plus a small penalty on the mean squared error of the rate-decoded logits. Labels are not
used, and the test split is never read.

Search: greedy, layer by layer in graph order, over a small grid of (alpha, v0) for each
spiking layer while the others stay fixed; ties go to fewer synaptic operations. It starts
from IF with v0 = 0.5 in every layer (alpha 0 and v0 0.5 are on the grid), so the result's
loss is at most that baseline's. The network is converted once; candidates only change
neuron parameters.

With a `dynamic_steps_grid`, the search then tries each K of the grid in every layer at once
(the threshold dynamic for the first K steps, then 1) against the searched network as it is,
and keeps the lowest loss. A `spread_grid` is tried next, in the same way, for `v0_spread`,
and a `theta_input_grid` last, for `theta_input`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from dtif.convert.normalize import CalibrationData, Norm, PercentileNorm, TrainedScale, has_qcfs
from dtif.convert.options import MaxPoolPolicy
from dtif.convert.pipeline import convert
from dtif.errors import InputError
from dtif.neurons import DTIFParams
from dtif.neurons.dt_if_neuron import check_theta_input
from dtif.neurons.if_neuron import check_spread
from dtif.nn.neuron import SpikingNeuron
from dtif.sim.network import SpikingNetwork

ALPHA_GRID = (0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)
V0_GRID = (0.0, 0.25, 0.5)
MSE_WEIGHT = 0.1
START = (0.0, 0.5)
"""The search starts from IF with v0 = 0.5 in every layer (docs/dtif.md says why)."""


@dataclass
class DTIFCalibration:
    """The outcome of `calibrate_dtif`.

    Attributes:
        snn: the network with the chosen parameters.
        alpha: chosen alpha per spiking layer.
        v0: chosen v0 per spiking layer.
        loss: the final calibration loss.
        history: one entry per candidate tried: layer, alpha, v0, loss, synops.
    """

    snn: SpikingNetwork
    alpha: tuple[float, ...]
    v0: tuple[float, ...]
    loss: float
    history: list[dict[str, Any]] = field(default_factory=list)


def _loss(
    snn: SpikingNetwork, x: torch.Tensor, ann_logits: torch.Tensor, horizon: int
) -> tuple[float, float]:
    res = snn.simulate(x, horizon)
    steps = torch.arange(1, horizon + 1, device=res.outputs.device).view(-1, 1, 1)
    rates = res.outputs.flatten(2) / steps
    target = ann_logits.flatten(1)
    disagree = (rates.argmax(dim=2) != target.argmax(dim=1)[None]).double().mean()
    scale = target.pow(2).mean().clamp(min=1e-12)
    mse = ((rates - target[None]) ** 2).mean() / scale
    return float(disagree + MSE_WEIGHT * mse), float(res.synops[-1])


def _set(neurons: Sequence[SpikingNeuron], alphas: Sequence[float], v0s: Sequence[float]) -> None:
    for m, a, v in zip(neurons, alphas, v0s):
        m.params = replace(m.params, alpha=float(a), v0=float(v))


def search_images(data: CalibrationData, num_images: int, seed: int) -> torch.Tensor:
    """The seeded subset of calibration images that the search measures its loss on."""
    images = torch.cat([b for b in data])
    gen = torch.Generator().manual_seed(seed)
    return images[torch.randperm(images.shape[0], generator=gen)[: min(num_images, len(images))]]


def search_loss(
    snn: SpikingNetwork,
    calib: object,
    target_steps: int,
    num_images: int = 128,
    seed: int = 0,
) -> tuple[float, float]:
    """`calibrate_dtif`'s loss of `snn` as it is, on the same search images, and its synops."""
    x, ann_logits = _search_targets(snn, CalibrationData(calib), num_images, seed)
    return _loss(snn, x, ann_logits, 2 * target_steps)


def _search_targets(
    snn: SpikingNetwork, data: CalibrationData, num_images: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The search images on `snn`'s device, and the ANN's logits on them."""
    x = search_images(data, num_images, seed).to(snn.device)
    with torch.inference_mode():
        return x, snn.ann(x)


def better(loss: float, sop: float, best: float, best_sop: float) -> bool:
    """A lower loss wins; within 1e-9 of a tie, fewer synaptic operations win."""
    return loss < best - 1e-9 or (abs(loss - best) <= 1e-9 and sop < best_sop)


def _choose_for_all(
    neurons: Sequence[SpikingNeuron],
    name: str,
    grid: Sequence[Any],
    current: Any,
    loss: float,
    trial_all: Any,
) -> tuple[Any, float]:
    """The value of neuron field `name` in `grid` (or `current`) with the lowest loss, set in
    every layer."""
    choice = current
    if not grid:
        return choice, loss
    best, best_sop = trial_all(name, choice)
    for value in grid:
        trial = trial_all(name, value)
        if better(*trial, best, best_sop):
            (best, best_sop), choice = trial, value
    for m in neurons:
        m.params = replace(m.params, **{name: choice})
    return choice, best


def calibrate_dtif(
    model: nn.Module | SpikingNetwork,
    calib: object,
    *,
    target_steps: int = 8,
    base: DTIFParams | None = None,
    norm: Norm | None = None,
    maxpool: MaxPoolPolicy = "error",
    num_images: int = 128,
    alpha_grid: Sequence[float] = ALPHA_GRID,
    v0_grid: Sequence[float] = V0_GRID,
    seed: int = 0,
    progress: bool = False,
    start: tuple[float, float] | None = START,
    dynamic_steps_grid: Sequence[int] = (),
    spread_grid: Sequence[float] = (),
    theta_input_grid: Sequence[str] = (),
) -> DTIFCalibration:
    """Pick per-layer alpha and v0 of a DTIF network on calibration images.

    Args:
        model: the trained ANN (converted here with `base` and `norm`) or a DTIF
            SpikingNetwork (its scales are kept; its neuron parameters are tuned in place).
        calib: calibration images (training split): a tensor or an iterable of batches.
        target_steps: the latency aimed at; the loss looks at T = 1..2*target_steps.
        base: the DTIF parameters to start from (payload, g, theta_min, burst).
        norm: threshold normalization (default: TrainedScale() for a QCFS network, else
            PercentileNorm(99.9)).
        maxpool: the max-pool policy.
        num_images: calibration images used for the search (a seeded subset).
        alpha_grid: alpha candidates per layer.
        v0_grid: v0 candidates per layer.
        seed: seed of the subset.
        progress: show a progress bar.
        start: (alpha, v0) set in every layer before the search (default: alpha 0, v0 0.5,
            the IF baseline with half-threshold start); None keeps the network's own values.
            When the start is on the grid, the greedy search can only lower the loss from
            there.
        dynamic_steps_grid: values of `DTIFParams.dynamic_steps` tried after the search
            (empty: keep the base's).
        spread_grid: values of `DTIFParams.v0_spread` tried last, in every layer at once
            (empty: keep the base's).
        theta_input_grid: values of `DTIFParams.theta_input` tried last, in every layer at
            once (empty: keep the base's).

    Returns:
        The calibrated network, the chosen values, and the search history.

    Raises:
        InputError: target_steps < 1, empty grids, a spread outside [0, 1], or a network that
            is not DTIF.
    """
    if target_steps < 1:
        raise InputError(f"target_steps must be >= 1, got {target_steps}")
    if not alpha_grid or not v0_grid:
        raise InputError("alpha_grid and v0_grid must not be empty")
    for v in spread_grid:  # before the search, not after it
        check_spread("calibrate_dtif", v, "spread_grid value")
    for rule in theta_input_grid:
        check_theta_input("calibrate_dtif", rule, "theta_input_grid value")
    base = base or DTIFParams()
    data = CalibrationData(calib)
    if isinstance(model, SpikingNetwork):
        snn = model
    else:
        if norm is None:
            norm = TrainedScale() if has_qcfs(model) else PercentileNorm(99.9)
        snn = convert(model, data, neuron=base, norm=norm, maxpool=maxpool)
    neurons = snn.neurons()
    if not neurons or not all(isinstance(m.params, DTIFParams) for m in neurons):
        raise InputError("calibrate_dtif needs a network of DTIF neurons")
    x, ann_logits = _search_targets(snn, data, num_images, seed)
    horizon = 2 * target_steps
    if start is None:
        alphas = [float(m.params.alpha) for m in neurons]  # type: ignore[arg-type]  # resolved per layer
        v0s = [float(m.params.v0) for m in neurons]  # type: ignore[arg-type]  # resolved per layer
    else:
        alphas, v0s = [float(start[0])] * len(neurons), [float(start[1])] * len(neurons)
    _set(neurons, alphas, v0s)
    history: list[dict[str, Any]] = []
    bar = tqdm(
        total=len(neurons) * len(alpha_grid) * len(v0_grid),
        desc="calibrate DTIF",
        disable=not progress,
    )

    def trial(i: int, a: float, v: float) -> tuple[float, float]:
        trial_a, trial_v = list(alphas), list(v0s)
        trial_a[i], trial_v[i] = a, v
        _set(neurons, trial_a, trial_v)
        loss, sop = _loss(snn, x, ann_logits, horizon)
        history.append(
            {"layer": neurons[i].layer_name, "alpha": a, "v0": v, "loss": loss, "synops": sop}
        )
        bar.update(1)
        return loss, sop

    def trial_all(name: str, value: Any) -> tuple[float, float]:
        for m in neurons:
            m.params = replace(m.params, **{name: value})
        loss, sop = _loss(snn, x, ann_logits, horizon)
        history.append({"layer": "*", name: value, "loss": loss, "synops": sop})
        return loss, sop

    for i in range(len(neurons)):
        # best starts at infinity, so the first candidate replaces `choice`: every layer ends
        # on a grid point.
        choice, best, best_sop = (alphas[i], v0s[i]), float("inf"), float("inf")
        for a in alpha_grid:
            for v in v0_grid:
                loss, sop = trial(i, a, v)
                if better(loss, sop, best, best_sop):
                    best, best_sop, choice = loss, sop, (a, v)
        alphas[i], v0s[i] = choice
    bar.close()
    _set(neurons, alphas, v0s)
    steps, best = _choose_for_all(
        neurons, "dynamic_steps", dynamic_steps_grid, base.dynamic_steps, best, trial_all
    )
    spread, best = _choose_for_all(
        neurons, "v0_spread", spread_grid, base.v0_spread, best, trial_all
    )
    rule, best = _choose_for_all(
        neurons, "theta_input", theta_input_grid, base.theta_input, best, trial_all
    )
    snn.meta["neuron"] = replace(
        base,
        alpha=tuple(alphas),
        v0=tuple(v0s),
        dynamic_steps=steps,
        v0_spread=spread,
        theta_input=rule,
    )
    snn.meta["calibration"] = {
        "target_steps": target_steps,
        "num_images": int(x.shape[0]),
        "loss": best,
    }
    return DTIFCalibration(snn=snn, alpha=tuple(alphas), v0=tuple(v0s), loss=best, history=history)
