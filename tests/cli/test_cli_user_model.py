"""Your own model and your own data from the command line: --model-file + --weights, --dataset
folder (PNGs) and npz, end to end on tiny data; and each bad input's error."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from dtif.checkpoint import load_snn
from dtif.errors import CheckpointError
from tests.helpers.cli import assert_clean_error, run_dtif
from tests.helpers.user_data import (
    class_images,
    trained_weights,
    write_folder,
    write_model_file,
    write_npz,
)

pytest.importorskip("PIL")

TINY = ["--test-limit", "30", "--calib-size", "40", "--batch-size", "16", "--num-steps", "16"]
TINY += ["--device", "cpu"]


@pytest.fixture(scope="module")
def user_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("user")
    model_file = write_model_file(root / "my_model.py")
    images, labels = class_images(200, np.random.default_rng(5))
    state = trained_weights(model_file, images, labels)
    torch.save(state, root / "weights.pt")
    torch.save({f"module.{k}": v for k, v in state.items()}, root / "dp_weights.pt")
    return {
        "model": model_file,
        "weights": root / "weights.pt",
        "dp_weights": root / "dp_weights.pt",
        "folder": write_folder(root / "images"),
        "npz": write_npz(root / "data.npz"),
        "root": root,
    }


def _model_args(
    files: dict[str, Path], weights: str = "weights", factory: str = "Net"
) -> list[str]:
    return ["--model-file", f"{files['model']}:{factory}", "--weights", str(files[weights])]


def test_model_file_and_folder_compare_writes_results(
    user_files: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "cmp"
    res = run_dtif(
        "compare", *_model_args(user_files), "--dataset", "folder",
        "--data-dir", user_files["folder"], "--methods", "if-max", "--out", out, *TINY,
    )  # fmt: skip
    assert res.code == 0, res.err
    results = json.loads((out / "results.json").read_text())
    assert results["meta"]["model"]["model_file"].endswith("my_model.py:Net")
    assert results["meta"]["dataset"] == "folder"
    # fewer training images (60) than --calib-size would be said; here 40 < 60: nothing said
    assert "calibrate the thresholds" not in res.err


def test_model_file_npz_evaluate_with_kwargs_dataparallel_and_output(
    user_files: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "eval.json"
    res = run_dtif(
        "evaluate", *_model_args(user_files, "dp_weights", "make_net"),
        "--model-kwargs", '{"two_heads": true}', "--output", "0",
        "--dataset", "npz", "--data-dir", user_files["npz"], "--method", "if-max",
        "--out", out, *TINY, "--calib-size", "100",
    )  # fmt: skip
    assert res.code == 0, res.err
    assert "fewer than --calib-size 100; all 60" in res.err
    ev = json.loads(out.read_text())
    assert ev["ann_accuracy"] > 0.5  # the weights were loaded: better than chance (1/3)


def test_model_file_with_safetensors(user_files: dict[str, Path], tmp_path: Path) -> None:
    safetensors = pytest.importorskip("safetensors.torch")
    file = tmp_path / "w.safetensors"
    safetensors.save_file(torch.load(user_files["weights"]), file)
    res = run_dtif(
        "evaluate", "--model-file", f"{user_files['model']}:Net", "--weights", file,
        "--dataset", "npz", "--data-dir", user_files["npz"], "--method", "if-max", *TINY,
    )  # fmt: skip
    assert res.code == 0, res.err
    assert "ANN" in res.out


@pytest.mark.parametrize("kind", ["folder", "npz"])
def test_train_then_compare_on_own_data(
    kind: str, user_files: dict[str, Path], tmp_path: Path
) -> None:
    data = user_files[kind]
    run = tmp_path / "run"
    res = run_dtif(
        "train", "--dataset", kind, "--data-dir", data, "--model", "cnn", "--width", "0.125",
        "--epochs", "1", "--batch-size", "16", "--image-size", "16", "--out", run,
        "--device", "cpu",
    )  # fmt: skip
    assert res.code == 0, res.err
    summary = json.loads((run / "train.json").read_text())
    assert summary["config"]["image_size"] == 16 and summary["num_train"] == 60
    out = tmp_path / "cmp"
    res = run_dtif(
        "compare", "--checkpoint", run / "checkpoint.pt", "--data-dir", data,
        "--methods", "if-max", "--out", out, *TINY,
    )  # fmt: skip
    assert res.code == 0, res.err
    assert json.loads((out / "results.json").read_text())["meta"]["dataset"] == kind


def test_mean_and_std_flags(user_files: dict[str, Path], tmp_path: Path) -> None:
    res = run_dtif(
        "evaluate", *_model_args(user_files), "--dataset", "npz", "--data-dir",
        user_files["npz"], "--mean", "0.3", "--std", "0.3", "--method", "if-max", *TINY,
    )  # fmt: skip
    assert res.code == 0, res.err
    res = run_dtif(
        "evaluate", *_model_args(user_files), "--dataset", "npz", "--data-dir",
        user_files["npz"], "--mean", "0.3,0.3", "--method", "if-max", *TINY,
    )  # fmt: skip
    assert_clean_error(res, "evaluate", "--mean has 2 values", "1 channel")


def _bad(files: dict[str, Path], *args: object) -> list[object]:
    return ["evaluate", *args, "--method", "if-max", *TINY]


BAD_MODEL = {
    "no weights": (lambda f: ["--model-file", f"{f['model']}:Net"], "needs --weights"),
    "no factory": (
        lambda f: ["--model-file", str(f["model"]), "--weights", f["weights"]],
        "names no factory",
    ),
    "unknown factory": (lambda f: _model_args(f, factory="Nope"), "defines no 'Nope'"),
    "missing file": (
        lambda f: ["--model-file", "/nonexistent/m.py:Net", "--weights", f["weights"]],
        "does not exist",
    ),
    "bad kwargs json": (
        lambda f: [*_model_args(f), "--model-kwargs", "{width: 2}"],
        "not valid JSON",
    ),
    "kwargs the factory refuses": (
        lambda f: [*_model_args(f), "--model-kwargs", '{"depth": 2}'],
        "check --model-kwargs",
    ),
    "weights of another model": (
        lambda f: [*_model_args(f), "--model-kwargs", '{"width": 8}'],
        "shape mismatches",
    ),
    "missing weights file": (
        lambda f: ["--model-file", f"{f['model']}:Net", "--weights", "/nonexistent.pt"],
        "not found",
    ),
    "no dataset": (lambda f: _model_args(f), "needs --dataset"),
    "checkpoint and model file": (
        lambda f: ["--checkpoint", f["weights"], *_model_args(f)],
        "not both",
    ),
    "two outputs, no --output": (
        lambda f: [*_model_args(f), "--model-kwargs", '{"two_heads": true}'],
        "--output",
    ),
}


@pytest.mark.parametrize("name", list(BAD_MODEL))
def test_bad_model_input_is_named(name: str, user_files: dict[str, Path]) -> None:
    make, needle = BAD_MODEL[name]
    args = make(user_files)
    if name not in ("no dataset", "checkpoint and model file"):
        args = [*args, "--dataset", "npz", "--data-dir", user_files["npz"]]
    res = run_dtif(*_bad(user_files, *args))
    assert_clean_error(res, "evaluate", needle)


def test_weights_with_pickled_objects_are_refused(
    user_files: dict[str, Path], tmp_path: Path
) -> None:
    file = tmp_path / "whole_model.pt"
    torch.save({"w": torch.zeros(1), "when": Path("x")}, file)  # a non-tensor object
    res = run_dtif(
        *_bad(
            user_files,
            "--model-file",
            f"{user_files['model']}:Net",
            "--weights",
            file,
            "--dataset",
            "npz",
            "--data-dir",
            user_files["npz"],
        )
    )
    assert_clean_error(res, "evaluate", "refused")


def test_convert_saves_a_model_file_network_that_loads_only_when_named_again(
    user_files: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "snn.pt"
    res = run_dtif(
        "convert", *_model_args(user_files, "dp_weights", "make_net"),
        "--model-kwargs", '{"two_heads": true}', "--output", "0", "--dataset", "npz",
        "--data-dir", user_files["npz"], "--method", "if-max", "--out", out, *TINY,
    )  # fmt: skip
    assert res.code == 0, res.err
    # the file records the model file's path and kwargs, never its code: loading it runs the
    # file only when the caller names it again
    with pytest.raises(CheckpointError, match="pass it again"):
        load_snn(out)
    target = f"{user_files['model']}:make_net"
    snn = load_snn(out, model_file=target)
    assert snn.meta["model"] == {
        "model_file": target, "model_kwargs": {"two_heads": True}, "output": 0
    }  # fmt: skip
    x = torch.rand(4, 1, 12, 12)
    again = load_snn(out, model_file=target)
    assert torch.equal(snn.simulate(x, 8).outputs, again.simulate(x, 8).outputs)
    res = run_dtif("export", "--snn", out, "--out", tmp_path / "snn.nir")
    assert_clean_error(res, "export", "--model-file")
    pytest.importorskip("nir")
    res = run_dtif("export", "--snn", out, "--model-file", target, "--out", tmp_path / "snn.nir")
    assert_clean_error(res, "export", "no concatenation node")  # the model has a torch.cat


def _folder_case(root: Path, case: str) -> Path:
    from PIL import Image

    data = write_folder(root / case, num_train=9, num_test=6)
    if case == "empty class folder":
        (data / "train" / "d").mkdir()
    elif case == "unreadable image":
        (data / "train" / "a" / "broken.png").write_bytes(b"not a png")
    elif case == "mixed image sizes":
        Image.new("L", (20, 20)).save(data / "train" / "a" / "big.png")
    elif case == "no train folder":
        (data / "train").rename(data / "training")
    elif case == "test class not in train":
        (data / "test" / "zebra").mkdir()
        Image.new("L", (12, 12)).save(data / "test" / "zebra" / "z.png")
    return data


BAD_FOLDER = {
    "empty class folder": "holds no images",
    "unreadable image": "cannot read image",
    "mixed image sizes": "--image-size",
    "no train folder": "no train/ folder",
    "test class not in train": "that train/ does not have",
}


@pytest.mark.parametrize("case", list(BAD_FOLDER))
def test_bad_folder_is_named(case: str, user_files: dict[str, Path], tmp_path: Path) -> None:
    data = _folder_case(tmp_path, case)
    res = run_dtif(
        *_bad(user_files, *_model_args(user_files), "--dataset", "folder", "--data-dir", data)
    )
    assert_clean_error(res, "evaluate", BAD_FOLDER[case])


BAD_NPZ: dict[str, tuple[dict[str, object], str]] = {
    "missing array": ({"y_test": None}, "has no y_test"),
    "labels out of range": ({"y_test": np.full(30, 7)}, "y_test has label 7"),
    "negative labels": ({"y_train": np.full(60, -1)}, "has label -1"),
    "labels of the wrong length": (
        {"y_train": np.zeros(5, dtype=np.int64)},
        "expected [60] labels",
    ),
    "non-integer labels": ({"y_train": np.full(60, 0.5)}, "integer class indices"),
    "images of a bad shape": ({"x_train": np.zeros((60, 12), dtype=np.uint8)}, "x_train has shape"),
}


@pytest.mark.parametrize("case", list(BAD_NPZ))
def test_bad_npz_is_named(case: str, user_files: dict[str, Path], tmp_path: Path) -> None:
    override, needle = BAD_NPZ[case]
    data = write_npz(tmp_path / "bad.npz", **override)
    res = run_dtif(
        *_bad(user_files, *_model_args(user_files), "--dataset", "npz", "--data-dir", data)
    )
    assert_clean_error(res, "evaluate", needle)


def test_npz_that_is_not_a_file_is_named(user_files: dict[str, Path], tmp_path: Path) -> None:
    res = run_dtif(
        *_bad(user_files, *_model_args(user_files), "--dataset", "npz", "--data-dir", tmp_path)
    )
    assert_clean_error(res, "evaluate", "is not a file")


def test_image_size_on_a_builtin_dataset_is_refused(user_files: dict[str, Path]) -> None:
    res = run_dtif(
        *_bad(user_files, *_model_args(user_files), "--dataset", "digits", "--image-size", "8")
    )
    assert_clean_error(res, "evaluate", "apply to --dataset folder or npz")
