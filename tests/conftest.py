"""Fixtures of every test: one intra-op thread, and no DTIF_DATA from the caller."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from threads import one_thread


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
