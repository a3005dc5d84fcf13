"""Helpers of the CLI tests: run ``dtif`` in-process and capture what it prints.

A plain module, not ``conftest.py``, so that tests import it under a unique name.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from pathlib import Path

from dtif.cli import main

#: Images of the fake Fashion-MNIST that the CLI tests train and evaluate on.
NUM_TRAIN = 400
NUM_TEST = 200


@dataclass
class CliResult:
    """Exit code and captured output of one in-process ``dtif`` run."""

    code: int
    out: str
    err: str


def run_dtif(*args: str | Path | int) -> CliResult:
    """``dtif --no-progress *args`` in-process; argparse exits become exit codes too."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(["--no-progress", *map(str, args)])
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 1
    return CliResult(code, out.getvalue(), err.getvalue())


def workload(checkpoint: Path, data_dir: Path, **opts: int | str) -> list[str]:
    """Checkpoint and data arguments of convert/evaluate/compare; tiny unless overridden.

    ``opts`` are option names without the dashes, underscores for hyphens (``num_steps=8``).
    """
    settings: dict[str, int | str] = {"test_limit": 50, "calib_size": 50, "device": "cpu"}
    settings.update(opts)
    args = ["--checkpoint", str(checkpoint), "--data-dir", str(data_dir)]
    for key, value in settings.items():
        args += [f"--{key.replace('_', '-')}", str(value)]
    return args
