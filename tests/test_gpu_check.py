"""benchmarks/gpu_check.sh, the prepared GPU checks: its plumbing, in its CPU smoke mode."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_speed_stage_writes_its_json_and_log(tmp_path: Path) -> None:
    env = {**os.environ, "OUT": str(tmp_path), "GPU_CHECK_SMOKE": "1", "PYTHON": sys.executable}
    proc = subprocess.run(
        ["bash", "benchmarks/gpu_check.sh", "speed"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    log = (tmp_path / "speed.log").read_text()
    assert "== exit 0" in log and "== done" in log, log
    rows = json.loads((tmp_path / "sim_speed_gpu_b4.json").read_text())["results"]
    assert {r["model"] for r in rows} == {"cnn", "vgg16", "resnet20"}
    assert all(r["summary"]["a_over_b"] > 0 for r in rows)
    assert all(0.0 <= r["agreement"]["dtif_vs_ann"] <= 1.0 for r in rows)


def test_unknown_stage_is_refused(tmp_path: Path) -> None:
    proc = subprocess.run(
        ["bash", "benchmarks/gpu_check.sh", "train"],
        cwd=ROOT,
        env={**os.environ, "OUT": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "speed or latency" in proc.stderr
