"""Distributed runs: sharding, the totals reduction, rank agreement, and 2-rank runs end to end.

The default suite starts 2 CPU processes once (`torch.multiprocessing.spawn`, gloo on
127.0.0.1, a free port, the environment torchrun would set): they check the rank agreement,
the reduction and DDP training, then run `dtif compare`, whose results.json must equal a
one-process run's. The slow suite also launches the real `torchrun -m dtif compare`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
import sys
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as torch_dist
import torch.multiprocessing as mp
from torch.utils.data import TensorDataset

from dtif.checkpoint import load_checkpoint
from dtif.cli import main
from dtif.data import make_loader
from dtif.errors import InputError
from dtif.methods import METHODS
from dtif.nn.neuron import SpikingNeuron
from dtif.sim import distributed
from dtif.sim.evaluate import Totals, evaluate
from dtif.train import TrainConfig, train

NUM_TEST = 41  # odd, not a multiple of the batch size: an even split would need padding
WIDTH = 0.125


# ---- one process ---------------------------------------------------------------------------


@pytest.mark.parametrize("n", [0, 1, 7, 41, 64])
@pytest.mark.parametrize("batch_size", [1, 5, 10, 64])
@pytest.mark.parametrize("world", [1, 2, 3, 8])
def test_shard_is_disjoint_covers_all_and_keeps_batches(
    n: int, batch_size: int, world: int
) -> None:
    data = TensorDataset(torch.arange(n, dtype=torch.float32), torch.arange(n))
    parts = [distributed.shard(data, batch_size, part=r, num_parts=world) for r in range(world)]
    sizes = [len(p) for p in parts]  # type: ignore[arg-type]  # shards are sized
    indices = [int(p[i][1]) for p, size in zip(parts, sizes) for i in range(size)]
    assert indices == list(range(n))  # disjoint, in order, every sample exactly once
    assert max(sizes) - min(sizes) <= batch_size
    single = [y for _, y in make_loader(data, batch_size, shuffle=False, seed=0)] if n else []
    sharded = [y for p in parts for _, y in make_loader(p, batch_size, shuffle=False, seed=0)]
    assert len(single) == len(sharded)  # the same batches: no batch is split between ranks
    assert all(torch.equal(a, b) for a, b in zip(single, sharded))


def test_shard_without_a_group_is_the_dataset() -> None:
    data = TensorDataset(torch.zeros(5))
    assert distributed.shard(data, 2) is data
    assert (distributed.rank(), distributed.world_size(), distributed.is_main()) == (0, 1, True)
    with pytest.raises(InputError, match="part"):
        distributed.shard(data, 2, part=2, num_parts=2)


def test_evaluate_with_reduce_hook_matches_plain(tiny_checkpoint: Path) -> None:
    ckpt = load_checkpoint(tiny_checkpoint)
    x = torch.randn(12, 1, 28, 28)
    snn = METHODS["dtif"].build(ckpt.model, x, "error", target_steps=1)
    batches = [(x[:5], torch.arange(5)), (x[5:], torch.arange(7))]
    seen: list[Totals | None] = []

    def reduce(t: Totals | None) -> Totals:
        seen.append(t)
        return distributed.all_reduce_totals(t)  # without a group: the totals themselves

    a = evaluate(snn, batches, 6, progress=False)
    b = evaluate(snn, batches, 6, progress=False, reduce=reduce)
    assert a.to_dict() == b.to_dict() and len(seen) == 1
    assert seen[0] is not None and torch.equal(seen[0].synops, seen[0].synops.round())


# ---- two processes -------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _gather(t: torch.Tensor) -> list[torch.Tensor]:
    out = [torch.empty_like(t) for _ in range(distributed.world_size())]
    torch_dist.all_gather(out, t.contiguous())
    return out


def _worker(rank: int, world: int, port: int, checkpoint: str, data: str, out: str) -> None:
    torch.set_num_threads(1)
    os.environ.update(
        {
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
            "RANK": str(rank),
            "LOCAL_RANK": str(rank),
            "WORLD_SIZE": str(world),
        }
    )
    assert distributed.init_from_env("cpu")
    try:
        assert torch_dist.get_backend() == "gloo"
        assert (distributed.rank(), distributed.world_size()) == (rank, world)
        _check_thresholds_agree(Path(checkpoint), rank)
        _check_empty_rank_reduction(rank)
        _check_ddp_training(Path(data), Path(out), rank)
        with open(Path(out) / f"stdout.{rank}", "w") as stdout, redirect_stdout(stdout):
            assert main(_compare_args(Path(checkpoint), Path(data), Path(out) / "multi")) == 0
        distributed.barrier()
    finally:
        distributed.destroy()
    # Done and checked: skip the interpreter's teardown, where gloo's threads aborted a rank
    # after its work (SIGABRT, "terminate called without an active exception") in about one
    # run in 20 to 40 on a loaded 2-core machine.
    os._exit(0)


def _check_thresholds_agree(checkpoint: Path, rank: int) -> None:
    """Ranks that calibrate on different images still end with rank 0's thresholds."""
    model = load_checkpoint(checkpoint).model
    calib = torch.randn(16, 1, 28, 28, generator=torch.Generator().manual_seed(rank))
    snn = METHODS["dtif"].build(model, calib, "error", target_steps=1)
    neurons = [m for m in snn.layers() if isinstance(m, SpikingNeuron)]
    neurons[0].params = dataclasses.replace(neurons[0].params, alpha=float(rank))
    scales = torch.cat([b.reshape(-1) for b in snn.buffers()])
    before = _gather(scales)
    assert not torch.equal(before[0], before[1])  # other calibration images, other scales
    distributed.broadcast_snn(snn)
    after = _gather(torch.cat([b.reshape(-1) for b in snn.buffers()]))
    assert torch.equal(after[0], before[0]) and torch.equal(after[1], before[0])
    params: list[Any] = [None, None]
    torch_dist.all_gather_object(params, [m.params for m in neurons])
    assert params[0] == params[1] and params[1][0].alpha == 0.0  # rank 0's neurons


def _check_empty_rank_reduction(rank: int) -> None:
    """A rank without test batches contributes zeros and learns the layout from the others."""
    steps = 3
    mine = None
    if rank == 0:
        mine = Totals(
            correct=torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64),
            ann_correct=torch.tensor(4.0, dtype=torch.float64),
            synops=torch.tensor([10.0, 20.0, 30.0], dtype=torch.float64),
            synops_graded=torch.zeros(steps, dtype=torch.float64),
            spikes={
                "b": torch.ones(steps, dtype=torch.float64),
                "a": torch.full((steps,), 2.0, dtype=torch.float64),
            },
            count=torch.tensor(5.0, dtype=torch.float64),
        )
    total = distributed.all_reduce_totals(mine)
    assert list(total.spikes) == ["b", "a"]
    assert total.correct.tolist() == [1.0, 2.0, 3.0] and total.count.item() == 5.0
    assert total.spikes["a"].tolist() == [2.0] * steps and total.ann_correct.item() == 4.0


def _check_ddp_training(data: Path, work: Path, rank: int) -> None:
    """`train` under a group: DDP, same summary on every rank, rank 0 writes the files."""
    out = work / "ddp"
    config = TrainConfig(
        width=WIDTH,
        epochs=1,
        batch_size=48,
        train_limit=100,
        test_limit=20,
        data_dir=str(data),
        num_threads=1,
    )
    logs: list[str] = []
    summary = train(config, out, progress=False, log=logs.append)
    keys = ("loss", "train_accuracy", "test_accuracy", "lr")
    mine = [{k: h[k] for k in keys} for h in summary["history"]]
    gathered: list[Any] = [None, None]
    torch_dist.all_gather_object(gathered, mine)
    assert gathered[0] == gathered[1] and summary["epochs_done"] == 1
    assert bool(logs) == (rank == 0)  # only rank 0 logs
    ckpt = load_checkpoint(out / "checkpoint.pt")  # written by rank 0 before train returned
    weights = torch.cat([p.reshape(-1) for p in ckpt.model.parameters()])
    torch.manual_seed(config.seed)
    init = torch.cat([p.reshape(-1) for p in ckpt.spec.build().parameters()])
    assert not torch.equal(weights, init)  # it trained


def _compare_args(checkpoint: Path, data: Path, out: Path) -> list[str]:
    return [
        "--no-progress",
        "compare",
        "--checkpoint", str(checkpoint),
        "--methods", "if-max,dtif",
        "--num-steps", "8",
        "--test-limit", str(NUM_TEST),
        "--calib-size", "64",
        "--batch-size", "10",
        "--device", "cpu",
        "--data-dir", str(data),
        "--out", str(out),
        "--early-exit", "auto",
    ]  # fmt: skip


def _results(path: Path) -> dict[str, Any]:
    """results.json without the wall times of early exit, which differ from run to run."""
    results = json.loads(path.read_text())
    for m in results["methods"].values():
        for key in ("seconds", "seconds_fixed_T", "seconds_calibration"):
            m["early_exit"].pop(key)
    return results


def _assert_same_results(tmp_path: Path) -> None:
    single = _results(tmp_path / "single" / "results.json")
    multi = _results(tmp_path / "multi" / "results.json")
    assert single["num_test"] == multi["num_test"] == NUM_TEST
    assert single["methods"]["if-max"]["num_samples"] == NUM_TEST  # nothing padded or lost
    for name in ("if-max", "dtif"):
        a, b = single["methods"][name], multi["methods"][name]
        for key in ("accuracy", "synops", "synops_graded", "energy_pj", "latency", "firing_rates"):
            assert a[key] == b[key], (name, key)
        # early exit: the exit-step histogram and the statistics at exit, summed exactly
        assert sum(a["early_exit"]["exit_steps"]) == NUM_TEST
        assert a["early_exit"] == b["early_exit"], name
    assert single == multi  # the whole file, meta included
    assert (tmp_path / "multi" / "results.csv").read_text() == (
        tmp_path / "single" / "results.csv"
    ).read_text()


def test_two_ranks_agree_train_and_compare_exactly(
    tiny_checkpoint: Path, fashion_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(_compare_args(tiny_checkpoint, fashion_dir, tmp_path / "single")) == 0
    capsys.readouterr()
    args = (2, _free_port(), str(tiny_checkpoint), str(fashion_dir), str(tmp_path))
    mp.spawn(_worker, args=args, nprocs=2, join=True)
    assert "ANN accuracy" in (tmp_path / "stdout.0").read_text()
    assert (tmp_path / "stdout.1").read_text() == ""  # only rank 0 prints
    assert sorted(p.name for p in (tmp_path / "multi").iterdir()) == sorted(
        p.name for p in (tmp_path / "single").iterdir()
    )
    _assert_same_results(tmp_path)


@pytest.mark.slow
def test_torchrun_compare_matches_one_process_exactly(
    tiny_checkpoint: Path, fashion_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(_compare_args(tiny_checkpoint, fashion_dir, tmp_path / "single")) == 0
    capsys.readouterr()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("WORLD_SIZE", None)
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        "-m", "dtif", *_compare_args(tiny_checkpoint, fashion_dir, tmp_path / "multi"),
    ]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("ANN accuracy") == 1  # rank 0 alone prints the table
    _assert_same_results(tmp_path)
