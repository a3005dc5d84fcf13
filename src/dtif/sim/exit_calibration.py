"""Calibrate an early-exit policy on calibration images only.

`calibrate_exit` simulates the calibration images once to T_max and, among a grid of policies
(margin thresholds at quantiles of the observed margins, fixed softmax confidences, k from 1
to 8), keeps the one with the least mean exit step whose loss of agreement with the ANN's
predictions stays within the target (default 0.5 points). It reads no labels: the ANN's own
predictions stand in for them, so the loss is measured against the ANN, whose agreement with
itself is 100%. When no policy of the grid meets the target, the one with the least loss is
kept and `ExitCalibration.met` is False.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch

from dtif.errors import InputError
from dtif.sim.early_exit import DEFAULT_TARGET_LOSS, EarlyExit, at_exit, exit_steps
from dtif.sim.engine import simulate

K_GRID = (1, 2, 3, 4, 6, 8)
CONFIDENCE_GRID = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999)


@dataclass
class ExitCalibration:
    """What `calibrate_exit` chose and why.

    Attributes:
        policy: the chosen policy.
        target_loss: the allowed loss (points) of agreement with the ANN.
        loss: the chosen policy's loss on the calibration images, in points.
        mean_step: its mean exit step on them.
        met: False when no policy of the grid met the target (then the least loss is kept).
        num_images: the calibration images used.
    """

    policy: EarlyExit
    target_loss: float
    loss: float
    mean_step: float
    met: bool
    num_images: int

    def to_dict(self) -> dict[str, Any]:
        return {**self.policy.to_dict(), **{k: v for k, v in asdict(self).items() if k != "policy"}}


def _candidates(outputs: torch.Tensor) -> list[EarlyExit]:
    """The grid: margin thresholds at quantiles of the observed margins, fixed confidences."""
    num_steps = outputs.shape[0]
    probe = EarlyExit("margin", 0.0, 1)
    margins = torch.cat([probe.score(outputs[t - 1], t) for t in range(1, num_steps + 1)])
    margins = margins[torch.isfinite(margins)]
    qs = torch.linspace(0.05, 0.99, 24, dtype=torch.float64, device=margins.device)
    cuts = sorted(
        {round(float(v), 6) for v in torch.quantile(margins, qs)} if margins.numel() else {1.0}
    )
    out = [EarlyExit("margin", c, k) for c in cuts for k in K_GRID]
    out += [EarlyExit("confidence", c, k) for c in CONFIDENCE_GRID for k in K_GRID]
    return out


def choose_exit(
    outputs: torch.Tensor, reference: torch.Tensor, target_loss: float = DEFAULT_TARGET_LOSS
) -> ExitCalibration:
    """The least mean exit step whose agreement with `reference` loses <= target_loss points.

    Args:
        outputs: [T, B, ...] accumulated outputs of the calibration images.
        reference: [B] the ANN's predicted classes for them.
        target_loss: allowed loss in percentage points against the ANN (whose agreement with
            itself is 100%).
    """
    batch = outputs.shape[1]
    reference = reference.to(outputs.device)
    best: tuple[float, float, EarlyExit] | None = None
    best_loss: tuple[float, float, EarlyExit] | None = None
    for policy in _candidates(outputs):
        steps = exit_steps(policy, outputs)
        pred = at_exit(outputs, steps).flatten(1).argmax(dim=1)
        loss = 100.0 * float((pred != reference).sum()) / batch
        mean = float(steps.double().mean())
        if loss <= target_loss and (best is None or mean < best[1]):
            best = (loss, mean, policy)
        if best_loss is None or (loss, mean) < best_loss[:2]:
            best_loss = (loss, mean, policy)
    assert best_loss is not None  # noqa: S101 - the grid is never empty
    met = best is not None
    loss, mean, policy = best if best is not None else best_loss
    return ExitCalibration(policy, target_loss, loss, mean, met, batch)


def calibrate_exit(
    snn: Any,
    calib: torch.Tensor,
    num_steps: int,
    target_loss: float = DEFAULT_TARGET_LOSS,
    **sim_kw: Any,
) -> ExitCalibration:
    """Calibrate an early-exit policy for `snn` on calibration images (no labels read).

    Args:
        snn: the converted network (`SpikingNetwork`), with its reference ANN `snn.ann`.
        calib: calibration images from the training split.
        num_steps: T_max of the runs the policy will serve.
        target_loss: allowed loss of agreement with the ANN, in points.
        sim_kw: passed to `simulate` (time_chunk, batch_chunk).
    """
    if calib.shape[0] < 1:
        raise InputError("early-exit calibration needs at least one calibration image")
    res = simulate(snn, calib, num_steps, record=False, **sim_kw)
    with torch.inference_mode():
        reference = snn.ann(calib.to(snn.device)).flatten(1).argmax(dim=1)
    return choose_exit(res.outputs, reference, target_loss)
