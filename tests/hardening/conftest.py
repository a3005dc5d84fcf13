"""Shared fixtures of the hardening tests: fake Fashion-MNIST files and one tiny checkpoint."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# Plain helper modules of other test folders: the fake-data writers (tests/data, tests/train)
# and the in-process CLI runner (tests/cli).
_TESTS = Path(__file__).resolve().parents[1]
for _folder in ("train", "data", "cli"):
    if str(_TESTS / _folder) not in sys.path:
        sys.path.insert(0, str(_TESTS / _folder))
from train_fakes import write_fake_fashion  # noqa: E402

from dtif.train import TrainConfig, train  # noqa: E402


@pytest.fixture(scope="session")
def fashion_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A learnable fake Fashion-MNIST: raw IDX files, 256 train and 64 test images."""
    return write_fake_fashion(tmp_path_factory.mktemp("fashion"))


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory, fashion_dir: Path) -> Path:
    """checkpoint.pt of `dtif.train.train`: a width-0.125 cnn, 1 epoch on 200 images."""
    out = tmp_path_factory.mktemp("run")
    config = TrainConfig(
        width=0.125,
        epochs=1,
        batch_size=64,
        train_limit=200,
        test_limit=32,
        data_dir=str(fashion_dir),
        num_threads=1,
    )
    train(config, out, progress=False, log=lambda line: None)
    return out / "checkpoint.pt"
