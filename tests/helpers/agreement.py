"""The check that a converted network matches its ANN at long T: classes and outputs/T."""

from __future__ import annotations

import torch
from torch import nn

import dtif


def assert_matches_ann(
    model: nn.Module,
    x: torch.Tensor,
    num_steps: int = 1024,
    tolerance: float = 0.05,
    min_agreement: float = 0.98,
    **convert_kwargs: object,
) -> dtif.SpikingNetwork:
    """Convert `model` (IF, MaxNorm, calibrated on `x`) and check it against the ANN.

    The SNN's outputs/T must lie within `tolerance` of max |ANN output| and give the ANN's
    class on at least `min_agreement` of the inputs.

    Returns:
        The converted network.
    """
    snn = dtif.convert(model, x, **convert_kwargs)  # type: ignore[arg-type]  # test kwargs
    with torch.no_grad():
        logits = snn.ann(x)
    res = snn.simulate(x, num_steps=num_steps, record=False)
    rate = res.outputs[-1] / num_steps
    scale = float(logits.abs().max())
    assert scale > 0, "the ANN output is all zeros: the test model is dead"
    err = float((rate - logits).abs().max()) / scale
    agreement = float((rate.argmax(1) == logits.argmax(1)).double().mean())
    assert err <= tolerance, f"max |rate - ANN| = {err:.2%} of max |ANN| at T={num_steps}"
    assert agreement >= min_agreement, f"classes agree on {agreement:.1%} at T={num_steps}"
    return snn
