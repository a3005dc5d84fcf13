"""`plot_results` draws on `matplotlib.figure.Figure` alone: the caller's backend and pyplot
state are left as they were."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

RESULTS = {
    "ann_accuracy": 0.9,
    "ann_energy_pj": 5.0e6,
    "num_test": 10,
    "methods": {
        "if-max": {"accuracy": [0.1, 0.5, 0.8, 0.9], "energy_pj": [1e5, 2e5, 4e5, 8e5]},
        "dtif": {"accuracy": [0.3, 0.7, 0.9, 0.9], "energy_pj": [2e5, 3e5, 5e5, 9e5]},
    },
}

# A fresh interpreter: the test process may have imported pyplot or resolved a backend already.
# The caller picks a backend that is not Agg (which a plotting module would most likely force),
# and has pyplot imported; each call of pyplot.figure (which subplots and gcf go through) counts.
CHILD = """
import json, sys
import matplotlib
matplotlib.use("svg")
import matplotlib.pyplot as plt

made = []
real_figure = plt.figure
def figure(*args, **kwargs):
    made.append(1)
    return real_figure(*args, **kwargs)
plt.figure = figure

before = matplotlib.get_backend()
from dtif.report.plots import plot_results
paths = plot_results(json.loads(sys.argv[1]), __import__("pathlib").Path(sys.argv[2]))
print(json.dumps({
    "before": before,
    "after": matplotlib.get_backend(),
    "fignums": plt.get_fignums(),
    "pyplot_figures": len(made),
    "paths": [str(p) for p in paths],
}))
"""


def test_plot_results_leaves_the_backend_and_pyplot_alone(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(RESULTS), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert seen["before"] == seen["after"] == "svg"
    assert seen["fignums"] == []
    assert seen["pyplot_figures"] == 0
    names = ["accuracy_vs_steps.png", "accuracy_vs_energy.png"]
    assert seen["paths"] == [str(tmp_path / name) for name in names]
    for name in names:
        assert (tmp_path / name).read_bytes()[:8] == PNG_MAGIC, name
