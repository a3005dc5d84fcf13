"""Training: files written each epoch, determinism, resume after an interruption, config checks."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
import torch

import dtif.train.steps as train_steps
from dtif.checkpoint import load_checkpoint
from dtif.errors import CheckpointError, InputError
from dtif.train import DEFAULT_LR, TrainConfig, train
from tests.helpers.data import NUM_TEST, NUM_TRAIN

WIDTH = 0.125
BATCH = 64
STEPS_PER_EPOCH = NUM_TRAIN // BATCH


def _config(data_dir: Path, **kw: Any) -> TrainConfig:
    args: dict[str, Any] = {
        "width": WIDTH,
        "epochs": 1,
        "batch_size": BATCH,
        "data_dir": str(data_dir),
        "lr": 0.05,
        # Tiny models gain nothing from threads, and a busy CI machine makes OpenMP spin.
        "num_threads": 1,
    }
    args.update(kw)
    return TrainConfig(**args)


def _quiet(config: TrainConfig, out: Path, **kw: Any) -> dict[str, Any]:
    logs: list[str] = []
    summary = train(config, out, progress=False, log=logs.append, **kw)
    summary["_logs"] = logs
    return summary


def _state(out: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(out / "checkpoint.pt").model.state_dict()


def _assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_one_epoch_writes_checkpoint_and_summary(fashion_dir: Path, tmp_path: Path) -> None:
    config = _config(fashion_dir)
    summary = _quiet(config, tmp_path / "run")
    logs = summary.pop("_logs")
    assert len(logs) == 1 and logs[0].startswith("epoch 1/1: loss")

    on_disk = json.loads((tmp_path / "run" / "train.json").read_text())
    assert on_disk == json.loads(json.dumps(summary))
    assert summary["config"] == config.to_dict() and summary["dataset"] == "fashion-mnist"
    assert summary["num_train"] == NUM_TRAIN and summary["num_test"] == NUM_TEST
    assert summary["epochs_done"] == 1 and summary["finished"] is True
    (epoch,) = summary["history"]
    assert set(epoch) == {"epoch", "loss", "train_accuracy", "test_accuracy", "lr", "time_s"}
    assert 0.0 <= epoch["test_accuracy"] <= 1.0 and epoch["loss"] > 0
    assert summary["test_accuracy"] == epoch["test_accuracy"]

    ckpt = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert ckpt.epoch == 1 and ckpt.dataset == "fashion-mnist"
    assert ckpt.test_accuracy == epoch["test_accuracy"]
    assert ckpt.spec.name == "cnn" and ckpt.spec.width == WIDTH
    assert ckpt.mean == (0.2860,) and ckpt.std == (0.3530,)
    assert ckpt.train_state is not None
    assert set(ckpt.train_state) == {
        "config", "optimizer", "scheduler", "history", "num_train", "num_test",
    }  # fmt: skip
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["checkpoint.pt", "train.json"]


def test_learns_the_fake_task(fashion_dir: Path, tmp_path: Path) -> None:
    summary = _quiet(
        _config(fashion_dir, epochs=2, batch_size=32, optimizer="adam", lr=1e-2), tmp_path
    )
    history = summary["history"]
    assert history[-1]["loss"] < history[0]["loss"]
    assert history[-1]["test_accuracy"] > 0.8  # chance is 0.1


def test_same_seed_gives_identical_weights(fashion_dir: Path, tmp_path: Path) -> None:
    config = _config(fashion_dir, train_limit=128, label_smoothing=0.1)
    first = _quiet(config, tmp_path / "a")
    second = _quiet(config, tmp_path / "b")
    assert first["history"][0]["loss"] == second["history"][0]["loss"]
    assert first["num_train"] == 128
    _assert_same_weights(_state(tmp_path / "a"), _state(tmp_path / "b"))
    third = _quiet(
        _config(fashion_dir, train_limit=128, label_smoothing=0.1, seed=1), tmp_path / "c"
    )
    assert third["history"][0]["loss"] != first["history"][0]["loss"]


def test_interrupted_run_resumes_bit_identically(
    fashion_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _config(fashion_dir, epochs=2)
    reference = _quiet(config, tmp_path / "ref")

    real_step = train_steps.train_step
    calls = {"n": 0}

    def interrupted_step(*args: Any) -> tuple[float, int]:
        calls["n"] += 1
        if calls["n"] == STEPS_PER_EPOCH + 2:  # Ctrl-C in the middle of epoch 2
            raise KeyboardInterrupt
        return real_step(*args)

    out = tmp_path / "run"
    monkeypatch.setattr(train_steps, "train_step", interrupted_step)
    logs: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        train(config, out, progress=False, log=logs.append)
    assert "interrupted during epoch 2; epoch 1 is saved" in logs[-1] and "--resume" in logs[-1]
    assert load_checkpoint(out / "checkpoint.pt").epoch == 1  # intact, loadable
    assert json.loads((out / "train.json").read_text())["epochs_done"] == 1
    monkeypatch.setattr(train_steps, "train_step", real_step)

    resumed = _quiet(config, out, resume=True)
    assert any("resuming" in line and "after epoch 1/2" in line for line in resumed["_logs"])
    assert resumed["epochs_done"] == 2 and resumed["finished"]
    for ours, theirs in zip(resumed["history"], reference["history"], strict=True):
        for key in ("loss", "train_accuracy", "test_accuracy", "lr"):
            assert ours[key] == theirs[key], key
    _assert_same_weights(_state(out), _state(tmp_path / "ref"))
    a = load_checkpoint(out / "checkpoint.pt").train_state
    b = load_checkpoint(tmp_path / "ref" / "checkpoint.pt").train_state
    assert a is not None and b is not None
    assert a["scheduler"] == b["scheduler"]
    for key, value in a["optimizer"]["state"].items():
        assert torch.equal(
            value["momentum_buffer"], b["optimizer"]["state"][key]["momentum_buffer"]
        )


def test_resume_finished_run_returns_without_training(
    fashion_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _config(fashion_dir)
    first = _quiet(config, tmp_path)

    def no_training(*args: Any) -> tuple[float, int]:
        raise AssertionError("a finished run must not train again")

    monkeypatch.setattr(train_steps, "train_step", no_training)
    # Nor load the data: it may be gone by now (data_dir may change on resume).
    gone = dataclasses.replace(config, data_dir=str(tmp_path / "gone"))
    again = _quiet(gone, tmp_path, resume=True)
    assert "the run is finished (1/1 epochs)" in again["_logs"][0]
    assert again["history"] == first["history"]


def test_resume_with_other_config_is_refused(fashion_dir: Path, tmp_path: Path) -> None:
    _quiet(_config(fashion_dir), tmp_path)
    with pytest.raises(
        CheckpointError, match=r"different config \(epochs: 1 -> 2; lr: 0.05 -> 0.1\)"
    ):
        _quiet(_config(fashion_dir, lr=0.1, epochs=2), tmp_path, resume=True)
    # Fields that do not change the result may differ.
    _quiet(_config(fashion_dir, num_threads=2), tmp_path, resume=True)


def test_resume_without_checkpoint_starts_a_new_run(fashion_dir: Path, tmp_path: Path) -> None:
    summary = _quiet(_config(fashion_dir, train_limit=64), tmp_path / "new", resume=True)
    assert summary["epochs_done"] == 1


def test_existing_run_needs_resume_or_overwrite(fashion_dir: Path, tmp_path: Path) -> None:
    config = _config(fashion_dir, train_limit=64)
    _quiet(config, tmp_path)
    with pytest.raises(InputError, match=r"already holds a training run.*resume=True"):
        _quiet(config, tmp_path)
    assert _quiet(config, tmp_path, overwrite=True)["epochs_done"] == 1


def test_resume_from_a_checkpoint_without_train_state(fashion_dir: Path, tmp_path: Path) -> None:
    from dtif.checkpoint import save_checkpoint
    from dtif.models import ModelSpec

    spec = ModelSpec("cnn", width=WIDTH)
    save_checkpoint(
        tmp_path / "checkpoint.pt", spec.build(), spec,
        dataset="fashion-mnist", mean=(0.0,), std=(1.0,), test_accuracy=None, epoch=1,
    )  # fmt: skip
    with pytest.raises(CheckpointError, match="holds no training state"):
        _quiet(_config(fashion_dir, epochs=2), tmp_path, resume=True)


def test_config_defaults_and_validation() -> None:
    config = TrainConfig()
    assert (config.dataset, config.model, config.epochs, config.optimizer) == (
        "fashion-mnist", "cnn", 3, "sgd",
    )  # fmt: skip
    assert config.learning_rate == DEFAULT_LR["sgd"] == 0.05
    assert TrainConfig(optimizer="adam").learning_rate == 1e-3
    assert TrainConfig(lr=0.2).learning_rate == 0.2
    assert not config.use_augment
    assert TrainConfig(dataset="cifar10").use_augment
    assert not TrainConfig(dataset="cifar10", augment=False).use_augment
    bad: list[dict[str, Any]] = [
        {"epochs": 0},
        {"batch_size": 1.5},
        {"optimizer": "rmsprop"},
        {"model": "no-such-net"},
        {"dataset": "imagenet"},
        {"lr": 0.0},
        {"lr": float("nan")},
        {"momentum": 1.0},
        {"weight_decay": -1.0},
        {"label_smoothing": 1.0},
        {"train_limit": 0},
        {"test_limit": -5},
        {"width": 0},
        {"seed": True},
        {"augment": "yes"},
        {"device": "toaster"},
    ]
    for kw in bad:
        with pytest.raises(InputError):
            TrainConfig(**kw)


def test_progress_bar_and_test_limit(
    fashion_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    summary = train(
        _config(fashion_dir, train_limit=64, test_limit=16), tmp_path, progress=True, log=print
    )
    err = capsys.readouterr().err
    assert "epoch 1/1" in err and "loss=" in err and "acc=" in err
    assert summary["num_test"] == 16 and summary["num_train"] == 64
