"""Latency under the measurement protocol."""

from __future__ import annotations

from collections.abc import Sequence

_EPS = 1e-9


def latency(accuracy: Sequence[float], ann_accuracy: float, delta_points: float) -> int | None:
    """L_delta: the smallest T with a(T') >= A - delta for every T' in [T, T_max].

    Args:
        accuracy: a(T) as fractions, index t-1 holds step t.
        ann_accuracy: A as a fraction.
        delta_points: delta in percentage points (1.0 means one point).

    Returns:
        The latency in steps, or None when it is not reached by T_max.
    """
    target = ann_accuracy - delta_points / 100.0
    best: int | None = None
    for t in range(len(accuracy), 0, -1):
        if accuracy[t - 1] + _EPS < target:
            break
        best = t
    return best
