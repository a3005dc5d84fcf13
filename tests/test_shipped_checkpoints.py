"""The trained weights shipped for the benchmarks load, stay small, and match their summaries."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dtif.checkpoint import load_checkpoint

SHIPPED = sorted((Path(__file__).resolve().parents[1] / "benchmarks" / "checkpoints").glob("*.pt"))


def test_there_are_shipped_checkpoints() -> None:
    assert {p.stem for p in SHIPPED} >= {"fashion-mnist-cnn-w1", "fashion-mnist-resnet20-w1"}


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_checkpoint(path: Path) -> None:
    assert path.stat().st_size < 5 * 2**20  # the repository takes weights under 5 MB only
    ckpt = load_checkpoint(path)
    assert ckpt.train_state is None  # weights only, no optimizer state
    summary = json.loads(path.with_suffix(".json").read_text())
    assert summary["finished"]
    assert summary["model"] == ckpt.spec.to_dict()
    assert ckpt.test_accuracy == pytest.approx(summary["test_accuracy"])
    assert ckpt.dataset == summary["dataset"]
    kind = f"-qcfs{ckpt.spec.kwargs['levels']}" if ckpt.spec.kwargs.get("activation") else ""
    assert path.stem == f"{ckpt.dataset}-{ckpt.spec.name}-w{ckpt.spec.width:g}{kind}"
