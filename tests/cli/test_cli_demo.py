"""`dtif demo`: its wiring on fake data with shrunken settings, and one real run (slow)."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

import dtif.cli.commands as cli
import dtif.train as train_module
import dtif.train.steps as train_steps
from dtif.cli.parser import DEMO_METHODS
from dtif.report.table import EXIT_COLUMNS
from dtif.train import TrainConfig
from tests.helpers.cli import run_dtif

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@dataclasses.dataclass
class Recorded:
    """What the demo asked `train` and `run_compare` for."""

    configs: list[TrainConfig] = dataclasses.field(default_factory=list)
    runs: list[Path] = dataclasses.field(default_factory=list)
    compares: list[argparse.Namespace] = dataclasses.field(default_factory=list)


def record(monkeypatch: pytest.MonkeyPatch, shrink: bool) -> Recorded:
    """Record the demo's calls; with `shrink`, run them at tiny size, else do nothing."""
    seen = Recorded()
    real_train, real_compare = train_module.train, cli.run_compare

    def fake_train(config: TrainConfig, out_dir: Path, **kw: Any) -> dict[str, Any]:
        seen.configs.append(config)
        seen.runs.append(Path(out_dir))
        if not shrink:
            return {}
        tiny = dataclasses.replace(
            config, width=0.125, batch_size=32, train_limit=64, test_limit=32
        )
        return real_train(tiny, out_dir, **kw)

    def fake_compare(
        args: argparse.Namespace, title: str = "", verdict_for: str | None = None
    ) -> dict[str, Any]:
        seen.compares.append(argparse.Namespace(**vars(args)))
        if not shrink:
            return {}
        args.num_steps, args.test_limit, args.calib_size = 4, 20, 20
        return real_compare(args, title, verdict_for)

    monkeypatch.setattr(train_module, "train", fake_train)  # cmd_demo imports it when run
    monkeypatch.setattr(cli, "run_compare", fake_compare)
    return seen


def test_demo_quick_trains_compares_then_reuses(
    fashion_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = record(monkeypatch, shrink=True)
    args = ("demo", "--quick", "--out", tmp_path, "--data-dir", fashion_dir, "--device", "cpu")
    res = run_dtif(*args)
    assert res.code == 0, res.err
    run_dir = tmp_path / "cnn-quick"
    (config,) = seen.configs
    assert seen.runs == [run_dir]
    assert (config.model, config.width, config.epochs) == ("cnn", 0.5, 1)
    assert (config.train_limit, config.test_limit) == (5000, 1000)
    assert config.data_dir == str(fashion_dir) and config.device == "cpu"
    (ns,) = seen.compares
    assert (ns.num_steps, ns.test_limit, ns.calib_size) == (16, 500, 1000)
    assert ns.checkpoint == run_dir / "checkpoint.pt" and ns.out == str(run_dir / "compare")
    assert ns.methods == ",".join(DEMO_METHODS) and ns.data_dir == str(fashion_dir)
    assert ns.resume is False and ns.no_progress is True
    assert (ns.early_exit, ns.early_exit_methods) == ("auto", "dtif-auto")

    assert "== 1/2 train (or reuse) the cnn" in res.out
    assert "== 2/2 convert and compare (500 test images, T_max=16)" in res.out
    assert "ANN accuracy" in res.out and "demo finished in" in res.out
    results = json.loads((run_dir / "compare" / "results.json").read_text())
    assert list(results["methods"]) == list(DEMO_METHODS)
    # the table's columns, one early-exit line for dtif-auto alone, and the verdict
    head = next(line for line in res.out.splitlines() if line.startswith("method "))
    assert head.split()[-len(EXIT_COLUMNS) - 5 :] == [
        "L_1", "L_0.1", "speedup", "E", "ratio", "SOP@L_1", "exit", "acc", "exit", "T",
        "SOP@exit", "time/T",
    ][-len(EXIT_COLUMNS) - 5 :]  # fmt: skip
    exits = [name for name, m in results["methods"].items() if "early_exit" in m]
    assert exits == ["dtif-auto"]
    block = results["methods"]["dtif-auto"]["early_exit"]
    keys = {"accuracy", "mean_step", "median_step", "p95_step", "synops", "energy_pj"}
    assert keys | {"seconds", "seconds_fixed_T", "policy"} <= set(block)
    assert res.out.count("early exit dtif-auto:") == 1
    assert "verdict: dtif-auto" in res.out and "paper" in res.out
    assert (run_dir / "compare" / "accuracy_vs_steps.png").read_bytes()[:8] == PNG_MAGIC

    # A second run reuses the finished checkpoint instead of training again.
    monkeypatch.setattr(train_steps, "train_step", lambda *a: pytest.fail("trained again"))
    monkeypatch.setattr(cli, "run_compare", lambda args, title="", verdict_for=None: {})
    again = run_dtif(*args)
    assert again.code == 0, again.err
    assert "the run is finished (1/1 epochs)" in again.out


@pytest.mark.parametrize(
    ("flags", "epochs", "limit"),
    [((), 3, 2000), (("--full",), 3, None), (("--epochs", "5"), 5, 2000)],
)
def test_demo_default_and_full_settings(
    flags: tuple[str, ...],
    epochs: int,
    limit: int | None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen = record(monkeypatch, shrink=False)
    res = run_dtif("demo", *flags, "--out", tmp_path, "--device", "cpu")
    assert res.code == 0, res.err
    (config,) = seen.configs
    assert (config.model, config.width, config.epochs) == ("cnn", 0.5, epochs)
    assert config.train_limit is None and config.test_limit is None and config.data_dir is None
    assert seen.runs == [tmp_path / f"cnn-w0.5-e{epochs}"]
    (ns,) = seen.compares
    assert (ns.num_steps, ns.test_limit) == (128, limit)
    assert ns.methods == "if-max,if-p99.9-v0.5,if-auto,dtif-auto"
    assert ("full test split" if limit is None else f"{limit} test images") in res.out


def test_demo_quick_and_full_exclude_each_other() -> None:
    res = run_dtif("demo", "--quick", "--full")
    assert res.code == 2
    assert "argument --full: not allowed with argument --quick" in res.err


@pytest.mark.slow
@pytest.mark.skipif(
    not (FASHION_DIR / "t10k-labels-idx1-ubyte.gz").is_file(),
    reason="needs the Debian package dataset-fashion-mnist",
)
def test_demo_quick_on_real_fashion_mnist(tmp_path: Path) -> None:
    res = run_dtif("demo", "--quick", "--out", tmp_path, "--device", "cpu")
    assert res.code == 0, res.err
    out = tmp_path / "cnn-quick" / "compare"
    results = json.loads((out / "results.json").read_text())
    assert results["num_steps"] == 16 and results["num_test"] == 500
    assert list(results["methods"]) == list(DEMO_METHODS)
    assert results["ann_accuracy"] > 0.7  # one epoch of a half-width cnn on 5,000 images
    for name in ("accuracy_vs_steps.png", "accuracy_vs_energy.png"):
        assert (out / name).read_bytes()[:8] == PNG_MAGIC
