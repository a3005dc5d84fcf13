"""The `dtif` CLI end to end on tiny settings: train, compare, convert, evaluate, methods."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest
import torch

from dtif.checkpoint import load_checkpoint, load_snn
from dtif.convert import PercentileNorm
from dtif.data import calibration_subset, load_dataset
from dtif.methods import DEFAULT_METHODS, METHODS
from tests.helpers.cli import CliResult, run_dtif, workload
from tests.helpers.data import NUM_TEST, NUM_TRAIN
from tests.helpers.threads import one_thread

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
STEPS = 8
COMPARED = ("if-max", "if-p99.9", "dtif")
CALIB = 50  # workload()'s --calib-size


# ---- train ---------------------------------------------------------------------------------


def test_train_writes_checkpoint_and_summary(tiny_run: Path, tiny_checkpoint: Path) -> None:
    summary = json.loads((tiny_run / "train.json").read_text())
    assert summary["epochs_done"] == 1 and summary["finished"]
    assert summary["config"]["train_limit"] == 200 and summary["config"]["width"] == 0.125
    assert summary["num_train"] == 200 and summary["num_test"] == 50
    assert len(summary["history"]) == 1
    ckpt = load_checkpoint(tiny_checkpoint)
    assert ckpt.epoch == 1 and ckpt.dataset == "fashion-mnist"
    assert ckpt.spec.name == "cnn" and ckpt.spec.width == 0.125
    assert ckpt.test_accuracy == summary["test_accuracy"]


def test_train_prints_accuracy_json(fashion_dir: Path, tmp_path: Path) -> None:
    res = run_dtif(
        "train", "--width", "0.125", "--epochs", "1", "--train-limit", "64",
        "--test-limit", "32", "--batch-size", "32", "--device", "cpu",
        "--data-dir", fashion_dir, "--out", tmp_path / "a" / "b",
    )  # fmt: skip
    assert res.code == 0, res.err
    last = json.loads(res.out.strip().splitlines()[-1])
    assert last["epochs_done"] == 1 and 0.0 <= last["test_accuracy"] <= 1.0
    assert (tmp_path / "a" / "b" / "checkpoint.pt").is_file()  # nested --out is created


# ---- compare -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compared(
    tiny_checkpoint: Path, fashion_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[CliResult, Path]:
    out = tmp_path_factory.mktemp("compare") / "cmp"
    with one_thread():
        res = run_dtif(
            "compare", *workload(tiny_checkpoint, fashion_dir, num_steps=STEPS),
            "--methods", ",".join(COMPARED), "--out", out,
        )  # fmt: skip
    return res, out


def test_compare_prints_the_table(compared: tuple[CliResult, Path]) -> None:
    res, out = compared
    assert res.code == 0
    lines = res.out.splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith("method "))
    assert lines[head].split() == [
        "method", "T=1", "T=2", "T=4", "T=8", "L_1", "L_0.1", "speedup", "E", "ratio", "SOP@L_1",
    ]  # fmt: skip
    assert set(lines[head + 1]) == {"-"}
    rows = [line.split()[0] for line in lines[head + 2 : head + 2 + len(COMPARED)]]
    assert rows == list(COMPARED)
    assert lines[head - 1].startswith("ANN accuracy") and "on 50 test images" in lines[head - 1]
    assert "T_max = 8" in lines[head - 1]
    assert str(out / "results.json") in res.out and str(out / "accuracy_vs_steps.png") in res.out


def _is_fraction(x: object) -> bool:
    return isinstance(x, float) and 0.0 <= x <= 1.0


def test_compare_results_json_shape(compared: tuple[CliResult, Path]) -> None:
    _, out = compared
    results = json.loads((out / "results.json").read_text())
    assert _is_fraction(results["ann_accuracy"])
    assert type(results["num_steps"]) is int and results["num_steps"] == STEPS
    assert type(results["num_test"]) is int and results["num_test"] == 50
    assert list(results["methods"]) == list(COMPARED)
    for name, m in results["methods"].items():
        assert len(m["accuracy"]) == STEPS and all(map(_is_fraction, m["accuracy"])), name
        assert set(m["latency"]) == {"1.0", "0.1"}
        for lat in m["latency"].values():
            assert lat is None or (type(lat) is int and 1 <= lat <= STEPS)
        for key in ("synops", "energy_pj"):
            assert len(m[key]) == STEPS
            assert all(isinstance(v, (int, float)) and v >= 0 for v in m[key])
            assert m[key] == sorted(m[key]), f"{name} {key} is cumulative"
    for key in ("speedup", "energy_ratio"):
        assert set(results[key]) == set(COMPARED)
        assert all(v is None or isinstance(v, float) for v in results[key].values())
    assert results["meta"]["complete"] is True
    assert results["meta"]["run"]["num_steps"] == STEPS


def test_compare_results_csv(compared: tuple[CliResult, Path]) -> None:
    _, out = compared
    results = json.loads((out / "results.json").read_text())
    with (out / "results.csv").open(newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["method", "T", "accuracy", "synops", "energy_pj"]
    assert len(rows) == 1 + len(COMPARED) * STEPS
    assert [(r[0], int(r[1])) for r in rows[1:]] == [
        (name, t) for name in COMPARED for t in range(1, STEPS + 1)
    ]
    for r in rows[1:]:
        assert float(r[2]) == pytest.approx(results["methods"][r[0]]["accuracy"][int(r[1]) - 1])


def test_compare_writes_png_plots(compared: tuple[CliResult, Path]) -> None:
    _, out = compared
    for name in ("accuracy_vs_steps.png", "accuracy_vs_energy.png"):
        data = (out / name).read_bytes()
        assert data[:8] == PNG_MAGIC and len(data) > 1000, name


def test_compare_resume_reuses_finished_methods(
    compared: tuple[CliResult, Path],
    tiny_checkpoint: Path,
    fashion_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, out = compared
    before = json.loads((out / "results.json").read_text())

    def no_conversion(*args: object, **kw: object) -> None:
        raise AssertionError("--resume must reuse the finished methods")

    monkeypatch.setattr("dtif.methods.Method.build", no_conversion)
    res = run_dtif(
        "compare", *workload(tiny_checkpoint, fashion_dir, num_steps=STEPS),
        "--methods", ",".join(COMPARED), "--out", out, "--resume",
    )  # fmt: skip
    assert res.code == 0, res.err
    assert res.out.count("reused from") == len(COMPARED)
    after = json.loads((out / "results.json").read_text())
    assert after["methods"] == before["methods"]


def test_compare_adds_the_reference_and_reads_a_json_spec(
    tiny_checkpoint: Path, fashion_dir: Path, tmp_path: Path
) -> None:
    spec = tmp_path / "my-dtif.json"
    spec.write_text(
        json.dumps(
            {
                "name": "my-dtif",
                "neuron": {"type": "DTIF", "alpha": 4},
                "norm": {"type": "PercentileNorm", "p": 99.9},
            }
        )
    )
    out = tmp_path / "cmp"
    res = run_dtif(
        "compare", *workload(tiny_checkpoint, fashion_dir, num_steps=2, test_limit=20),
        "--methods", spec, "--out", out,
    )  # fmt: skip
    assert res.code == 0, res.err
    results = json.loads((out / "results.json").read_text())
    assert list(results["methods"]) == ["if-max", "my-dtif"]  # the reference comes first
    method = results["methods"]["my-dtif"]["method"]
    assert method["neuron"]["type"] == "DTIFParams" and method["neuron"]["alpha"] == 4
    assert method["norm"] == {"type": "PercentileNorm", "p": 99.9, "channelwise": False}


def test_evaluate_reads_a_yaml_spec(
    tiny_checkpoint: Path, fashion_dir: Path, tmp_path: Path
) -> None:
    pytest.importorskip("yaml")
    spec = tmp_path / "if-half.yaml"
    spec.write_text("neuron:\n  type: IF\n  v0: 0.5\nnorm:\n  type: MaxNorm\n")
    res = run_dtif(
        "evaluate", *workload(tiny_checkpoint, fashion_dir, num_steps=2, test_limit=20),
        "--method", spec, "--out", tmp_path / "ev.json",
    )  # fmt: skip
    assert res.code == 0, res.err
    method = json.loads((tmp_path / "ev.json").read_text())["method"]
    assert method["name"] == "if-half"  # the file's stem when the spec has no name
    assert method["neuron"]["type"] == "IFParams" and method["neuron"]["v0"] == 0.5
    assert method["norm"]["type"] == "MaxNorm"


# ---- methods -------------------------------------------------------------------------------


def test_list_methods_names_every_method() -> None:
    res = run_dtif("compare", "--list-methods")
    assert res.code == 0 and res.err == ""
    listed = [line.split()[0] for line in res.out.splitlines()[1:] if line.startswith("  ")]
    assert listed[: len(METHODS)] == list(METHODS)
    for name, method in METHODS.items():
        line = next(li for li in res.out.splitlines() if li.split()[:1] == [name])
        assert method.description in line
        assert ("(default)" in line) == (name in DEFAULT_METHODS)
    assert ".json/.yaml spec file" in res.out


def test_unknown_method_lists_valid_names(
    tiny_checkpoint: Path, fashion_dir: Path, tmp_path: Path
) -> None:
    res = run_dtif(
        "compare",
        *workload(tiny_checkpoint, fashion_dir),
        "--methods",
        "if-max,nope",
        "--out",
        tmp_path,
    )
    assert res.code == 2 and res.out == ""
    assert res.err.startswith("dtif compare: error: unknown method 'nope'; valid names:")
    assert all(name in res.err for name in METHODS)
    assert "Traceback" not in res.err
    assert not (tmp_path / "results.json").exists()


# ---- convert, evaluate ---------------------------------------------------------------------


def test_convert_saves_an_snn_that_matches_a_fresh_conversion(
    tiny_checkpoint: Path, fashion_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "new" / "snn.pt"  # a missing folder is created
    res = run_dtif(
        "convert", *workload(tiny_checkpoint, fashion_dir, num_steps=STEPS),
        "--method", "dtif", "--out", out,
    )  # fmt: skip
    assert res.code == 0, res.err
    assert res.out.strip() == f"wrote {out}: 4 spiking layers (dtif)"
    loaded = load_snn(out)
    assert loaded.meta["method"] == "dtif"
    assert loaded.meta["norm"] == PercentileNorm(99.9)

    ckpt = load_checkpoint(tiny_checkpoint)
    calib = calibration_subset(load_dataset("fashion-mnist", "train", str(fashion_dir)), CALIB, 0)
    fresh = METHODS["dtif"].build(ckpt.model, calib, "error", target_steps=1)
    x = load_dataset("fashion-mnist", "test", str(fashion_dir)).images[:16]
    with torch.no_grad():
        a, b = loaded.simulate(x, num_steps=STEPS), fresh.simulate(x, num_steps=STEPS)
    assert torch.equal(a.outputs, b.outputs)
    assert torch.equal(a.synops, b.synops)


def test_evaluate_writes_json(tiny_checkpoint: Path, fashion_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "ev.json"
    res = run_dtif(
        "evaluate", *workload(tiny_checkpoint, fashion_dir, num_steps=4),
        "--method", "if-max", "--out", out,
    )  # fmt: skip
    assert res.code == 0, res.err
    lines = res.out.splitlines()
    assert lines[0].startswith("if-max on 50 test images; ANN ")
    assert [line.split("accuracy")[0].split() for line in lines[1:4]] == [
        ["T=", "1"], ["T=", "2"], ["T=", "4"],
    ]  # fmt: skip
    assert lines[4].startswith("  L_1 = ") and lines[5].startswith("  L_0.1 = ")
    assert lines[-1] == f"wrote {out}"
    ev = json.loads(out.read_text())
    assert ev["method"]["name"] == "if-max"
    assert len(ev["accuracy"]) == 4 and all(map(_is_fraction, ev["accuracy"]))
    assert len(ev["synops"]) == 4 and len(ev["energy_pj"]) == 4
    assert set(ev["latency"]) == {"1.0", "0.1"}


# ---- entry points --------------------------------------------------------------------------


def test_help_lists_every_command() -> None:
    res = run_dtif("--help")
    assert res.code == 0 and res.out.startswith("usage: dtif")
    for command in ("train", "convert", "evaluate", "compare", "demo", "export"):
        assert f"    {command} " in res.out


def test_python_m_dtif_and_console_script() -> None:
    """`python -m dtif` in a subprocess (the one slow test: it imports torch afresh)."""
    (script,) = [e for e in entry_points(group="console_scripts") if e.name == "dtif"]
    assert script.value == "dtif.cli:main"  # what `python -m dtif` runs too
    proc = subprocess.run(
        [sys.executable, "-m", "dtif", "compare", "--list-methods"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("methods:") and all(name in proc.stdout for name in METHODS)


def test_fake_data_sizes(fashion_dir: Path) -> None:
    assert len(load_dataset("fashion-mnist", "train", str(fashion_dir))) == NUM_TRAIN
    assert len(load_dataset("fashion-mnist", "test", str(fashion_dir))) == NUM_TEST
