"""SpikingJelly's side of the speed benchmark: its ann2snn conversion of the same ANN, run two ways.

`ann2snn.Converter(RateCodingRecipe(mode="max"))`: IF neurons, soft reset, max norm, the same
conversion as dtif's. Run single-step, the loop of its ann2snn examples
(`functional.reset_net(net)`, then T calls `net(x)` summed), and multi-step
(`functional.set_step_mode(net, "m")`, one call on x repeated to [T, B, ...]).

A helper module (see common.py): SpikingJelly is optional, and imported only here.
"""

from __future__ import annotations

import copy
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class SJNets:
    """SpikingJelly's conversion, single-step and (when that works) multi-step, or why not."""

    single: nn.Module | None = None
    multi: nn.Module | None = None
    error: str | None = None


def status() -> str | None:
    """None when SpikingJelly's ann2snn imports, else why not."""
    try:
        from spikingjelly.activation_based import ann2snn, functional  # noqa: F401
    except Exception as err:  # noqa: BLE001 - any import failure makes it unavailable
        return f"{type(err).__name__}: {err}"
    return None


def convert(ann: nn.Module, calib: torch.Tensor, device: torch.device, mode: str = "max") -> SJNets:
    """SpikingJelly's rate-coding conversion (IF with soft reset) of `ann`, normalized by
    `mode`: "max" (max norm) or a percentile such as "99.9%".

    Never raises: an import or conversion failure is returned in `error`.
    """
    error = status()
    if error is not None:
        return SJNets(error=error)
    try:
        net = _convert(ann, calib, device, mode)
    except Exception as err:  # noqa: BLE001 - reported, never fatal
        return SJNets(error=f"conversion failed: {type(err).__name__}: {err}")
    return SJNets(single=net, multi=_multi_step(net))


def _convert(ann: nn.Module, calib: torch.Tensor, device: torch.device, mode: str) -> nn.Module:
    from spikingjelly.activation_based import ann2snn

    logging.getLogger("spikingjelly").setLevel(logging.WARNING)
    try:  # SpikingJelly 2.x logs through loguru; keep the table readable
        from loguru import logger

        logger.remove()
    except ImportError:
        pass
    recipe = ann2snn.RateCodingRecipe(dataloader=[calib], mode=mode)
    with open(os.devnull, "w") as null:  # its calibration loop prints a tqdm bar
        stderr, sys.stderr = sys.stderr, null
        try:
            net = ann2snn.Converter(recipe, device=device).convert(copy.deepcopy(ann))
        finally:
            sys.stderr = stderr
    return net.eval()


def _multi_step(net: nn.Module) -> nn.Module | None:
    """A copy of a converted net in multi-step mode, or None if that fails."""
    from spikingjelly.activation_based import functional

    try:
        net_m = copy.deepcopy(net)
        functional.set_step_mode(net_m, "m")
    except Exception:  # noqa: BLE001 - then only the single-step loop is timed
        return None
    return net_m


def runners(
    nets: SJNets, x: torch.Tensor, num_steps: int, multi: bool = True
) -> dict[str, Callable[[], object]]:
    """The runs "sj" (the single-step loop) and "sj_m" (multi-step, when `multi`), if any."""
    out: dict[str, Callable[[], object]] = {}
    if nets.single is None:
        return out
    from spikingjelly.activation_based import functional

    sj = nets.single

    def sj_loop() -> object:
        with torch.inference_mode():
            functional.reset_net(sj)
            acc = torch.zeros((), device=x.device)
            for _ in range(num_steps):
                acc = acc + sj(x)
            return acc

    out["sj"] = sj_loop
    if nets.multi is not None and multi:
        sj_m = nets.multi

        def sj_multi() -> object:
            with torch.inference_mode():
                functional.reset_net(sj_m)
                xs = x.unsqueeze(0).expand(num_steps, *x.shape)
                return sj_m(xs).sum(0)

        out["sj_m"] = sj_multi
    return out


def predictions(nets: SJNets, x: torch.Tensor, num_steps: int) -> torch.Tensor | None:
    """The single-step net's predicted classes after `num_steps` steps, or None."""
    if nets.single is None:
        return None
    from spikingjelly.activation_based import functional

    with torch.inference_mode():
        functional.reset_net(nets.single)
        acc = sum(nets.single(x) for _ in range(num_steps))
    return acc.flatten(1).argmax(1)


def step_predictions(nets: SJNets, x: torch.Tensor, num_steps: int) -> torch.Tensor | None:
    """[T, B] the single-step net's predicted classes after every step 1..T, or None."""
    if nets.single is None:
        return None
    from spikingjelly.activation_based import functional

    preds = []
    with torch.inference_mode():
        functional.reset_net(nets.single)
        acc = torch.zeros((), device=x.device)
        for _ in range(num_steps):
            acc = acc + nets.single(x)
            preds.append(acc.flatten(1).argmax(1))
    return torch.stack(preds)
