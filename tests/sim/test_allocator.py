"""`keep_freed_memory`: an explicit opt-in that the CLI takes; the library never sets it."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

from dtif.sim.allocator import ENV_SWITCH, keep_freed_memory

SIMULATE = (
    "import torch, dtif\n"
    "snn = dtif.convert(torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU()),"
    " torch.rand(8, 4))\n"
    "snn.simulate(torch.rand(2, 4), 4)\n"
)
REPORT = (
    "from dtif.sim import allocator\n"
    "called = allocator.keep_freed_memory.cache_info().currsize == 1\n"
    "print(allocator.keep_freed_memory() if called else None)\n"
)
CLI = "import contextlib, io\nfrom dtif.cli import main\n" + (
    "with contextlib.redirect_stdout(io.StringIO()):\n    main(['compare', '--list-methods'])\n"
)


def probe(code: str, **env: str) -> str:
    """What a fresh process that ran `code` says about the allocator setting."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    clean.pop(ENV_SWITCH, None)
    out = subprocess.run(
        [sys.executable, "-c", code + REPORT],
        env={**clean, **env},
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return out.stdout.strip().splitlines()[-1]


def test_idempotent() -> None:
    assert keep_freed_memory() is keep_freed_memory()


def test_the_library_leaves_the_allocator_alone() -> None:
    assert probe(SIMULATE) == "None"  # simulate never called it


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_the_cli_sets_it_on_glibc() -> None:
    assert probe(CLI) == "True"


def test_opt_out_and_user_settings_are_respected() -> None:
    assert probe(CLI, **{ENV_SWITCH: "0"}) == "False"
    assert probe(CLI, MALLOC_TRIM_THRESHOLD_="1000000") == "False"
