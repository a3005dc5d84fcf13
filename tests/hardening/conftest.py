"""Shared fixtures of the hardening tests: fake Fashion-MNIST files and one tiny checkpoint."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

# The fake-data writers of the data and training tests, plain modules in tests/data, tests/train.
_TESTS = Path(__file__).resolve().parents[1]
for _folder in ("train", "data"):
    if str(_TESTS / _folder) not in sys.path:
        sys.path.insert(0, str(_TESTS / _folder))
from train_fakes import write_fake_fashion  # noqa: E402

from dtif.train import TrainConfig, train  # noqa: E402


@pytest.fixture(autouse=True)
def _single_thread() -> Iterator[None]:
    """Tiny tensors: one intra-op thread is several times faster on a busy 2-core box."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _no_data_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests name their data folder; the caller's DTIF_DATA must not leak in."""
    monkeypatch.delenv("DTIF_DATA", raising=False)


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
