"""`compare_methods` with early exit: the policy is calibrated on calibration images only."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from dtif.checkpoint import load_checkpoint
from dtif.methods import METHODS
from dtif.report import compare as compare_module
from dtif.report.compare import compare_methods
from dtif.sim.early_exit import AutoExit, EarlyExit


def _loader(seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(30, 1, 28, 28, generator=g)
    y = torch.randint(0, 10, (30,), generator=g)
    return [(x[:16], y[:16]), (x[16:], y[16:])]


def test_exit_calibration_never_reads_the_test_set(
    tiny_checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = load_checkpoint(tiny_checkpoint).model
    calib = torch.rand(40, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    seen: list[torch.Tensor] = []
    real = compare_module.calibrate_exit

    def spy(snn, images, *args, **kw):  # type: ignore[no-untyped-def]
        seen.append(images)
        return real(snn, images, *args, **kw)

    monkeypatch.setattr(compare_module, "calibrate_exit", spy)
    runs = [
        compare_methods(
            model,
            calib,
            _loader(seed),
            [METHODS["dtif"]],
            8,
            30,
            progress=False,
            log=lambda line: None,
            early_exit=AutoExit(),
        )  # fmt: skip
        for seed in (1, 2)  # other test images and other labels
    ]
    assert len(seen) == 4 and all(s is calib for s in seen)  # 2 methods x 2 runs, calib only
    for name in ("if-max", "dtif"):
        a, b = (r["methods"][name]["early_exit"] for r in runs)
        assert a["policy"] == b["policy"] and a["calibration"] == b["calibration"]
        assert a["calibration"]["num_images"] == 40
    assert runs[0]["methods"]["dtif"]["accuracy"] != runs[1]["methods"]["dtif"]["accuracy"]


def test_early_exit_block_and_exit_methods(tiny_checkpoint: Path) -> None:
    model = load_checkpoint(tiny_checkpoint).model
    calib = torch.rand(20, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    policy = EarlyExit("confidence", 0.6, 2)
    res = compare_methods(
        model, calib, _loader(1), [METHODS["dtif"]], 8, 30, progress=False,
        log=lambda line: None, early_exit=policy, exit_methods=["dtif"],
    )  # fmt: skip
    assert "early_exit" not in res["methods"]["if-max"]
    block = res["methods"]["dtif"]["early_exit"]
    assert block["policy"] == policy.to_dict() and block["calibration"] is None
    assert sum(block["exit_steps"]) == 30
    assert 1 <= block["median_step"] <= block["p95_step"] <= 8
    assert block["seconds"] > 0 and block["seconds_fixed_T"] > 0
    assert block["synops"] <= res["methods"]["dtif"]["synops"][-1] + 1e-9
