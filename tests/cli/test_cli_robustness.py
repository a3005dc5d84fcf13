"""`dtif compare` under interruption, unwritable or full disks, and repeated runs.

Nothing finished is lost: results.json is rewritten atomically after every method, so an
interrupted or failed run leaves either the previous file or a valid partial one, and
`--resume` continues from it. Two runs with the same seed write identical bytes.
"""

from __future__ import annotations

import errno
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pytest

import dtif.report.compare as compare_module
from tests.helpers.cli import assert_clean_error, compare_args, run_dtif


@pytest.fixture(autouse=True)
def _no_plots(monkeypatch: pytest.MonkeyPatch) -> None:
    """Drawing the two PNGs takes 3/4 of a tiny run; test_cli.py checks them."""
    monkeypatch.setattr("dtif.report.plots.plot_results", lambda results, out_dir: [])


def _count_evaluate(monkeypatch: pytest.MonkeyPatch, interrupt_at: int | None) -> list[str]:
    """Patch compare's `evaluate` to record each call, raising Ctrl-C on call `interrupt_at`."""
    real = compare_module.evaluate
    calls: list[str] = []

    def evaluate(snn: Any, *args: Any, **kw: Any) -> Any:
        calls.append(type(snn.meta["norm"]).__name__)
        if len(calls) == interrupt_at:
            raise KeyboardInterrupt
        return real(snn, *args, **kw)

    monkeypatch.setattr(compare_module, "evaluate", evaluate)
    return calls


def _first_run(checkpoint: Path, data_dir: Path, out: Path) -> bytes:
    """A finished tiny `dtif compare` in `out`: its results.json."""
    first = run_dtif(*compare_args(checkpoint, data_dir, out))
    assert first.code == 0, first.err
    return (out / "results.json").read_bytes()


def test_ctrl_c_keeps_finished_methods_and_resume_finishes(
    tiny_checkpoint: Path, fashion_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "cmp"
    args = compare_args(tiny_checkpoint, fashion_dir, out)
    _count_evaluate(monkeypatch, interrupt_at=2)
    res = run_dtif(*args)
    assert res.code == 130, (res.out, res.err)
    assert "Traceback" not in res.err
    assert "interrupted" in res.err and "--resume" in res.err
    assert str(out / "results.json") in res.err
    partial = json.loads((out / "results.json").read_text())  # valid JSON
    assert list(partial["methods"]) == ["if-max"]
    assert partial["meta"]["complete"] is False
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]

    calls = _count_evaluate(monkeypatch, interrupt_at=None)
    resumed = run_dtif(*args, "--resume")
    assert resumed.code == 0, resumed.err
    assert "if-max: reused from" in resumed.out
    assert calls == ["PercentileNorm"]  # only if-p99.9 was evaluated again
    final = json.loads((out / "results.json").read_text())
    assert final["meta"]["complete"] is True
    assert list(final["methods"]) == ["if-max", "if-p99.9"]
    assert final["methods"]["if-max"] == partial["methods"]["if-max"]


def test_same_seed_gives_bit_identical_results(
    tiny_checkpoint: Path, fashion_dir: Path, tmp_path: Path
) -> None:
    # results.json has no timing field; its only path is the checkpoint's (meta.run), the same
    # in both runs. The output folder is not recorded.
    files = []
    for name in ("a", "b"):
        res = run_dtif(*compare_args(tiny_checkpoint, fashion_dir, tmp_path / name))
        assert res.code == 0, res.err
        files.append((tmp_path / name / "results.json").read_bytes())
    assert files[0] == files[1]
    assert (tmp_path / "a" / "results.csv").read_bytes() == (
        tmp_path / "b" / "results.csv"
    ).read_bytes()
    results = json.loads(files[0])
    assert "time" not in json.dumps(results).lower()


def test_unwritable_results_dir_fails_before_any_method(
    tiny_checkpoint: Path, fashion_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _count_evaluate(monkeypatch, interrupt_at=None)

    def denied(*args: object, **kwargs: object) -> tuple[int, str]:
        raise PermissionError(errno.EACCES, "Permission denied")

    # a read-only folder (as root, chmod does not stop writes: refuse them here instead)
    monkeypatch.setattr(tempfile, "mkstemp", denied)
    out = tmp_path / "locked"
    res = run_dtif(*compare_args(tiny_checkpoint, fashion_dir, out))
    assert_clean_error(res, "compare", str(out), "not writable")
    assert calls == []  # no method ran: the check comes first
    assert not (out / "results.json").exists()


def test_results_dir_that_cannot_be_made(
    tiny_checkpoint: Path, fashion_dir: Path, tmp_path: Path
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file where a folder should go")
    res = run_dtif(*compare_args(tiny_checkpoint, fashion_dir, blocker / "cmp"))
    assert_clean_error(res, "compare", str(blocker / "cmp"))


def test_disk_full_keeps_the_previous_results(
    tiny_checkpoint: Path, fashion_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "cmp"
    before = _first_run(tiny_checkpoint, fashion_dir, out)

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)  # every write fails once its data is written
    res = run_dtif(*compare_args(tiny_checkpoint, fashion_dir, out, "--num-steps", "6"))
    assert_clean_error(res, "compare", "No space left on device", "unchanged")
    assert (out / "results.json").read_bytes() == before
    assert json.loads(before)["meta"]["complete"] is True
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]


def test_resume_with_other_settings_keeps_the_old_results(
    tiny_checkpoint: Path, fashion_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "cmp"
    before = _first_run(tiny_checkpoint, fashion_dir, out)

    calls = _count_evaluate(monkeypatch, interrupt_at=None)
    res = run_dtif(*compare_args(tiny_checkpoint, fashion_dir, out, "--num-steps", "6"), "--resume")
    assert res.code == 0, res.err
    assert "run settings differ (num_steps: 8 -> 6)" in res.out
    assert "a copy is kept as results.previous.json" in res.out
    assert len(calls) == 2  # nothing reused from a run of other settings
    assert (out / "results.previous.json").read_bytes() == before
    assert json.loads((out / "results.json").read_text())["num_steps"] == 6


def test_a_run_without_resume_keeps_a_copy_of_the_last(
    tiny_checkpoint: Path, fashion_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "cmp"
    args = compare_args(tiny_checkpoint, fashion_dir, out)
    assert run_dtif(*args).code == 0
    (out / "results.json").write_text('{"mine": 1}')  # e.g. a file the user edited
    again = run_dtif(*args)
    assert again.code == 0, again.err
    assert "not resumed" in again.out and "--resume" in again.out
    assert json.loads((out / "results.previous.json").read_text()) == {"mine": 1}
    assert "methods" in json.loads((out / "results.json").read_text())
