"""Shared fixtures of the CLI tests: fake Fashion-MNIST files, one tiny trained checkpoint."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from cli_helpers import NUM_TEST, NUM_TRAIN, run_dtif
from threads import one_thread

# The learnable IDX writer of the training tests, a plain module in tests/train.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))
from train_fakes import write_fake_fashion  # noqa: E402


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A learnable fake Fashion-MNIST (raw IDX files) of NUM_TRAIN + NUM_TEST images."""
    return write_fake_fashion(tmp_path_factory.mktemp("fashion"), NUM_TRAIN, NUM_TEST)


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    """Run folder of ``dtif train``: 1 epoch of a width-0.125 cnn on 300 images."""
    out = tmp_path_factory.mktemp("run")
    with one_thread():
        res = run_dtif(
            "train", "--width", "0.125", "--epochs", "1", "--batch-size", "32",
            "--train-limit", "300", "--test-limit", "100", "--device", "cpu",
            "--data-dir", data_dir, "--out", out,
        )  # fmt: skip
    assert res.code == 0, res.err
    assert (out / "checkpoint.pt").is_file() and (out / "train.json").is_file()
    return out


@pytest.fixture(scope="session")
def checkpoint(trained: Path) -> Path:
    """The trained ``checkpoint.pt``."""
    return trained / "checkpoint.pt"
