"""Error paths through the CLI: one `dtif <cmd>: error: ...` line, exit code 2, no traceback.

The library raises these errors (tests/data, tests/train test the messages in depth); here
each is checked to reach the user cleanly from the command line.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from cli_helpers import CliResult, run_dtif, workload

import dtif.train.steps as train_steps
from dtif.data.idx import idx_file_names

TINY_TRAIN = ("--width", "0.125", "--batch-size", "32", "--train-limit", "64", "--device", "cpu")


def assert_clean_error(res: CliResult, command: str, *needles: str) -> None:
    """Exit 2, one error message on stderr naming each needle, nothing else."""
    assert res.code == 2, (res.out, res.err)
    assert res.err.startswith(f"dtif {command}: error: "), res.err
    assert "Traceback" not in res.err
    for needle in needles:
        assert needle in res.err, (needle, res.err)


# ---- datasets ------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["train", "evaluate"])
def test_missing_dataset_names_the_file_and_the_fix(
    command: str, checkpoint: Path, tmp_path: Path
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    if command == "train":
        args = ["train", *TINY_TRAIN, "--data-dir", empty, "--out", tmp_path / "run"]
    else:
        args = ["evaluate", *workload(checkpoint, empty)]
    res = run_dtif(*args)
    images, _ = idx_file_names("train")
    assert_clean_error(
        res, command, images, str(empty), "apt-get install dataset-fashion-mnist", "--data-dir"
    )


def test_missing_dataset_from_dtif_data(
    tmp_path: Path, checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DTIF_DATA", str(tmp_path / "nowhere"))
    res = run_dtif("compare", "--checkpoint", checkpoint, "--device", "cpu", "--out", tmp_path)
    assert_clean_error(res, "compare", str(tmp_path / "nowhere"), "DTIF_DATA")


def test_corrupt_dataset_file(data_dir: Path, tmp_path: Path) -> None:
    broken = Path(shutil.copytree(data_dir, tmp_path / "data"))
    images, _ = idx_file_names("train")
    raw = (broken / images).read_bytes()
    (broken / images).write_bytes(raw[: len(raw) // 2])  # truncated
    res = run_dtif("train", *TINY_TRAIN, "--data-dir", broken, "--out", tmp_path / "run")
    assert_clean_error(res, "train", str(broken / images))
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


# ---- checkpoints ---------------------------------------------------------------------------


def test_missing_checkpoint(data_dir: Path, tmp_path: Path) -> None:
    res = run_dtif("convert", *workload(tmp_path / "nope.pt", data_dir), "--out", tmp_path / "s")
    assert_clean_error(res, "convert", "checkpoint not found", str(tmp_path / "nope.pt"))


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_corrupt_checkpoint(damage: str, checkpoint: Path, data_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "checkpoint.pt"
    raw = checkpoint.read_bytes()
    bad.write_bytes(b"not a torch file" * 8 if damage == "garbage" else raw[: len(raw) // 2])
    res = run_dtif("compare", *workload(bad, data_dir), "--out", tmp_path / "cmp")
    assert_clean_error(res, "compare", str(bad), "corrupt", "dtif train")
    assert not (tmp_path / "cmp" / "results.json").exists()


def test_mismatched_checkpoint(checkpoint: Path, data_dir: Path, tmp_path: Path) -> None:
    payload = torch.load(checkpoint, weights_only=True)
    payload["model"]["width"] = 0.25  # the weights are of a width-0.125 cnn
    bad = tmp_path / "wider.pt"
    torch.save(payload, bad)
    res = run_dtif("evaluate", *workload(bad, data_dir))
    assert_clean_error(res, "evaluate", str(bad), "does not match the architecture", "shape")


def test_state_dict_is_not_a_checkpoint(checkpoint: Path, data_dir: Path, tmp_path: Path) -> None:
    bare = tmp_path / "weights.pt"
    torch.save(torch.load(checkpoint, weights_only=True)["state_dict"], bare)
    res = run_dtif("convert", *workload(bare, data_dir), "--out", tmp_path / "snn.pt")
    assert_clean_error(res, "convert", str(bare), "not a dtif-checkpoint file")


def test_export_of_a_corrupt_snn(tmp_path: Path) -> None:
    bad = tmp_path / "snn.pt"
    bad.write_bytes(b"\x00" * 64)
    res = run_dtif("export", "--snn", bad, "--out", tmp_path / "snn.nir")
    assert_clean_error(res, "export", str(bad))


# ---- training runs -------------------------------------------------------------------------


def test_interrupted_training_resumes(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "run"
    args = ["train", *TINY_TRAIN, "--test-limit", "32", "--epochs", "2", "--data-dir", data_dir]
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


def test_resume_with_another_config(trained: Path, data_dir: Path) -> None:
    res = run_dtif(
        "train", "--width", "0.125", "--epochs", "2", "--batch-size", "32",
        "--train-limit", "300", "--test-limit", "100", "--device", "cpu",
        "--data-dir", data_dir, "--out", trained, "--resume",
    )  # fmt: skip
    assert_clean_error(res, "train", "different config", "epochs: 1 -> 2")


# ---- arguments -----------------------------------------------------------------------------


def test_compare_without_checkpoint(tmp_path: Path) -> None:
    res = run_dtif("compare", "--out", tmp_path)
    assert_clean_error(res, "compare", "--checkpoint", "--list-methods")


def test_argparse_rejects_bad_numbers(checkpoint: Path, data_dir: Path) -> None:
    res = run_dtif("compare", *workload(checkpoint, data_dir, num_steps=0))
    assert res.code == 2 and "Traceback" not in res.err
    assert "dtif compare: error: argument --num-steps: must be >= 1, got 0" in res.err


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_a_gpu(checkpoint: Path, data_dir: Path) -> None:
    res = run_dtif("evaluate", *workload(checkpoint, data_dir, device="cuda"))
    assert_clean_error(res, "evaluate", "--device cuda", "no CUDA device")


def test_output_folder_that_cannot_be_made(
    checkpoint: Path, data_dir: Path, tmp_path: Path
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file where a folder should go")
    res = run_dtif("convert", *workload(checkpoint, data_dir), "--out", blocker / "snn.pt")
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
    name: str, text: str | bytes | None, needle: str, tmp_path: Path, checkpoint: Path
) -> None:
    if name.endswith(".yaml"):
        pytest.importorskip("yaml")
    spec = tmp_path / name
    if isinstance(text, bytes):
        spec.write_bytes(text)
    elif text is not None:
        spec.write_text(text)
    # Methods are checked before any data is read: no --data-dir needed.
    res = run_dtif("compare", "--checkpoint", checkpoint, "--methods", spec, "--out", tmp_path)
    assert_clean_error(res, "compare", needle)
