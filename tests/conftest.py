"""Fixtures of every test: one intra-op thread, no DTIF_DATA from the caller, and the one tiny
trained checkpoint (with its fake Fashion-MNIST) that every test needing one shares."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.cli import run_dtif
from tests.helpers.data import write_fake_fashion
from tests.helpers.threads import one_thread


@pytest.fixture(autouse=True)
def _single_thread() -> Iterator[None]:
    """Run each test on one intra-op thread, and restore the setting afterwards.

    The tensors here are tiny: with several threads, OpenMP start-up and contention (e.g. a busy
    2-core CI box) dominate, and one thread is several times faster. torchrun also gives each
    rank one thread. Results do not depend on it.
    """
    with one_thread():
        yield


@pytest.fixture(autouse=True)
def _no_data_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests name their data folder; the caller's DTIF_DATA must not leak in."""
    monkeypatch.delenv("DTIF_DATA", raising=False)


@pytest.fixture(scope="session")
def fashion_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A learnable fake Fashion-MNIST: raw IDX files of NUM_TRAIN + NUM_TEST images.

    Tests that damage it work on a copy.
    """
    return write_fake_fashion(tmp_path_factory.mktemp("fashion"))


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory, fashion_dir: Path) -> Path:
    """Run folder of ``dtif train``: 1 epoch of a width-0.125 cnn on 200 images.

    Holds ``checkpoint.pt`` and ``train.json``; tests read it and never change it.
    """
    out = tmp_path_factory.mktemp("run")
    with one_thread():  # a session fixture is set up before the autouse one above
        res = run_dtif(
            "train", "--width", "0.125", "--epochs", "1", "--batch-size", "32",
            "--train-limit", "200", "--test-limit", "50", "--device", "cpu",
            "--data-dir", fashion_dir, "--out", out,
        )  # fmt: skip
    assert res.code == 0, res.err
    assert (out / "checkpoint.pt").is_file() and (out / "train.json").is_file()
    return out


@pytest.fixture(scope="session")
def tiny_checkpoint(tiny_run: Path) -> Path:
    """The trained ``checkpoint.pt`` of `tiny_run`: a small trained cnn for any test."""
    return tiny_run / "checkpoint.pt"
