"""One summary of the latency runs: benchmarks/results/headline.json, a row per model and ANN kind.

Reads the JSON that `latency.py` wrote for each model (ReLU checkpoint, and the QCFS one when
present) and writes, per row `"<model>/<relu|qcfs>"`: the ANN accuracy, the best DTIF method
(the `dtif*` method with the lowest L_1, then L_0.1), its L_1 and L_0.1, the control (the
`if-*` method with the lowest L_1) and its L_1, and the best DTIF's accuracy at
T = 1, 2, 4, 8; and the best DTIF's speed-up and energy ratio against `if-max` on the ReLU
ANN of the same model. A latency never reached is null.

    python benchmarks/headline.py                  # the runs of 2,000 test images, T_max = 128
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import common

MODELS = ("cnn", "vgg16", "resnet20")
#: A method whose name starts so is an IF method and may serve as control; the strongest in the
#: run (lowest L_1) is chosen, so every variant DTIF gets (signed spikes, offsets, bursts, extra
#: search passes) is met by IF with the same.
CONTROL_PREFIX = "if-"
STEPS_SHOWN = (1, 2, 4, 8)


def _latency(method: dict[str, Any], key: str) -> float:
    value = method["latency"].get(key)
    return math.inf if value is None else float(value)


def _rank(method: dict[str, Any]) -> tuple[float, float]:
    return _latency(method, "1.0"), _latency(method, "0.1")


def headline_row(results: dict[str, Any]) -> dict[str, Any]:
    """The headline entry of one latency run (its JSON as a dict). A run without a dtif method
    gets nulls for the best DTIF, so that its control is still summarised.

    Raises:
        SystemExit: the run has no control method.
    """
    methods = results["methods"]
    dtifs = {name: m for name, m in methods.items() if name.startswith("dtif")}
    controls = {name: m for name, m in methods.items() if name.startswith(CONTROL_PREFIX)}
    if not controls:
        raise SystemExit(f"a headline row needs an if-* method; the run has {sorted(methods)}")
    control = min(controls, key=lambda n: (*_rank(controls[n]), n))
    best = min(dtifs, key=lambda n: (*_rank(dtifs[n]), n)) if dtifs else None
    latency = dtifs[best]["latency"] if best else {}
    accuracy = dtifs[best]["accuracy"] if best else []
    return {
        "ann_accuracy": results["ann_accuracy"],
        "best_dtif": best,
        "L_1": latency.get("1.0"),
        "L_0.1": latency.get("0.1"),
        "control": control,
        "control_L_1": controls[control]["latency"].get("1.0"),
        "accuracy_at_T": {str(t): accuracy[t - 1] for t in STEPS_SHOWN if t <= len(accuracy)},
    }


def against_if_max(row: dict[str, Any], best: dict[str, Any] | None, relu: dict[str, Any]) -> None:
    """Add the best DTIF's speed-up and energy ratio against if-max on the ReLU ANN to `row`.

    When if-max never reaches L_1 by T_max, the speed-up is a lower bound (T_max + 1) / L_1 and
    the energy ratio is null.
    """
    ref = relu["methods"].get("if-max")
    l_best = None if best is None else best["latency"].get("1.0")
    row["speedup_vs_relu_if_max"] = row["energy_ratio_vs_relu_if_max"] = None
    row["speedup_vs_relu_if_max_at_least"] = None
    if ref is None or l_best is None:
        return
    l_ref = ref["latency"].get("1.0")
    if l_ref is None:
        row["speedup_vs_relu_if_max_at_least"] = (relu["num_steps"] + 1) / l_best
        return
    assert best is not None  # noqa: S101 - l_best is None otherwise
    row["speedup_vs_relu_if_max"] = l_ref / l_best
    row["energy_ratio_vs_relu_if_max"] = best["energy_pj"][l_best - 1] / ref["energy_pj"][l_ref - 1]


def latency_files(results: Path, dataset: str, model: str, steps: int, num: int) -> dict[str, Path]:
    """The latency JSON of each ANN kind of `model` present in `results`, by kind."""
    tag = common.model_tag(dataset, model)
    found = {"relu": results / f"latency_{tag}_T{steps}_n{num}.json"}
    qcfs = sorted(results.glob(f"latency_{tag}-qcfs*_T{steps}_n{num}.json"))
    if len(qcfs) > 1:
        raise SystemExit(f"several QCFS runs of {model}: {[q.name for q in qcfs]}; keep one")
    if qcfs:
        found["qcfs"] = qcfs[0]
    return {kind: path for kind, path in found.items() if path.exists()}


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--dataset", default="fashion-mnist")
    p.add_argument("--num-steps", type=int, default=128)
    p.add_argument("--num-test", type=int, default=2000)
    p.add_argument("--results", type=Path, default=common.RESULTS)
    p.add_argument("--out", type=Path, default=common.RESULTS / "headline.json")
    args = p.parse_args()
    rows = {}
    for model in MODELS:
        files = latency_files(args.results, args.dataset, model, args.num_steps, args.num_test)
        relu = json.loads(files["relu"].read_text()) if "relu" in files else None
        for kind, path in files.items():
            results = json.loads(path.read_text())
            row = headline_row(results)
            if relu is not None:
                against_if_max(row, results["methods"].get(row["best_dtif"]), relu)
            rows[f"{model}/{kind}"] = row
            print(f"{model}/{kind}: {path.name}")
    if not rows:
        raise SystemExit(f"no latency runs in {args.results}; run benchmarks/latency.py first")
    args.out.write_text(json.dumps(rows, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
