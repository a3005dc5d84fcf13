"""Paired bootstraps over test images: is one method's latency really lower than another's
(`paired_latency`), and is an SNN's accuracy gap to its ANN real (`accuracy_gap`)?

L_delta is read off a curve measured on a finite test set, so a one-step difference between
two methods can be a handful of images. Both methods (and the ANN) are resampled with the
same images, R times; each resample gives each method's L_delta and their difference.
A resample where a method does not reach A - delta by T_max counts its latency as T_max + 1.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch

from dtif.errors import InputError
from dtif.metrics.latency import latency

_EPS = 1e-9


@dataclass(frozen=True)
class PairedLatency:
    """L_delta of methods a and b on the same images, with a paired bootstrap.

    Attributes:
        latency_a, latency_b: L_delta on all the images (None: not reached by T_max).
        diff_low, diff_high: the central `level` interval of L_a - L_b over the resamples.
        prob_a_lower: the fraction of resamples with L_a < L_b.
        prob_tie: the fraction with L_a == L_b.
        resamples, level, delta_points, num_images, num_steps: the settings.
    """

    latency_a: int | None
    latency_b: int | None
    diff_low: float
    diff_high: float
    prob_a_lower: float
    prob_tie: float
    resamples: int
    level: float
    delta_points: float
    num_images: int
    num_steps: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check(name: str, x: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or tuple(x.shape) != shape:
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise InputError(
            f"{name} must be a tensor of shape {shape} (images x steps, as "
            f"Evaluation.image_correct from evaluate(..., per_image=True)), got {got}"
        )
    if x.dtype != torch.bool and not bool(((x == 0) | (x == 1)).all()):
        raise InputError(f"{name} must hold 0/1 (correct or not) per image, got other values")
    return x.to(torch.float64)


def _settings(resamples: int, level: float) -> None:
    if isinstance(resamples, bool) or not isinstance(resamples, int) or resamples < 1:
        raise InputError(f"resamples must be an integer >= 1, got {resamples!r}")
    if not 0.0 < level < 1.0:
        raise InputError(f"level must be in (0, 1), got {level!r}")


def resampled_latency(acc: torch.Tensor, ann: torch.Tensor, delta_points: float) -> torch.Tensor:
    """L_delta of each row: acc [R, T], ann [R] as fractions -> [R], T + 1 where not reached."""
    steps = acc.shape[1]
    ok = acc + _EPS >= (ann - delta_points / 100.0)[:, None]
    # trailing run of steps that all meet the target: L = T - run + 1
    trailing = torch.cumprod(ok.flip(1).to(torch.int64), dim=1).sum(dim=1)
    return steps - trailing + 1


def paired_latency(
    correct_a: torch.Tensor,
    correct_b: torch.Tensor,
    ann_correct: torch.Tensor,
    *,
    delta_points: float = 1.0,
    resamples: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> PairedLatency:
    """Compare L_delta of methods a and b, evaluated on the same images in the same order.

    Args:
        correct_a, correct_b: [N, T] whether each image is classified correctly at each step.
        ann_correct: [N] whether the ANN classifies each image correctly.
        delta_points: delta in percentage points.
        resamples: bootstrap resamples R (each draws N images with replacement).
        level: the coverage of the interval on L_a - L_b.
        seed: seed of the resampling (a private generator; the global one is untouched).

    Raises:
        InputError: shapes that do not match, values other than 0/1, or bad settings.
    """
    if not isinstance(correct_a, torch.Tensor) or correct_a.ndim != 2 or correct_a.shape[0] < 1:
        got = tuple(correct_a.shape) if isinstance(correct_a, torch.Tensor) else correct_a
        raise InputError(f"correct_a must be [images, steps] with at least one image, got {got}")
    n, steps = correct_a.shape
    a = _check("correct_a", correct_a, (n, steps))
    b = _check("correct_b", correct_b, (n, steps))
    ann = _check("ann_correct", ann_correct, (n,))
    _settings(resamples, level)
    if not delta_points >= 0.0:
        raise InputError(f"delta_points must be >= 0, got {delta_points!r}")
    gen = torch.Generator().manual_seed(seed)
    diffs, lower, tie = [], 0, 0
    for start in range(0, resamples, 250):  # bounded memory: 250 x N counts at a time
        rows = min(250, resamples - start)
        idx = torch.randint(n, (rows, n), generator=gen)
        # how often each image is drawn: whole numbers, so the accuracies below are exact
        counts = torch.zeros(rows, n, dtype=torch.float64)
        counts.scatter_add_(1, idx, torch.ones(rows, n, dtype=torch.float64))
        base = counts @ ann / n
        la = resampled_latency(counts @ a / n, base, delta_points)
        lb = resampled_latency(counts @ b / n, base, delta_points)
        diffs.append((la - lb).double())
        lower += int((la < lb).sum())
        tie += int((la == lb).sum())
    d = torch.cat(diffs)
    tail = (1.0 - level) / 2.0
    q = torch.quantile(d, torch.tensor([tail, 1.0 - tail], dtype=torch.float64))
    full = float(ann.sum() / n)
    return PairedLatency(
        latency_a=latency((a.sum(0) / n).tolist(), full, delta_points),
        latency_b=latency((b.sum(0) / n).tolist(), full, delta_points),
        diff_low=float(q[0]),
        diff_high=float(q[1]),
        prob_a_lower=lower / resamples,
        prob_tie=tie / resamples,
        resamples=resamples,
        level=level,
        delta_points=delta_points,
        num_images=n,
        num_steps=steps,
    )


@dataclass(frozen=True)
class AccuracyGap:
    """a(T) - A, the SNN's accuracy at step T minus the ANN's, in points, on the same images.

    Attributes:
        step: T.
        gap: a(T) - A on all the images.
        low, high: the central `level` interval of the gap over the resamples.
        resamples, level, num_images: the settings.
    """

    step: int
    gap: float
    low: float
    high: float
    resamples: int
    level: float
    num_images: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def accuracy_gap(
    correct: torch.Tensor,
    ann_correct: torch.Tensor,
    *,
    step: int | None = None,
    resamples: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> AccuracyGap:
    """The SNN-ANN accuracy gap at `step` (default T_max) with a paired bootstrap interval.

    Args:
        correct: [N, T] whether each image is right at each step.
        ann_correct: [N] whether the ANN gets each image right.
        step: the T to read, 1..T (default T).
        resamples, level, seed: as in `paired_latency`.

    Raises:
        InputError: shapes that do not match, values other than 0/1, or bad settings.
    """
    if not isinstance(correct, torch.Tensor) or correct.ndim != 2 or correct.shape[0] < 1:
        got = tuple(correct.shape) if isinstance(correct, torch.Tensor) else correct
        raise InputError(f"correct must be [images, steps] with at least one image, got {got}")
    n, steps = correct.shape
    step = steps if step is None else step
    if isinstance(step, bool) or not isinstance(step, int) or not 1 <= step <= steps:
        raise InputError(f"step must be an integer in 1..{steps}, got {step!r}")
    _settings(resamples, level)
    # per image: +1 SNN right and ANN wrong, -1 the reverse, 0 when they agree
    d = _check("correct", correct, (n, steps))[:, step - 1] - _check(
        "ann_correct", ann_correct, (n,)
    )
    gen = torch.Generator().manual_seed(seed)
    gaps = torch.cat(
        [
            d[torch.randint(n, (min(250, resamples - s), n), generator=gen)].mean(dim=1)
            for s in range(0, resamples, 250)
        ]
    )
    tail = (1.0 - level) / 2.0
    q = torch.quantile(gaps, torch.tensor([tail, 1.0 - tail], dtype=torch.float64))
    return AccuracyGap(
        step=step,
        gap=100.0 * float(d.mean()),
        low=100.0 * float(q[0]),
        high=100.0 * float(q[1]),
        resamples=resamples,
        level=level,
        num_images=n,
    )
