"""`compare_methods` adds if-max, the reference of the speed-up columns, unless told not to."""

from __future__ import annotations

from pathlib import Path

import torch

from dtif.checkpoint import load_checkpoint
from dtif.methods import METHODS
from dtif.report.compare import compare_methods


def test_reference_is_added_unless_switched_off(tiny_checkpoint: Path) -> None:
    model = load_checkpoint(tiny_checkpoint).model
    g = torch.Generator().manual_seed(0)
    calib = torch.rand(16, 1, 28, 28, generator=g)
    loader = [(torch.rand(8, 1, 28, 28, generator=g), torch.randint(0, 10, (8,), generator=g))]
    quiet = {"progress": False, "log": lambda line: None}
    with_ref = compare_methods(model, calib, loader, [METHODS["dtif"]], 4, 8, **quiet)
    without = compare_methods(
        model, calib, loader, [METHODS["dtif"]], 4, 8, with_reference=False, **quiet
    )
    assert set(with_ref["methods"]) == {"if-max", "dtif"}
    assert (
        with_ref["speedup"]["dtif"] is not None or with_ref["speedup_at_least"]["dtif"] is not None
    )
    assert set(without["methods"]) == {"dtif"}
    assert without["speedup"]["dtif"] is None and without["energy_ratio"]["dtif"] is None
    assert without["methods"]["dtif"]["accuracy"] == with_ref["methods"]["dtif"]["accuracy"]
