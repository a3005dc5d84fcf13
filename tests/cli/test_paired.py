"""`dtif compare --per-image` keeps per-image records; `dtif paired` compares two methods."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from dtif.errors import InputError
from dtif.report.compare import compare_methods
from dtif.report.per_image import load_record, record_path
from tests.helpers.cli import assert_clean_error, compare_args, run_dtif


@pytest.fixture(scope="module")
def per_image_run(
    tiny_checkpoint: Path, fashion_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    out = tmp_path_factory.mktemp("paired") / "cmp"
    res = run_dtif(*compare_args(tiny_checkpoint, fashion_dir, out, "--per-image"))
    assert res.code == 0, res.err
    return out


def test_records_match_the_results(per_image_run: Path) -> None:
    results = json.loads((per_image_run / "results.json").read_text())
    for name in ("if-max", "if-p99.9"):
        rec = load_record(per_image_run, name)
        assert rec["correct"].shape == (32, 8) and rec["correct"].dtype == torch.bool
        acc = rec["correct"].double().mean(0).tolist()
        assert acc == pytest.approx(results["methods"][name]["accuracy"], abs=1e-12)
        assert rec["accuracy"].tolist() == results["methods"][name]["accuracy"]


def test_paired_prints_and_writes(per_image_run: Path) -> None:
    res = run_dtif(
        "paired", "--run", per_image_run, "--methods", "if-p99.9,if-max", "--resamples", "100"
    )
    assert res.code == 0, res.err
    assert "interval of the difference" in res.out and "a(T_max) - A" in res.out
    report = json.loads((per_image_run / "paired_if-p99.9_vs_if-max_L1.json").read_text())
    lat = report["latency"]
    assert (lat["resamples"], lat["num_images"], lat["num_steps"]) == (100, 32, 8)
    assert lat["diff_low"] <= lat["diff_high"]
    assert set(report["gap_at_T_max"]) == {"if-p99.9", "if-max"}


def test_paired_names_a_missing_record(per_image_run: Path) -> None:
    res = run_dtif("paired", "--run", per_image_run, "--methods", "if-max,dtif")
    assert_clean_error(res, "paired", "dtif.pt does not exist", "--per-image")


def test_paired_needs_two_names(per_image_run: Path) -> None:
    res = run_dtif("paired", "--run", per_image_run, "--methods", "if-max")
    assert_clean_error(res, "paired", "two different method names")


def test_records_of_other_images_are_refused(per_image_run: Path, tmp_path: Path) -> None:
    rec = load_record(per_image_run, "if-max")
    other = tmp_path / "run"
    for name, n in (("if-max", 32), ("if-p99.9", 20)):
        path = record_path(other, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({**rec, "method": name, "correct": rec["correct"][:n]}, path)
    res = run_dtif("paired", "--run", other, "--methods", "if-max,if-p99.9")
    assert_clean_error(res, "paired", "different images or steps")


def test_per_image_needs_an_out_dir() -> None:
    with pytest.raises(InputError, match="per-image records need one process"):
        compare_methods(torch.nn.Sequential(), torch.zeros(1), [], [], 4, 0, None, per_image=True)
