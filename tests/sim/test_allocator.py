"""`keep_freed_memory`: set once per process on glibc, skipped when the user opts out."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

from dtif.sim.allocator import ENV_SWITCH, keep_freed_memory

PROBE = (
    "import torch, dtif\n"
    "from dtif.sim import allocator\n"
    "snn = dtif.convert(torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU()),"
    " torch.rand(8, 4))\n"
    "snn.simulate(torch.rand(2, 4), 4)\n"
    "called = allocator.keep_freed_memory.cache_info().currsize == 1\n"
    "print(allocator.keep_freed_memory() if called else None)\n"
)


def probe(**env: str) -> str:
    """What a fresh process that ran one simulation says about the allocator setting."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    clean.pop(ENV_SWITCH, None)
    out = subprocess.run(
        [sys.executable, "-c", PROBE],
        env={**clean, **env},
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return out.stdout.strip().splitlines()[-1]


def test_idempotent() -> None:
    assert keep_freed_memory() is keep_freed_memory()


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_simulate_sets_it_on_glibc() -> None:
    assert probe() == "True"


def test_opt_out_and_user_settings_are_respected() -> None:
    assert probe(**{ENV_SWITCH: "0"}) == "False"
    assert probe(MALLOC_TRIM_THRESHOLD_="1000000") == "False"
