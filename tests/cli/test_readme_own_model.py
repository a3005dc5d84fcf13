"""The README's "Bring your own model" commands run as written (slow: a real compare)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def own_model_block() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Bring your own model\n", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"^```bash\n(.*?)^```", section, re.S | re.M)
    assert match, "README.md: no ```bash block under ## Bring your own model"
    return match.group(1)


def test_the_block_uses_the_own_model_flags() -> None:
    block = own_model_block()
    for flag in ("--model-file", "--model-kwargs", "--weights", "--dataset npz", "--data-dir"):
        assert flag in block


@pytest.mark.slow
def test_own_model_commands_run_as_written(tmp_path: Path) -> None:
    pytest.importorskip("PIL")
    bindir = Path(sys.executable).parent
    env = {
        **os.environ,
        "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}.",
    }
    script = 'dtif() { python -m dtif --no-progress "$@"; }\n' + own_model_block()
    done = subprocess.run(
        ["bash", "-e", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((tmp_path / "runs" / "mine" / "results.json").read_text())
    assert list(results["methods"]) == ["if-max", "dtif"]
    assert results["meta"]["model"]["model_file"] == "my_model.py:Net"
