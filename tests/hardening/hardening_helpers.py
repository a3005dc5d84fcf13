"""Helpers of the hardening tests: run `dtif` in-process and check its error messages.

A plain module, not ``conftest.py``, so that tests import it under a unique name. The
in-process runner is the CLI tests' `run_dtif` (tests/cli is on sys.path, see conftest.py).
"""

from __future__ import annotations

from pathlib import Path

from cli_helpers import CliResult, run_dtif

__all__ = ["CliResult", "assert_clean_error", "compare_args", "run_dtif"]


def compare_args(checkpoint: Path, data_dir: Path, out: Path, *extra: str) -> list[str]:
    """`dtif compare` on a tiny workload: 32 test images, 32 calibration images, T = 8."""
    return [
        "compare", "--checkpoint", str(checkpoint), "--data-dir", str(data_dir),
        "--test-limit", "32", "--calib-size", "32", "--batch-size", "16", "--num-steps", "8",
        "--device", "cpu", "--methods", "if-max,if-p99.9", "--out", str(out), *extra,
    ]  # fmt: skip


def assert_clean_error(res: CliResult, command: str, *needles: str) -> None:
    """Exit 2, one `dtif <command>: error:` message naming each needle, no traceback."""
    assert res.code == 2, (res.code, res.out, res.err)
    assert res.err.startswith(f"dtif {command}: error: "), res.err
    assert "Traceback" not in res.err
    for needle in needles:
        assert needle in res.err, (needle, res.err)
