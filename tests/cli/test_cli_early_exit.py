"""`dtif evaluate/compare --early-exit [SPEC]`: the flag, its specs and bad ones."""

from __future__ import annotations

import json
from pathlib import Path

from tests.helpers.cli import run_dtif, workload


def test_evaluate_early_exit_auto_writes_the_policy(
    tiny_checkpoint: Path, fashion_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "ev.json"
    res = run_dtif(
        "evaluate", *workload(tiny_checkpoint, fashion_dir, num_steps=6),
        "--method", "dtif", "--early-exit", "--out", out,
    )  # fmt: skip
    assert res.code == 0, res.err
    assert "early exit (" in res.out and "mean exit step" in res.out
    ev = json.loads(out.read_text())
    assert sum(ev["exit_steps"]) == ev["num_samples"] == 50
    assert ev["exit_calibration"]["num_images"] == 50 and ev["exit_policy"]["k"] >= 1
    assert ev["exit_accuracy"] == ev["accuracy"][-1]


def test_compare_early_exit_spec_table_and_bad_specs(
    tiny_checkpoint: Path, fashion_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "cmp"
    res = run_dtif(
        "compare", *workload(tiny_checkpoint, fashion_dir, num_steps=4), "--methods", "dtif",
        "--early-exit", "margin:0.5:k=2", "--out", out,
    )  # fmt: skip
    assert res.code == 0, res.err
    assert "exit acc" in res.out and res.out.count("early exit ") == 2  # if-max and dtif
    results = json.loads((out / "results.json").read_text())
    assert results["methods"]["dtif"]["early_exit"]["policy"] == {
        "rule": "margin", "threshold": 0.5, "k": 2,
    }  # fmt: skip
    bad = run_dtif(
        "compare", *workload(tiny_checkpoint, fashion_dir), "--early-exit", "soon", "--out", out
    )
    assert bad.code == 2 and "bad --early-exit 'soon'" in bad.err
    bad = run_dtif(
        "compare", *workload(tiny_checkpoint, fashion_dir), "--early-exit",
        "--early-exit-methods", "dtif-auto", "--methods", "dtif", "--out", out,
    )  # fmt: skip
    assert bad.code == 2 and "--early-exit-methods names dtif-auto" in bad.err
