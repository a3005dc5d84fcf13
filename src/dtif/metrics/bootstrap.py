"""Paired bootstraps over test images: is one method's latency really lower than another's
(`paired_latency`), and is an SNN's accuracy gap to its ANN real (`accuracy_gap`)?

L_delta is read off a curve measured on a finite test set, so a one-step difference between
two methods can be a handful of images. Both methods (and the ANN) are resampled with the
same images, R times; each resample gives each method's L_delta and their difference.
A resample where a method does not reach A - delta by T_max counts its latency as T_max + 1.
"""

from __future__ import annotations

from collections.abc import Iterator
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


def _images_by_steps(name: str, x: torch.Tensor) -> tuple[int, int]:
    """(N, T) of an [images, steps] record with at least one image."""
    if not isinstance(x, torch.Tensor) or x.ndim != 2 or x.shape[0] < 1:
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else x
        raise InputError(f"{name} must be [images, steps] with at least one image, got {got}")
    return int(x.shape[0]), int(x.shape[1])


def _settings(resamples: int, level: float) -> None:
    if isinstance(resamples, bool) or not isinstance(resamples, int) or resamples < 1:
        raise InputError(f"resamples must be an integer >= 1, got {resamples!r}")
    if not 0.0 < level < 1.0:
        raise InputError(f"level must be in (0, 1), got {level!r}")


def _draws(n: int, resamples: int, seed: int) -> Iterator[torch.Tensor]:
    """Image indices of the resamples, [rows, n] at a time (250 rows: bounded memory), from
    a private generator (the global one is untouched)."""
    gen = torch.Generator().manual_seed(seed)
    for start in range(0, resamples, 250):
        yield torch.randint(n, (min(250, resamples - start), n), generator=gen)


def _interval(values: torch.Tensor, level: float) -> tuple[float, float]:
    """The central `level` interval of `values`."""
    tail = (1.0 - level) / 2.0
    q = torch.quantile(values.double(), torch.tensor([tail, 1.0 - tail], dtype=torch.float64))
    return float(q[0]), float(q[1])


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
    n, steps = _images_by_steps("correct_a", correct_a)
    a = _check("correct_a", correct_a, (n, steps))
    b = _check("correct_b", correct_b, (n, steps))
    ann = _check("ann_correct", ann_correct, (n,))
    _settings(resamples, level)
    if not delta_points >= 0.0:
        raise InputError(f"delta_points must be >= 0, got {delta_points!r}")
    diffs, lower, tie = [], 0, 0
    for idx in _draws(n, resamples, seed):
        # how often each image is drawn: whole numbers, so the accuracies below are exact
        counts = torch.zeros(idx.shape, dtype=torch.float64)
        counts.scatter_add_(1, idx, torch.ones(idx.shape, dtype=torch.float64))
        base = counts @ ann / n
        la = resampled_latency(counts @ a / n, base, delta_points)
        lb = resampled_latency(counts @ b / n, base, delta_points)
        diffs.append((la - lb).double())
        lower += int((la < lb).sum())
        tie += int((la == lb).sum())
    low, high = _interval(torch.cat(diffs), level)
    full = float(ann.sum() / n)
    return PairedLatency(
        latency_a=latency((a.sum(0) / n).tolist(), full, delta_points),
        latency_b=latency((b.sum(0) / n).tolist(), full, delta_points),
        diff_low=low,
        diff_high=high,
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
    n, steps = _images_by_steps("correct", correct)
    step = steps if step is None else step
    if isinstance(step, bool) or not isinstance(step, int) or not 1 <= step <= steps:
        raise InputError(f"step must be an integer in 1..{steps}, got {step!r}")
    _settings(resamples, level)
    # per image: +1 SNN right and ANN wrong, -1 the reverse, 0 when they agree
    d = _check("correct", correct, (n, steps))[:, step - 1] - _check(
        "ann_correct", ann_correct, (n,)
    )
    low, high = _interval(
        torch.cat([d[idx].mean(dim=1) for idx in _draws(n, resamples, seed)]), level
    )
    return AccuracyGap(
        step=step,
        gap=100.0 * float(d.mean()),
        low=100.0 * low,
        high=100.0 * high,
        resamples=resamples,
        level=level,
        num_images=n,
    )
