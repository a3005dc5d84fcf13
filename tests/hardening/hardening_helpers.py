"""Helpers of the hardening tests: run `dtif` in-process and check its error messages.

A plain module, not ``conftest.py``, so that tests import it under a unique name.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from pathlib import Path

from dtif.cli import main


@dataclass
class Run:
    """Exit code and captured output of one in-process `dtif` run."""

    code: int
    out: str
    err: str


def run_cli(*args: str | Path | int) -> Run:
    """`dtif --no-progress *args` in-process; SystemExit becomes the exit code."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(["--no-progress", *map(str, args)])
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 1
    return Run(code, out.getvalue(), err.getvalue())


def compare_args(checkpoint: Path, data_dir: Path, out: Path, *extra: str) -> list[str]:
    """`dtif compare` on a tiny workload: 32 test images, 32 calibration images, T = 8."""
    return [
        "compare", "--checkpoint", str(checkpoint), "--data-dir", str(data_dir),
        "--test-limit", "32", "--calib-size", "32", "--batch-size", "16", "--num-steps", "8",
        "--device", "cpu", "--methods", "if-max,if-p99.9", "--out", str(out), *extra,
    ]  # fmt: skip


def assert_clean_error(res: Run, command: str, *needles: str) -> None:
    """Exit 2, one `dtif <command>: error:` message naming each needle, no traceback."""
    assert res.code == 2, (res.code, res.out, res.err)
    assert res.err.startswith(f"dtif {command}: error: "), res.err
    assert "Traceback" not in res.err
    for needle in needles:
        assert needle in res.err, (needle, res.err)
