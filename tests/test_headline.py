"""benchmarks/headline.py: which method is the best DTIF and which the control, on small run files."""

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "headline.py"


def _method(l1, l01=None, steps=8):
    acc = [0.5 + 0.05 * t for t in range(steps)]
    return {
        "latency": {"1.0": l1, "0.1": l01},
        "accuracy": acc,
        "energy_pj": [100.0 * (t + 1) for t in range(steps)],
    }


def _write(path, methods, steps=8):
    run = {"ann_accuracy": 0.9, "num_steps": steps, "methods": methods}
    path.write_text(json.dumps(run))


def _headline(results):
    out = results / "headline.json"
    subprocess.run(
        [sys.executable, str(SCRIPT), "--num-steps", "8", "--num-test", "10"]
        + ["--results", str(results), "--out", str(out)],
        check=True,
        capture_output=True,
    )
    return json.loads(out.read_text())


def test_signed_if_is_a_control_and_ratios_use_the_relu_if_max(tmp_path):
    tag = "fashion-mnist-cnn-w1"
    _write(
        tmp_path / f"latency_{tag}_T8_n10.json",
        {
            "if-max": _method(8),
            "if-auto": _method(6),
            "if-auto-signed": _method(3),
            "dtif-auto": _method(5),
            "dtif-auto-signed": _method(2, 4),
        },
    )
    _write(
        tmp_path / f"latency_{tag}-qcfs8_T8_n10.json",
        {"if-qcfs": _method(4), "dtif-auto-qcfs": _method(None)},
    )
    rows = _headline(tmp_path)
    relu = rows["cnn/relu"]
    assert (relu["best_dtif"], relu["L_1"], relu["L_0.1"]) == ("dtif-auto-signed", 2, 4)
    assert (relu["control"], relu["control_L_1"]) == ("if-auto-signed", 3)
    assert relu["speedup_vs_relu_if_max"] == 8 / 2
    assert relu["energy_ratio_vs_relu_if_max"] == 200.0 / 800.0
    assert set(relu["accuracy_at_T"]) == {"1", "2", "4", "8"}
    qcfs = rows["cnn/qcfs"]
    assert (qcfs["best_dtif"], qcfs["L_1"], qcfs["control"]) == ("dtif-auto-qcfs", None, "if-qcfs")
    assert qcfs["speedup_vs_relu_if_max"] is None


def test_a_run_without_dtif_still_gives_its_control(tmp_path):
    _write(tmp_path / "latency_fashion-mnist-resnet20-w1_T8_n10.json", {"if-auto": _method(6)})
    row = _headline(tmp_path)["resnet20/relu"]
    assert (row["best_dtif"], row["L_1"], row["accuracy_at_T"]) == (None, None, {})
    assert (row["control"], row["control_L_1"], row["speedup_vs_relu_if_max"]) == (
        "if-auto",
        6,
        None,
    )


def test_every_if_method_of_the_run_may_be_the_control(tmp_path):
    methods = {"if-auto": _method(6), "if-some-new-variant": _method(4), "dtif-auto": _method(5)}
    _write(tmp_path / "latency_fashion-mnist-vgg16-w0.25_T8_n10.json", methods)
    row = _headline(tmp_path)["vgg16/relu"]
    assert (row["control"], row["control_L_1"], row["best_dtif"]) == (
        "if-some-new-variant",
        4,
        "dtif-auto",
    )
