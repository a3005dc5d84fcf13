"""Shared fixtures of the core-engine tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def _single_thread() -> Iterator[None]:
    """Run each test on one intra-op thread, and restore the setting afterwards.

    The tensors here are tiny: with several threads, OpenMP start-up and contention (e.g. a busy
    2-core CI box) dominate, and one thread is several times faster. Results do not depend on it.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
