"""`evaluate(..., per_image=True)`: per-image records that add up to the accuracy curve."""

from __future__ import annotations

import pytest
import torch

import dtif
from dtif.errors import InputError
from tests.helpers.nets import calibration_images, calibration_net


def _loader() -> list[tuple[torch.Tensor, torch.Tensor]]:
    x = calibration_images(40, seed=5)
    y = torch.randint(3, (40,), generator=torch.Generator().manual_seed(6))
    return [(x[:16], y[:16]), (x[16:], y[16:])]  # two batches: records keep loader order


def test_per_image_records_add_up() -> None:
    snn = dtif.convert(calibration_net(), calibration_images(), neuron=dtif.DTIF())
    loader = _loader()
    ev = dtif.evaluate(snn, loader, 12, per_image=True, progress=False)
    assert ev.image_correct is not None and ev.image_ann_correct is not None
    assert ev.image_correct.shape == (40, 12) and ev.image_correct.dtype == torch.bool
    assert ev.image_correct.double().mean(0).tolist() == pytest.approx(ev.accuracy, abs=1e-12)
    assert float(ev.image_ann_correct.double().mean()) == pytest.approx(ev.ann_accuracy)
    # image order is the loader's: the second batch's ANN answers sit at rows 16..39
    x, y = loader[1]
    ann = snn.ann(x).argmax(dim=1) == y
    assert torch.equal(ev.image_ann_correct[16:], ann)
    assert "image_correct" not in ev.to_dict()


def test_without_per_image_nothing_is_kept() -> None:
    snn = dtif.convert(calibration_net(), calibration_images(), neuron=dtif.IF())
    ev = dtif.evaluate(snn, _loader(), 4, progress=False)
    assert ev.image_correct is None and ev.image_ann_correct is None


def test_per_image_refuses_a_reduce() -> None:
    snn = dtif.convert(calibration_net(), calibration_images(), neuron=dtif.IF())
    with pytest.raises(InputError, match="per_image records need one process"):
        dtif.evaluate(snn, _loader(), 4, per_image=True, reduce=lambda t: t, progress=False)
