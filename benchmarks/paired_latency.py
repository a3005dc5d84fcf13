"""Is the best DTIF's L_1 really below its control's? A paired bootstrap on the latency run's images.

For each row of benchmarks/results/headline.json (or the pairs given), rebuilds both methods
from their latency run (`common.rebuild_method`: no search is repeated), evaluates them on
the same test images with per-image records, checks that the accuracy curves equal the
published ones, and resamples the images (`dtif.metrics.paired_latency`): the interval of
L_1(DTIF) - L_1(control) and how often DTIF is lower, and the interval of each method's gap
to the ANN at T_max (`dtif.metrics.accuracy_gap`). Prints a table and writes
benchmarks/results/paired_latency.json after each row; the per-image records are kept in
runs/paired/<tag>/per_image/ (`dtif.report.per_image`) and reused while they still reproduce the published curve.

    python benchmarks/paired_latency.py                            # every headline row
    python benchmarks/paired_latency.py --rows vgg16/relu,cnn/qcfs
    python benchmarks/paired_latency.py --rows cnn/relu --pair dtif-auto-signed-bias:if-auto-signed
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import common

import dtif
from dtif.data import calibration_subset, load_dataset, make_loader, test_subset
from dtif.metrics import accuracy_gap
from dtif.report.per_image import load_record, record_path, save_record

OUT = common.RESULTS / "paired_latency.json"
HEADLINE = common.RESULTS / "headline.json"
CACHE = common.ROOT / "runs" / "paired"


def evaluate_row(
    row: str, pair: tuple[str, str], args: argparse.Namespace, gaps: list[str]
) -> tuple[dict[str, Any], list[str]]:
    """The bootstrap entry of one row, and the table lines that show it."""
    model, kind = row.split("/")
    tag, run, results, ckpt = common.load_latency_run(
        args.dataset, model, None, kind, None, args.num_steps, args.num_test
    )
    meta = results["meta"]["run"]
    train = load_dataset(args.dataset, "train")
    calib = calibration_subset(train, meta.get("calib_size", 1000), seed=common.CALIB_SEED)
    test = test_subset(load_dataset(args.dataset, "test"), args.num_test, seed=common.CALIB_SEED)
    loader = make_loader(test, batch_size=250, shuffle=False, seed=common.CALIB_SEED)
    records = {}
    for name in pair:
        published = results["methods"][name]["accuracy"]
        if record_path(CACHE / tag, name).exists():
            kept = load_record(CACHE / tag, name)
            if kept["accuracy"].tolist() == published:
                records[name] = kept
                continue
        start = time.monotonic()
        snn = common.rebuild_method(results, run, name, ckpt.model, calib)
        ev = dtif.evaluate(snn, loader, args.num_steps, per_image=True, progress=False)
        if ev.accuracy != published:
            worst = max(abs(a - b) for a, b in zip(ev.accuracy, published))
            raise SystemExit(
                f"{row}: the rebuilt {name} does not reproduce {run.name} (largest difference "
                f"{100 * worst:.2f} points): rerun latency.py for it, then this script"
            )
        print(f"  {row}: {name} rebuilt and evaluated in {time.monotonic() - start:.0f} s")
        save_record(CACHE / tag, name, ev)
        records[name] = {"correct": ev.image_correct, "ann_correct": ev.image_ann_correct}
    a, b = (records[n] for n in pair)
    ann = a["ann_correct"]
    entry: dict[str, Any] = {"dtif": pair[0], "control": pair[1], "run": run.name}
    lines = []
    for delta in (1.0, 0.1):
        res = dtif.paired_latency(
            a["correct"],
            b["correct"],
            ann,
            delta_points=delta,
            resamples=args.resamples,
            seed=args.seed,
        )
        entry[f"L_{delta:g}"] = res.to_dict()
        lines.append(
            f"{row:14} {'L_' + format(delta, 'g'):6} {pair[0]:30} {_fmt(res.latency_a):>4} "
            f"{pair[1]:22} {_fmt(res.latency_b):>4}  [{res.diff_low:+.0f}, {res.diff_high:+.0f}]"
            f"  {res.prob_a_lower:6.2f} {res.prob_tie:6.2f}"
        )
    for role, name in zip(("dtif", "control"), pair):
        gap = accuracy_gap(records[name]["correct"], ann, resamples=args.resamples, seed=args.seed)
        entry[f"gap_at_T_max_{role}"] = gap.to_dict()
        gaps.append(
            f"{row:14} {name:30} a(T_max) - A = {gap.gap:+.2f} points, 95% CI "
            f"[{gap.low:+.2f}, {gap.high:+.2f}]"
        )
    return entry, lines


def _fmt(value: int | None) -> str:
    return "n/r" if value is None else str(value)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", default=None, help="headline rows, e.g. vgg16/relu (default: all)")
    p.add_argument("--pair", default=None, help="DTIF:CONTROL instead of the headline's pair")
    p.add_argument("--dataset", default="fashion-mnist")
    p.add_argument("--num-steps", type=int, default=128, help="T_max of the latency runs")
    p.add_argument("--num-test", type=int, default=2000, help="test images of the latency runs")
    p.add_argument("--resamples", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0, help="seed of the resampling")
    args = p.parse_args()
    dtif.keep_freed_memory()  # the library leaves the allocator alone; see dtif.sim.allocator

    headline = json.loads(HEADLINE.read_text()) if HEADLINE.exists() else {}
    rows = args.rows.split(",") if args.rows else list(headline)
    if not rows:
        raise SystemExit(f"{HEADLINE} is missing: run headline.py, or pass --rows and --pair")
    out = json.loads(OUT.read_text()) if OUT.exists() else {}
    header = (
        f"{'row':14} {'':6} {'dtif':30} {'L':>4} {'control':22} {'L':>4}  95% CI of the difference"
        "  P(dtif lower) P(tie)"
    )
    table: list[str] = []
    gaps: list[str] = []
    for row in rows:
        if args.pair:
            pair = tuple(args.pair.split(":"))
        elif row in headline and headline[row]["best_dtif"]:
            pair = (headline[row]["best_dtif"], headline[row]["control"])
        else:
            raise SystemExit(f"{row} is not a headline row with a DTIF method: pass --pair")
        if len(pair) != 2:
            raise SystemExit(f"--pair is DTIF:CONTROL, got {args.pair!r}")
        entry, lines = evaluate_row(row, pair, args, gaps)  # type: ignore[arg-type]
        entry["resamples"], entry["seed"] = args.resamples, args.seed
        out.setdefault(row, {})[f"{pair[0]} vs {pair[1]}"] = entry
        OUT.write_text(json.dumps(out, indent=1))
        table += lines
    print("\n" + header)
    print("\n".join(table))
    print("\n" + "\n".join(gaps))
    print(f"\nwrote {OUT}")


if __name__ == "__main__":
    main()
