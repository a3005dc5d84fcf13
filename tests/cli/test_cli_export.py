"""`dtif export --format nir`: the portable graph by default, --no-portable, --spike-rule."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.cli import assert_clean_error, run_dtif, workload

nir = pytest.importorskip("nir")


@pytest.fixture(scope="module")
def zero_reset_snn(
    tiny_checkpoint: Path, fashion_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The tiny cnn converted with IF, reset to zero, and saved by `dtif convert`."""
    folder = tmp_path_factory.mktemp("export")
    spec = folder / "if-zero.json"
    spec.write_text(json.dumps({"name": "if-zero", "neuron": {"type": "IF", "reset": "zero"}}))
    out = folder / "snn.pt"
    res = run_dtif(
        "convert", *workload(tiny_checkpoint, fashion_dir), "--method", spec, "--out", out
    )
    assert res.code == 0, res.err
    return out


def test_export_writes_the_portable_graph(zero_reset_snn: Path, tmp_path: Path) -> None:
    out = tmp_path / "snn.nir"
    res = run_dtif("export", "--snn", zero_reset_snn, "--out", out)
    assert res.code == 0, res.err
    assert res.out.strip() == f"wrote {out} (NIR)"
    graph = nir.read(out)
    assert not any(isinstance(n, nir.Scale) for n in graph.nodes.values())
    assert graph.metadata["dtif.spike_rule"] == "strict"


def test_export_inclusive_rule(zero_reset_snn: Path, tmp_path: Path) -> None:
    out = tmp_path / "snn.nir"
    res = run_dtif("export", "--snn", zero_reset_snn, "--out", out, "--spike-rule", "inclusive")
    assert res.code == 0, res.err
    graph = nir.read(out)
    assert graph.metadata["dtif.spike_rule"] == "inclusive"
    thresholds = [n.v_threshold for n in graph.nodes.values() if isinstance(n, nir.IF)]
    assert thresholds and all(np.all(t == 1.0) for t in thresholds)


def test_export_no_portable_keeps_the_scales(zero_reset_snn: Path, tmp_path: Path) -> None:
    out = tmp_path / "snn.nir"
    res = run_dtif("export", "--snn", zero_reset_snn, "--out", out, "--no-portable")
    assert res.code == 0, res.err
    graph = nir.read(out)
    assert any(isinstance(n, nir.Scale) for n in graph.nodes.values())
    res = run_dtif(
        "export", "--snn", zero_reset_snn, "--out", out, "--no-portable", "--spike-rule",
        "inclusive",
    )  # fmt: skip
    assert_clean_error(res, "export", "spike_rule='inclusive'", "portable=False")


def test_export_of_a_dtif_snn_names_each_layer(
    tiny_checkpoint: Path, fashion_dir: Path, tmp_path: Path
) -> None:
    snn = tmp_path / "snn.pt"
    res = run_dtif(
        "convert", *workload(tiny_checkpoint, fashion_dir), "--method", "dtif", "--out", snn
    )
    assert res.code == 0, res.err
    out = tmp_path / "snn.nir"
    res = run_dtif("export", "--snn", snn, "--out", out)
    assert_clean_error(res, "export", "cannot be written as a NIR graph", "DTIF neuron")
    assert res.err.count("DTIF neuron") == 4  # the tiny cnn's four spiking layers
    assert not out.exists()
