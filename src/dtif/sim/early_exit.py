"""Early exit: stop simulating an image once its prediction is settled.

A policy (`EarlyExit`) looks at the accumulated output after every step. Its score is either
the top-1 margin of the mean output (accumulated output / t, in the ANN's logit units) or its
softmax confidence. An image exits at the first step t where the score has been at least the
threshold for k consecutive steps (t, t-1, ..., t-k+1); one that never settles runs to T_max.
Its answer is the accumulated output at its exit step.

`dtif.sim.exit_calibration` chooses a policy per network on calibration images.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, fields, is_dataclass, replace
from typing import Any, Literal

import torch

from dtif.errors import DtifError, InputError
from dtif.nn.buffers import LayerRun
from dtif.nn.context import RunContext

Rule = Literal["margin", "confidence"]
RULES: tuple[Rule, ...] = ("margin", "confidence")
DEFAULT_TARGET_LOSS = 0.5
"""The accuracy loss (percentage points) against the ANN that `calibrate_exit` allows."""


@dataclass(frozen=True)
class EarlyExit:
    """A per-image early-exit policy.

    Attributes:
        rule: "margin" (top-1 minus top-2 of the mean output) or "confidence" (its softmax
            maximum).
        threshold: the score an image's output must reach.
        k: the number of consecutive steps it must stay there, >= 1.
    """

    rule: Rule = "margin"
    threshold: float = 1.0
    k: int = 3

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise InputError(f"early-exit rule must be one of {RULES}, got {self.rule!r}")
        if not isinstance(self.k, int) or self.k < 1:
            raise InputError(f"early-exit k must be an int >= 1, got {self.k!r}")
        if not math.isfinite(self.threshold):
            raise InputError(f"early-exit threshold must be finite, got {self.threshold!r}")

    def score(self, accumulated: torch.Tensor, step: int) -> torch.Tensor:
        """[B] the score of accumulated outputs [B, ...] after `step` steps."""
        mean = accumulated.flatten(1).double() / step
        if self.rule == "confidence":
            return torch.softmax(mean, dim=1).amax(dim=1)
        if mean.shape[1] < 2:
            return torch.full_like(mean[:, 0], math.inf)
        top = mean.topk(2, dim=1).values
        return top[:, 0] - top[:, 1]

    def update(self, streak: torch.Tensor, accumulated: torch.Tensor, step: int) -> torch.Tensor:
        """The new streak [B] (consecutive settled steps) after `step`; exit where >= k."""
        settled = self.score(accumulated, step) >= self.threshold
        return torch.where(settled, streak + 1, torch.zeros_like(streak))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        return f"{self.rule}>={self.threshold:.4g} for {self.k} steps"


@dataclass(frozen=True)
class AutoExit:
    """Calibrate an `EarlyExit` per network (`calibrate_exit`) on the calibration images.

    Attributes:
        target_loss: the accuracy loss against the ANN allowed, in percentage points.
    """

    target_loss: float = DEFAULT_TARGET_LOSS

    def __post_init__(self) -> None:
        if not (math.isfinite(self.target_loss) and self.target_loss >= 0):
            raise InputError(f"early-exit target loss must be >= 0 points, got {self.target_loss}")


ExitSpec = EarlyExit | AutoExit

_SPEC = re.compile(r"^(margin|confidence):([^:]+)(?::(?:k=)?(\d+))?$")


def parse_exit(text: str) -> ExitSpec:
    """Parse `--early-exit`: "auto", "auto:POINTS", or "margin|confidence:THRESHOLD[:k=K]".

    Raises:
        InputError: any other text.
    """
    text = text.strip()
    help_ = (
        "use auto (calibrate, 0.5 points), auto:POINTS, margin:THRESHOLD[:k=K] "
        "or confidence:THRESHOLD[:k=K]"
    )
    try:
        if text == "auto":
            return AutoExit()
        if text.startswith("auto:"):
            return AutoExit(float(text[5:]))
        m = _SPEC.match(text)
        if m is not None:
            return EarlyExit(m[1], float(m[2]), int(m[3]) if m[3] else 3)  # type: ignore[arg-type]
    except ValueError:
        pass
    raise InputError(f"bad --early-exit {text!r}: {help_}")


def exit_steps(policy: EarlyExit, outputs: torch.Tensor) -> torch.Tensor:
    """[B] the exit step (1..T) of each image, from accumulated outputs [T, B, ...].

    The same rule, step by step, as the simulation applies online.
    """
    num_steps, batch = outputs.shape[0], outputs.shape[1]
    steps = torch.full((batch,), num_steps, dtype=torch.long, device=outputs.device)
    streak = torch.zeros(batch, dtype=torch.long, device=outputs.device)
    done = torch.zeros(batch, dtype=torch.bool, device=outputs.device)
    for t in range(1, num_steps + 1):
        streak = policy.update(streak, outputs[t - 1], t)
        new = (streak >= policy.k) & ~done
        steps[new] = t
        done |= new
    return steps


def at_exit(outputs: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
    """[B, ...] each image's accumulated output at its exit step."""
    idx = (steps - 1).view(1, -1, *([1] * (outputs.dim() - 2))).expand(1, *outputs.shape[1:])
    return outputs.gather(0, idx)[0]


def exit_summary(histogram: list[float]) -> dict[str, float]:
    """Mean, median and 95th percentile exit step of a histogram (index t-1 counts step t)."""
    counts = torch.tensor(histogram, dtype=torch.float64)
    n = float(counts.sum())
    steps = torch.arange(1, len(histogram) + 1, dtype=torch.float64)
    cum = torch.cumsum(counts, 0)

    def quantile(q: float) -> int:
        return int(torch.searchsorted(cum, q * n - 1e-9).item()) + 1

    return {
        "mean_step": float((counts * steps).sum() / n),
        "median_step": quantile(0.5),
        "p95_step": quantile(0.95),
    }


def _select(value: Any, keep: torch.Tensor, batch: int) -> Any:
    """`value` restricted to the batch rows `keep` (tensors with a leading batch dim)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, torch.Tensor):
        return value[keep] if value.dim() > 0 and value.shape[0] == batch else value
    if is_dataclass(value) and not isinstance(value, type):
        return replace(
            value, **{f.name: _select(getattr(value, f.name), keep, batch) for f in fields(value)}
        )
    if isinstance(value, LayerRun):
        value.forget_batch()
        return value
    if isinstance(value, tuple):
        return type(value)(*(_select(v, keep, batch) for v in value))
    raise DtifError(f"cannot drop exited images from a layer state of type {type(value).__name__}")


def compact_states(ctx: RunContext, keep: torch.Tensor, batch: int) -> None:
    """Keep only the batch rows `keep` in every layer's carried state (in `ctx.states`)."""
    for name, value in ctx.states.items():
        ctx.states[name] = _select(value, keep, batch)
