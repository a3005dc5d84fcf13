"""Damaged dataset and checkpoint files stop `dtif compare` with one clear error, exit code 2.

The readers are tested in depth in tests/data/test_idx.py and tests/train/test_checkpoint.py;
tests/cli/test_cli_errors.py covers a truncated dataset under `dtif train` and truncated,
garbage and mismatched checkpoints. Here the remaining rows of docs/robustness.md are checked
end to end: nothing is computed and no results are written.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from data_fakes import idx_bytes
from hardening_helpers import assert_clean_error, compare_args, run_dtif

from dtif.data.idx import IMAGES_MAGIC, LABELS_MAGIC, idx_file_names

IMAGES, LABELS = idx_file_names("test")


def _damage(data: Path, kind: str) -> Path:
    """Damage the test split of a copy of the fake dataset; return the damaged file."""
    images, labels = data / IMAGES, data / LABELS
    if kind == "wrong magic":
        raw = images.read_bytes()
        images.write_bytes(np.array([LABELS_MAGIC], dtype=">i4").tobytes() + raw[4:])
        return images
    if kind == "truncated":
        raw = images.read_bytes()
        images.write_bytes(raw[: len(raw) - 100])
        return images
    # one label fewer than images, in a file that is itself consistent
    raw = labels.read_bytes()
    count = int(np.frombuffer(raw, dtype=">i4", count=1, offset=4)[0])
    labels.write_bytes(idx_bytes(np.frombuffer(raw[8 : 8 + count - 1], np.uint8), LABELS_MAGIC))
    return labels


@pytest.mark.parametrize("kind", ["wrong magic", "truncated", "label count"])
def test_damaged_dataset_file(
    kind: str, tiny_checkpoint: Path, fashion_dir: Path, tmp_path: Path
) -> None:
    data = Path(shutil.copytree(fashion_dir, tmp_path / "data"))
    bad = _damage(data, kind)
    out = tmp_path / "cmp"
    res = run_dtif(*compare_args(tiny_checkpoint, data, out))
    needle = {
        "wrong magic": f"magic number {LABELS_MAGIC}, expected {IMAGES_MAGIC}",
        "truncated": "is truncated",
        "label count": "holds 63 labels",
    }[kind]
    assert_clean_error(res, "compare", str(bad), needle)
    assert not (out / "results.json").exists()


def _rewrite(checkpoint: Path, tmp_path: Path, **changes: Any) -> Path:
    payload = torch.load(checkpoint, weights_only=True)
    payload.update(changes)
    path = tmp_path / "changed.pt"
    torch.save(payload, path)
    return path


@pytest.mark.parametrize(
    "changes", [{"dtif_version": "99.0.0"}, {"format_version": 99}], ids=["dtif", "layout"]
)
def test_checkpoint_from_a_newer_dtif(
    changes: dict[str, Any], tiny_checkpoint: Path, fashion_dir: Path, tmp_path: Path
) -> None:
    path = _rewrite(tiny_checkpoint, tmp_path, **changes)
    out = tmp_path / "cmp"
    res = run_dtif(*compare_args(path, fashion_dir, out))
    assert_clean_error(res, "compare", str(path), "newer than this dtif", "Upgrade dtif")
    assert not out.exists()


class Payload:
    """What an attacker would put in a checkpoint: unpickling it runs ``touch(marker)``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.marker,))


def test_checkpoint_with_a_pickle_payload(
    tiny_checkpoint: Path, fashion_dir: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"
    path = _rewrite(tiny_checkpoint, tmp_path, train_state={"x": Payload(marker)})
    res = run_dtif(*compare_args(path, fashion_dir, tmp_path / "cmp"))
    assert_clean_error(res, "compare", str(path), "refused", "pickle payload")
    assert not marker.exists()  # the payload never ran


def test_checkpoint_with_nan_weights(
    tiny_checkpoint: Path, fashion_dir: Path, tmp_path: Path
) -> None:
    state = dict(torch.load(tiny_checkpoint, weights_only=True)["state_dict"])
    name = next(k for k, v in state.items() if k.endswith("weight") and v.ndim > 1)
    state[name] = state[name].clone()
    state[name].view(-1)[0] = float("nan")
    path = _rewrite(tiny_checkpoint, tmp_path, state_dict=state)
    out = tmp_path / "cmp"
    res = run_dtif(*compare_args(path, fashion_dir, out))
    assert_clean_error(res, "compare", "NaN or Inf values in", name)
    assert not (out / "results.json").exists()
