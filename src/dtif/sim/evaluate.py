"""`evaluate`: stream a test loader through the SNN and its reference ANN, accumulating metrics."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from tqdm.auto import tqdm

from dtif.errors import InputError
from dtif.metrics.energy import EnergyModel
from dtif.metrics.latency import latency
from dtif.sim.early_exit import EarlyExit, exit_summary
from dtif.sim.engine import simulate
from dtif.sim.network import SpikingNetwork


@dataclass
class Evaluation:
    """Accuracy and cost of one SNN on one test set, at every T <= num_steps.

    Attributes:
        accuracy: a(T) as fractions, index t-1 holds step t.
        ann_accuracy: the reference ANN's accuracy A on the same images.
        synops: cumulative SOPs per sample at each T.
        synops_graded: the part of `synops` whose events cost a multiply.
        energy_pj: cumulative energy per sample at each T, in pJ.
        ann_energy_pj: the ANN's energy per sample, in pJ.
        ann_macs: the ANN's MACs per sample.
        static_macs: MACs per sample of the SNN's analog first part.
        firing_rates: spikes per neuron per step, averaged over samples and steps, by layer.
        spikes: total spikes per step, summed over samples, by layer.
        num_samples: the number of test images.
        exit_steps: with early exit, how many images exited at each step (index t-1 holds
            step t); `accuracy`, `synops` and `energy_pj` then count each image at
            min(T, its exit step), so their last values are those at exit. None without.
        exit_policy: the early-exit policy, as a dict, or None.
        image_correct: with `evaluate(..., per_image=True)`, [N, T] bool: whether each image
            (in loader order) is classified correctly at each step; else None. Not saved
            by `to_dict` (see `dtif.metrics.paired_latency`).
        image_ann_correct: [N] bool, the same for the ANN; else None.
    """

    accuracy: list[float]
    ann_accuracy: float
    synops: list[float]
    synops_graded: list[float]
    energy_pj: list[float]
    ann_energy_pj: float
    ann_macs: int
    static_macs: int
    firing_rates: dict[str, float]
    spikes: dict[str, list[float]] = field(default_factory=dict)
    num_samples: int = 0
    exit_steps: list[float] | None = None
    exit_policy: dict[str, Any] | None = None
    image_correct: torch.Tensor | None = None
    image_ann_correct: torch.Tensor | None = None

    @property
    def num_steps(self) -> int:
        return len(self.accuracy)

    def latency(self, delta: float = 1.0) -> int | None:
        """L_delta in steps (delta in percentage points), or None when not reached."""
        return latency(self.accuracy, self.ann_accuracy, delta)

    def exit_stats(self) -> dict[str, Any]:
        """With early exit: accuracy, mean/median/p95 exit step, SOPs and energy per image at
        exit (see `dtif.sim.early_exit.exit_summary`); {} without."""
        if self.exit_steps is None:
            return {}
        return {
            "accuracy": self.accuracy[-1],
            **exit_summary(self.exit_steps),
            "synops": self.synops[-1],
            "energy_pj": self.energy_pj[-1],
        }

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        extra = (
            {}
            if self.exit_steps is None
            else {
                "exit_steps": self.exit_steps,
                "exit_policy": self.exit_policy,
                **{f"exit_{k}": v for k, v in self.exit_stats().items()},
            }
        )
        return {
            **extra,
            "accuracy": self.accuracy,
            "ann_accuracy": self.ann_accuracy,
            "latency": {"1.0": self.latency(1.0), "0.1": self.latency(0.1)},
            "synops": self.synops,
            "synops_graded": self.synops_graded,
            "energy_pj": self.energy_pj,
            "ann_energy_pj": self.ann_energy_pj,
            "ann_macs": self.ann_macs,
            "static_macs": self.static_macs,
            "firing_rates": self.firing_rates,
            "num_samples": self.num_samples,
            "num_steps": self.num_steps,
        }


@dataclass
class Totals:
    """Running sums over batches, all integer counts held in float64.

    Every field counts whole events, so sums of totals (over batches, or over ranks with
    `dtif.distributed.all_reduce_totals`) are exact in any order below 2**53; energy is derived
    from the SOP counts in `finish`. Hence a sharded run gives exactly the single-process result.

    Attributes:
        correct: [T] correct SNN predictions at each T.
        ann_correct: [] correct ANN predictions.
        synops: [T] cumulative SOPs at each T, summed over samples.
        synops_graded: [T] the part of `synops` whose events cost a multiply.
        spikes: [T] spikes per step by layer name, summed over samples.
        count: [] the number of samples.
        exits: [T] images that exited at each step (early exit), or None.
        image_correct: [N, T] bool per image in loader order (`per_image`), or None.
        image_ann_correct: [N] bool per image (`per_image`), or None.
    """

    correct: torch.Tensor
    ann_correct: torch.Tensor
    synops: torch.Tensor
    synops_graded: torch.Tensor
    spikes: dict[str, torch.Tensor]
    count: torch.Tensor
    exits: torch.Tensor | None = None
    image_correct: torch.Tensor | None = None
    image_ann_correct: torch.Tensor | None = None


def _batches(loader: Iterable[Any]) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
    for item in loader:
        if not (isinstance(item, (tuple, list)) and len(item) >= 2):
            raise InputError("the test loader must yield (input, label) pairs")
        x, y = item[0], item[1]
        if isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor) and y.shape != x.shape[:1]:
            raise InputError(f"a test batch of {tuple(x.shape)} inputs has labels {tuple(y.shape)}")
        yield x, y


def accumulate(
    snn: SpikingNetwork,
    loader: Iterable[Any],
    num_steps: int,
    energy: EnergyModel,
    progress: bool = True,
    exit: EarlyExit | None = None,
    per_image: bool = False,
    **sim_kw: Any,
) -> Totals:
    """Sum correct counts per T, SOPs and spikes over the loader's batches.

    Raises:
        InputError: the loader is empty.
    """
    totals = _accumulate(snn, loader, num_steps, energy, progress, exit, per_image, **sim_kw)
    if totals is None:
        raise InputError("the test loader is empty")
    return totals


def _accumulate(
    snn: SpikingNetwork,
    loader: Iterable[Any],
    num_steps: int,
    energy: EnergyModel,
    progress: bool = True,
    exit: EarlyExit | None = None,
    per_image: bool = False,
    **sim_kw: Any,
) -> Totals | None:
    totals: Totals | None = None
    bar = tqdm(desc="simulate", unit="img", disable=not progress, leave=False)
    device = snn.device
    for x, y in _batches(loader):
        res = simulate(snn, x, num_steps, energy=energy, exit=exit, **sim_kw)
        y = y.to(device)
        with torch.inference_mode():
            ann_pred = snn.ann(x.to(device)).flatten(1).argmax(dim=1)
        n = x.shape[0]
        hits = res.predictions() == y[None]  # [T, B]
        ann_hits = ann_pred == y
        # A batch's SOPs are a whole number (spike events x integer fan-outs); `simulate`
        # reports them per sample, so undo its division by n and drop the rounding error.
        part = Totals(
            correct=hits.sum(dim=1).double(),
            ann_correct=ann_hits.sum().double(),
            synops=torch.round(res.synops * n),
            synops_graded=torch.round(res.synops_graded * n),
            spikes={k: v.double() for k, v in res.spikes.items()},
            count=torch.tensor(float(n), dtype=torch.float64, device=device),
            exits=None
            if res.exit_steps is None
            else torch.bincount(res.exit_steps - 1, minlength=num_steps).double(),
            image_correct=hits.T.cpu() if per_image else None,
            image_ann_correct=ann_hits.cpu() if per_image else None,
        )
        totals = part if totals is None else _merge(totals, part)
        bar.update(n)
        acc = (totals.correct[-1] / totals.count).item()
        bar.set_postfix(acc_T=f"{acc:.3f}")
    bar.close()
    return totals


def _merge(a: Totals, b: Totals) -> Totals:
    return Totals(
        correct=a.correct + b.correct,
        ann_correct=a.ann_correct + b.ann_correct,
        synops=a.synops + b.synops,
        synops_graded=a.synops_graded + b.synops_graded,
        spikes={k: a.spikes[k] + b.spikes[k] for k in a.spikes},
        count=a.count + b.count,
        exits=None if a.exits is None or b.exits is None else a.exits + b.exits,
        image_correct=_cat(a.image_correct, b.image_correct),
        image_ann_correct=_cat(a.image_ann_correct, b.image_ann_correct),
    )


def _cat(a: torch.Tensor | None, b: torch.Tensor | None) -> torch.Tensor | None:
    return None if a is None or b is None else torch.cat([a, b])


def finish(snn: SpikingNetwork, totals: Totals, energy: EnergyModel) -> Evaluation:
    """Turn summed totals into an Evaluation; energy per sample follows from the SOP counts."""
    n = float(totals.count.item())
    profile = snn.profile(snn.input_shape)
    steps = totals.correct.shape[0]
    rates = {
        k: float(v.sum().item() / (n * steps * max(profile.layer_sizes.get(k, 1), 1)))
        for k, v in totals.spikes.items()
    }
    return Evaluation(
        accuracy=(totals.correct / n).tolist(),
        ann_accuracy=float(totals.ann_correct.item() / n),
        synops=(totals.synops / n).tolist(),
        synops_graded=(totals.synops_graded / n).tolist(),
        energy_pj=energy.snn_pj(
            profile.static_macs,
            (totals.synops - totals.synops_graded) / n,
            totals.synops_graded / n,
        ).tolist(),
        ann_energy_pj=energy.ann_pj(profile.ann_macs),
        ann_macs=profile.ann_macs,
        static_macs=profile.static_macs,
        firing_rates=rates,
        spikes={k: v.tolist() for k, v in totals.spikes.items()},
        num_samples=int(n),
        exit_steps=None if totals.exits is None else totals.exits.tolist(),
        image_correct=totals.image_correct,
        image_ann_correct=totals.image_ann_correct,
    )


def evaluate(
    snn: SpikingNetwork,
    loader: Iterable[Any],
    num_steps: int,
    *,
    energy: EnergyModel | None = None,
    progress: bool = True,
    reduce: Callable[[Totals | None], Totals] | None = None,
    exit: EarlyExit | None = None,
    per_image: bool = False,
    **sim_kw: Any,
) -> Evaluation:
    """Evaluate `snn` on every (input, label) batch of `loader`, for every T <= num_steps.

    Args:
        snn: the converted network.
        loader: an iterable of (input [B, ...], label [B]) pairs.
        num_steps: T_max.
        energy: the energy model (default `EnergyModel()`).
        progress: show a progress bar.
        reduce: combines this process's totals (None when `loader` is empty) with those of
            the other processes, e.g. `dtif.distributed.all_reduce_totals` when each rank
            evaluates its `dtif.distributed.shard` of the test set.
        exit: an early-exit policy (`dtif.EarlyExit`): each image stops at its exit step;
            the accuracy, SOPs and energy at T count it at min(T, its exit step), and
            `Evaluation.exit_steps` holds the histogram of exit steps. Calibrate one on
            calibration images with `dtif.calibrate_exit`.
        per_image: also keep whether each image is correct at each step
            (`Evaluation.image_correct`), for `dtif.metrics.paired_latency`. One process only.
        sim_kw: passed to `simulate` (time_chunk, batch_chunk).

    Returns:
        Accuracy, latency, SOPs, energy and firing rates.

    Raises:
        InputError: the loader is empty (and no `reduce` is given); `per_image` with `reduce`.
    """
    energy = energy or EnergyModel()
    if reduce is None:
        totals = accumulate(snn, loader, num_steps, energy, progress, exit, per_image, **sim_kw)
    elif per_image:
        raise InputError(
            "per_image records need one process: evaluate without `reduce` (gather each "
            "rank's results yourself), or without per_image"
        )
    else:
        totals = reduce(_accumulate(snn, loader, num_steps, energy, progress, exit, **sim_kw))
    ev = finish(snn, totals, energy)
    ev.exit_policy = None if exit is None else exit.to_dict()
    return ev
