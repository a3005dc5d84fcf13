"""`Method`: a named conversion recipe (neuron, norm, search, bias calibration, burst)."""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import nn

from dtif.calibrate.bias import calibrate_biases
from dtif.calibrate.search import START, DTIFCalibration, better, calibrate_dtif, search_loss
from dtif.convert.normalize import Norm, has_qcfs
from dtif.convert.options import MaxPoolPolicy, to_dict
from dtif.convert.pipeline import check_burst, convert
from dtif.errors import ConversionError, InputError
from dtif.neurons import DTIFParams, NeuronParams
from dtif.sim.network import SpikingNetwork


@dataclass(frozen=True)
class Method:
    """A conversion recipe.

    Attributes:
        name: the short name.
        neuron: IF or DTIF parameters.
        norm: the threshold normalization.
        description: one line for `--list-methods`.
        auto: True when DTIF's hyperparameters are calibrated per network (`dtif-auto`).
        alpha_grid: the alphas that calibration tries (None: `calibrate_dtif`'s default).
        dynamic_steps_grid: the K that calibration tries after its search, for a threshold
            that is dynamic for the first K steps only (empty: always dynamic).
        spread_grid: the `v0_spread` values that calibration tries after K (empty: none).
        theta_input_grid: the `theta_input` rules that calibration tries last (empty: none).
        theta_input_last: try `theta_input_grid` after the burst and the bias calibration
            (each rule with its own bias calibration) instead of at the end of the search.
        bias_steps: None, or the T at which each layer's bias is calibrated after conversion.
        burst: None, or the most spikes a step, set after the search (which runs with one)
            and before bias calibration.
        search_passes: how many times the per-layer (alpha, v0) search runs; each pass after
            the first starts from the values chosen so far, with K, the spread and the rule
            of the first pass in place.
        final_pass: after the bursts, the bias calibration and the rule, run the per-layer
            search once more on the finished network, then calibrate its biases afresh.
    """

    name: str
    neuron: NeuronParams
    norm: Norm
    description: str
    auto: bool = False
    alpha_grid: tuple[float, ...] | None = None
    dynamic_steps_grid: tuple[int, ...] = ()
    bias_steps: int | None = None
    burst: int | None = None
    spread_grid: tuple[float, ...] = ()
    theta_input_grid: tuple[str, ...] = ()
    theta_input_last: bool = False
    search_passes: int = 1
    final_pass: bool = False

    def __post_init__(self) -> None:
        passes = self.search_passes
        if isinstance(passes, bool) or not isinstance(passes, int) or passes < 1:
            raise InputError(
                f"method {self.name}: search_passes must be an int >= 1, got {passes!r}"
            )
        if passes > 1 and not self.auto:
            raise InputError(
                f"method {self.name}: search_passes repeats the calibration search; set auto "
                "to true, or drop search_passes"
            )
        if self.final_pass and not self.auto:
            raise InputError(
                f"method {self.name}: final_pass repeats the calibration search; set auto to "
                "true, or drop final_pass"
            )
        if self.theta_input_last and not self.theta_input_grid:
            raise InputError(
                f"method {self.name}: theta_input_last chooses from theta_input_grid, which "
                "is empty; give the rules to try, or drop theta_input_last"
            )
        grids = self.alpha_grid or self.dynamic_steps_grid or self.spread_grid
        if not self.auto and (grids or self.theta_input_grid):
            raise InputError(
                f"method {self.name}: alpha_grid, dynamic_steps_grid, spread_grid and "
                "theta_input_grid are tried by the calibration search only; set auto to true, "
                "or drop the grids"
            )

    def to_dict(self) -> dict[str, Any]:
        d = {
            "name": self.name,
            "neuron": to_dict(self.neuron),
            "norm": to_dict(self.norm),
            "description": self.description,
            "auto": self.auto,
        }
        if self.alpha_grid is not None:
            d["alpha_grid"] = list(self.alpha_grid)
        if self.dynamic_steps_grid:
            d["dynamic_steps_grid"] = list(self.dynamic_steps_grid)
        if self.spread_grid:
            d["spread_grid"] = list(self.spread_grid)
        if self.theta_input_grid:
            d["theta_input_grid"] = list(self.theta_input_grid)
        if self.theta_input_last:
            d["theta_input_last"] = True
        if self.bias_steps is not None:
            d["bias_steps"] = self.bias_steps
        if self.burst is not None:
            d["burst"] = self.burst
        if self.search_passes != 1:
            d["search_passes"] = self.search_passes
        if self.final_pass:
            d["final_pass"] = True
        if self.auto:  # results of an older search do not match, so --resume reruns them
            d["search_start"] = list(START)
        return d

    def build(
        self,
        model: nn.Module,
        calib: torch.Tensor,
        maxpool: MaxPoolPolicy,
        target_steps: int,
        progress: bool = False,
    ) -> SpikingNetwork:
        """Convert `model` with this method; an auto method calibrates DTIF on `calib` first."""
        if self.burst is not None and self.burst > 1 and has_qcfs(model):  # before the search
            raise ConversionError(
                f"method {self.name} fires up to {self.burst} spikes a step, but the model's "
                "QCFS activations saturate at their trained lambda: use a method without "
                "bursts (e.g. dtif-auto-qcfs-signed)"
            )
        snn = self._convert(model, calib, maxpool, target_steps, progress)
        if self.theta_input_last:
            snn = self._choose_rule_last(snn, calib, target_steps, progress)
        else:
            self._finish(snn, calib, progress)
        if self.final_pass:
            self._search_finished(snn, calib, target_steps, progress)
        return snn

    def _finish(self, snn: SpikingNetwork, calib: torch.Tensor, progress: bool) -> None:
        if self.burst is not None:
            set_burst(snn, self.burst)
        if self.bias_steps is not None:
            calibrate_biases(snn, calib, self.bias_steps, progress=progress)

    def _search_finished(
        self, snn: SpikingNetwork, calib: torch.Tensor, target_steps: int, progress: bool
    ) -> None:
        """The per-layer search once more, on `snn` as it will run (bursts, input offsets and
        rule in place); then the offsets are calibrated afresh for the new values."""
        before = dict(snn.meta.get("calibration", {}))
        cal = self._search_again(snn, calib, target_steps, progress)
        if self.bias_steps is not None:
            for m in snn.neurons():
                m.set_input_offset(None)
            calibrate_biases(snn, calib, self.bias_steps, progress=progress)
        snn.meta["calibration"] = {**before, "final_pass_loss": cal.loss}

    def _search_again(
        self, snn: SpikingNetwork, calib: torch.Tensor, target_steps: int, progress: bool
    ) -> DTIFCalibration:
        """The per-layer (alpha, v0) search once more on `snn` as it is, from its own values."""
        alphas = {} if self.alpha_grid is None else {"alpha_grid": self.alpha_grid}
        return calibrate_dtif(
            snn,
            calib,
            target_steps=target_steps,
            base=snn.meta["neuron"],
            progress=progress,
            start=None,
            **alphas,
        )

    def _choose_rule_last(
        self, snn: SpikingNetwork, calib: torch.Tensor, target_steps: int, progress: bool
    ) -> SpikingNetwork:
        """Finish a copy of the searched `snn` with each theta_input rule; keep the one with
        the lowest search loss (ties: fewer synops, then the rule of the search)."""
        best: tuple[SpikingNetwork, float, float] | None = None
        losses: dict[str, float] = {}
        for rule in (snn.meta["neuron"].theta_input, *self.theta_input_grid):
            if rule in losses:
                continue
            trial = copy.deepcopy(snn)
            for m in trial.neurons():
                m.params = replace(m.params, theta_input=rule)
            trial.meta["neuron"] = replace(trial.meta["neuron"], theta_input=rule)
            self._finish(trial, calib, progress)
            loss, sop = search_loss(trial, calib, target_steps)
            losses[rule] = loss
            if best is None or better(loss, sop, best[1], best[2]):
                best = (trial, loss, sop)
        assert best is not None  # the search's own rule is always tried
        chosen = best[0]
        chosen.meta["calibration"] = {
            **chosen.meta.get("calibration", {}),
            "loss": best[1],
            "theta_input_losses": losses,
        }
        return chosen

    def _convert(
        self,
        model: nn.Module,
        calib: torch.Tensor,
        maxpool: MaxPoolPolicy,
        target_steps: int,
        progress: bool,
    ) -> SpikingNetwork:
        if not self.auto:
            return convert(model, calib, neuron=self.neuron, norm=self.norm, maxpool=maxpool)
        base = self.neuron if isinstance(self.neuron, DTIFParams) else None
        grid: dict[str, Any] = {} if self.alpha_grid is None else {"alpha_grid": self.alpha_grid}
        if self.dynamic_steps_grid:
            grid["dynamic_steps_grid"] = self.dynamic_steps_grid
        if self.spread_grid:
            grid["spread_grid"] = self.spread_grid
        if self.theta_input_grid and not self.theta_input_last:
            grid["theta_input_grid"] = self.theta_input_grid
        snn = calibrate_dtif(
            model,
            calib,
            target_steps=target_steps,
            base=base,
            norm=self.norm,
            maxpool=maxpool,
            progress=progress,
            **grid,
        ).snn
        for _ in range(1, self.search_passes):  # the per-layer search only, from where it ended
            snn = self._search_again(snn, calib, target_steps, progress).snn
        if self.search_passes > 1:
            snn.meta["calibration"]["passes"] = self.search_passes
        return snn


def set_burst(snn: SpikingNetwork, burst: int) -> None:
    """Let every neuron of `snn` fire up to `burst` spikes a step (its record too).

    Raises:
        ConversionError: activations that saturate (QCFS, clipped ReLU), as `convert` does.
    """
    check_burst(snn.ann, burst)
    for m in snn.neurons():
        m.params = replace(m.params, burst=burst)
    snn.meta["neuron"] = replace(snn.meta["neuron"], burst=burst)
