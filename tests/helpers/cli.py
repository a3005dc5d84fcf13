"""Run ``dtif`` in-process, capture what it prints, and check its error messages."""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from pathlib import Path

from dtif.cli import main


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


def assert_clean_error(res: CliResult, command: str, *needles: str) -> None:
    """Exit 2, one `dtif <command>: error:` message naming each needle, no traceback."""
    assert res.code == 2, (res.code, res.out, res.err)
    assert res.err.startswith(f"dtif {command}: error: "), res.err
    assert "Traceback" not in res.err
    for needle in needles:
        assert needle in res.err, (needle, res.err)


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


def compare_args(checkpoint: Path, data_dir: Path, out: Path, *extra: str) -> list[str]:
    """`dtif compare` on a tiny workload: 32 test images, 32 calibration images, T = 8."""
    return [
        "compare", "--checkpoint", str(checkpoint), "--data-dir", str(data_dir),
        "--test-limit", "32", "--calib-size", "32", "--batch-size", "16", "--num-steps", "8",
        "--device", "cpu", "--methods", "if-max,if-p99.9", "--out", str(out), *extra,
    ]  # fmt: skip
