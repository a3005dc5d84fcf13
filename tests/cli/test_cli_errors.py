"""Error paths through the CLI: one `dtif <cmd>: error: ...` line, exit code 2, no traceback.

The library raises these errors (tests/data, tests/checkpoint test the messages in depth); here
each is checked to reach the user cleanly from the command line. Damaged dataset and
checkpoint files (the rows of docs/robustness.md) stop `dtif compare` end to end: nothing is
computed and no results are written.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import dtif.train.steps as train_steps
from dtif.data.idx import IMAGES_MAGIC, LABELS_MAGIC, idx_file_names
from tests.helpers.cli import assert_clean_error, compare_args, run_dtif, workload
from tests.helpers.data import idx_bytes
from tests.helpers.pickles import Payload

TINY_TRAIN = ("--width", "0.125", "--batch-size", "32", "--train-limit", "64", "--device", "cpu")
IMAGES, LABELS = idx_file_names("test")


# ---- datasets ------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["train", "evaluate"])
def test_missing_dataset_names_the_file_and_the_fix(
    command: str, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    if command == "train":
        args = ["train", *TINY_TRAIN, "--data-dir", empty, "--out", tmp_path / "run"]
    else:
        args = ["evaluate", *workload(tiny_checkpoint, empty)]
    res = run_dtif(*args)
    images, _ = idx_file_names("train")
    assert_clean_error(
        res, command, images, str(empty), "apt-get install dataset-fashion-mnist", "--data-dir"
    )


def test_missing_dataset_from_dtif_data(
    tmp_path: Path, tiny_checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DTIF_DATA", str(tmp_path / "nowhere"))
    res = run_dtif("compare", "--checkpoint", tiny_checkpoint, "--device", "cpu", "--out", tmp_path)
    assert_clean_error(res, "compare", str(tmp_path / "nowhere"), "DTIF_DATA")


def test_corrupt_dataset_file(fashion_dir: Path, tmp_path: Path) -> None:
    broken = Path(shutil.copytree(fashion_dir, tmp_path / "data"))
    images, _ = idx_file_names("train")
    raw = (broken / images).read_bytes()
    (broken / images).write_bytes(raw[: len(raw) // 2])  # truncated
    res = run_dtif("train", *TINY_TRAIN, "--data-dir", broken, "--out", tmp_path / "run")
    assert_clean_error(res, "train", str(broken / images))
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


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


# ---- checkpoints ---------------------------------------------------------------------------


def test_missing_checkpoint(fashion_dir: Path, tmp_path: Path) -> None:
    res = run_dtif("convert", *workload(tmp_path / "nope.pt", fashion_dir), "--out", tmp_path / "s")
    assert_clean_error(res, "convert", "checkpoint not found", str(tmp_path / "nope.pt"))


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_corrupt_checkpoint(
    damage: str, tiny_checkpoint: Path, fashion_dir: Path, tmp_path: Path
) -> None:
    bad = tmp_path / "checkpoint.pt"
    raw = tiny_checkpoint.read_bytes()
    bad.write_bytes(b"not a torch file" * 8 if damage == "garbage" else raw[: len(raw) // 2])
    res = run_dtif("compare", *workload(bad, fashion_dir), "--out", tmp_path / "cmp")
    assert_clean_error(res, "compare", str(bad), "corrupt", "dtif train")
    assert not (tmp_path / "cmp" / "results.json").exists()


def test_mismatched_checkpoint(tiny_checkpoint: Path, fashion_dir: Path, tmp_path: Path) -> None:
    payload = torch.load(tiny_checkpoint, weights_only=True)
    payload["model"]["width"] = 0.25  # the weights are of a width-0.125 cnn
    bad = tmp_path / "wider.pt"
    torch.save(payload, bad)
    res = run_dtif("evaluate", *workload(bad, fashion_dir))
    assert_clean_error(res, "evaluate", str(bad), "does not match the architecture", "shape")


def test_state_dict_is_not_a_checkpoint(
    tiny_checkpoint: Path, fashion_dir: Path, tmp_path: Path
) -> None:
    bare = tmp_path / "weights.pt"
    torch.save(torch.load(tiny_checkpoint, weights_only=True)["state_dict"], bare)
    res = run_dtif("convert", *workload(bare, fashion_dir), "--out", tmp_path / "snn.pt")
    assert_clean_error(res, "convert", str(bare), "not a dtif-checkpoint file")


def test_export_of_a_corrupt_snn(tmp_path: Path) -> None:
    bad = tmp_path / "snn.pt"
    bad.write_bytes(b"\x00" * 64)
    res = run_dtif("export", "--snn", bad, "--out", tmp_path / "snn.nir")
    assert_clean_error(res, "export", str(bad))


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


# ---- training runs -------------------------------------------------------------------------


def test_interrupted_training_resumes(
    fashion_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "run"
    args = ["train", *TINY_TRAIN, "--test-limit", "32", "--epochs", "2", "--data-dir", fashion_dir]
    real_step = train_steps.train_step
    calls = {"n": 0}

    def interrupted_step(*a: object) -> tuple[float, int]:
        calls["n"] += 1
        if calls["n"] == 3:  # Ctrl-C in epoch 2 (2 steps per epoch)
            raise KeyboardInterrupt
        return real_step(*a)

    monkeypatch.setattr(train_steps, "train_step", interrupted_step)
    res = run_dtif(*args, "--out", out)
    assert res.code == 130 and "Traceback" not in res.err
    assert "interrupted during epoch 2; epoch 1 is saved" in res.out and "--resume" in res.out
    assert json.loads((out / "train.json").read_text())["epochs_done"] == 1
    monkeypatch.setattr(train_steps, "train_step", real_step)

    again = run_dtif(*args, "--out", out)  # without --resume: refused, the run is kept
    assert_clean_error(again, "train", "already holds a training run", "--resume")

    resumed = run_dtif(*args, "--out", out, "--resume")
    assert resumed.code == 0, resumed.err
    assert "resuming" in resumed.out
    assert json.loads(resumed.out.strip().splitlines()[-1])["epochs_done"] == 2
    summary = json.loads((out / "train.json").read_text())
    assert summary["epochs_done"] == 2 and summary["finished"]


def test_resume_with_another_config(tiny_run: Path, fashion_dir: Path) -> None:
    res = run_dtif(
        "train", "--width", "0.125", "--epochs", "2", "--batch-size", "32",
        "--train-limit", "200", "--test-limit", "50", "--device", "cpu",
        "--data-dir", fashion_dir, "--out", tiny_run, "--resume",
    )  # fmt: skip
    assert_clean_error(res, "train", "different config", "epochs: 1 -> 2")


# ---- arguments -----------------------------------------------------------------------------


def test_compare_without_checkpoint(tmp_path: Path) -> None:
    res = run_dtif("compare", "--out", tmp_path)
    assert_clean_error(res, "compare", "--checkpoint", "--list-methods")


def test_argparse_rejects_bad_numbers(tiny_checkpoint: Path, fashion_dir: Path) -> None:
    res = run_dtif("compare", *workload(tiny_checkpoint, fashion_dir, num_steps=0))
    assert res.code == 2 and "Traceback" not in res.err
    assert "dtif compare: error: argument --num-steps: must be >= 1, got 0" in res.err


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_a_gpu(tiny_checkpoint: Path, fashion_dir: Path) -> None:
    res = run_dtif("evaluate", *workload(tiny_checkpoint, fashion_dir, device="cuda"))
    assert_clean_error(res, "evaluate", "--device cuda", "no CUDA device")


def test_output_folder_that_cannot_be_made(
    tiny_checkpoint: Path, fashion_dir: Path, tmp_path: Path
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file where a folder should go")
    res = run_dtif("convert", *workload(tiny_checkpoint, fashion_dir), "--out", blocker / "snn.pt")
    assert_clean_error(res, "convert", str(blocker), "--out")


@pytest.mark.parametrize(
    ("name", "text", "needle"),
    [
        ("bad.json", "{not json", "not valid JSON"),
        ("bad.yaml", "neuron: [\n", "not valid YAML"),
        ("no-neuron.json", '{"norm": {"type": "MaxNorm"}}', "needs a 'neuron' mapping"),
        ("str-neuron.json", '{"neuron": "DTIF"}', "neuron must be a mapping"),
        ("bad-type.json", '{"neuron": {"type": "LIF"}}', "neuron type must be one of"),
        ("bad-param.json", '{"neuron": {"type": "IF", "tau": 2}}', "bad neuron parameters"),
        ("bad-value.json", '{"neuron": {"type": "DTIF", "alpha": -1}}', "alpha"),
        ("binary.json", b"\xff\xfe\x00", "cannot read method spec"),
        ("missing.json", None, "does not exist"),
    ],
)
def test_bad_method_spec(
    name: str, text: str | bytes | None, needle: str, tmp_path: Path, tiny_checkpoint: Path
) -> None:
    if name.endswith(".yaml"):
        pytest.importorskip("yaml")
    spec = tmp_path / name
    if isinstance(text, bytes):
        spec.write_bytes(text)
    elif text is not None:
        spec.write_text(text)
    # Methods are checked before any data is read: no --data-dir needed.
    res = run_dtif("compare", "--checkpoint", tiny_checkpoint, "--methods", spec, "--out", tmp_path)
    assert_clean_error(res, "compare", needle)
