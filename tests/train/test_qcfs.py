"""QCFS fine-tuning: lambdas from ReLU percentiles, `dtif train --activation qcfs`, round trips."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn
from tqdm import tqdm

from dtif.checkpoint import load_checkpoint
from dtif.errors import InputError
from dtif.models.qcfs import QCFS, qcfs_modules
from dtif.train import TrainConfig
from dtif.train.qcfs import relu_percentiles, to_qcfs
from dtif.train.steps import train_epoch
from tests.helpers.cli import assert_clean_error, run_dtif, workload


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 2))


def test_to_qcfs_sets_each_lambda_from_a_percentile() -> None:
    net, x = _net(), torch.randn(400, 5)
    qnet = to_qcfs(net, levels=4, calib=x, p=100.0)
    assert isinstance(net[1], nn.ReLU)  # the user's model is not changed
    with torch.no_grad():
        first = net[1](net[0](x))
        second = net[3](net[2](first))
    acts = qcfs_modules(qnet)
    assert list(acts) == ["1", "3"] and all(a.levels == 4 for a in acts.values())
    torch.testing.assert_close(acts["1"].scale.detach(), first.max(), rtol=1e-3, atol=1e-4)
    torch.testing.assert_close(acts["3"].scale.detach(), second.max(), rtol=1e-3, atol=1e-4)
    median = relu_percentiles(net, x, 50.0)
    assert 0 < median["1"] < acts["1"].scale.item()


def test_to_qcfs_with_one_scale_and_errors() -> None:
    net = _net()
    qnet = to_qcfs(net, levels=8, scale=2.0)
    assert [a.scale.item() for a in qcfs_modules(qnet).values()] == [2.0, 2.0]
    with pytest.raises(InputError, match="either calib"):
        to_qcfs(net, levels=8)
    with pytest.raises(InputError, match="either calib"):
        to_qcfs(net, levels=8, calib=torch.randn(4, 5), scale=1.0)
    with pytest.raises(InputError, match="levels must be an int >= 1"):
        to_qcfs(net, levels=0, scale=1.0)
    with pytest.raises(InputError, match="percentile must be in"):
        to_qcfs(net, levels=4, calib=torch.randn(4, 5), p=0.0)


def test_config_checks_the_activation() -> None:
    with pytest.raises(InputError, match="needs levels"):
        TrainConfig(activation="qcfs")
    with pytest.raises(InputError, match="levels must be an int >= 1"):
        TrainConfig(activation="qcfs", levels=-1)
    with pytest.raises(InputError, match="activation must be one of"):
        TrainConfig(activation="tanh")  # type: ignore[arg-type]  # bad on purpose
    with pytest.raises(InputError, match="init_percentile"):
        TrainConfig(activation="qcfs", levels=4, init_percentile=101.0)
    assert TrainConfig(activation="qcfs", levels=4).model_kwargs == {
        "activation": "qcfs",
        "levels": 4,
    }
    assert TrainConfig().model_kwargs == {}


def test_config_checks_train_levels() -> None:
    cfg = TrainConfig(activation="qcfs", levels=8, train_levels=[4, 8])  # type: ignore[arg-type]
    assert cfg.train_levels == (4, 8) and cfg.model_kwargs == {"activation": "qcfs", "levels": 8}
    with pytest.raises(InputError, match="for activation='qcfs'"):
        TrainConfig(train_levels=(4, 8))
    for bad in ((), "48", (0, 4), (4.0,)):
        with pytest.raises(InputError, match="train_levels|levels must be"):
            TrainConfig(activation="qcfs", levels=8, train_levels=bad)  # type: ignore[arg-type]


def test_train_epoch_draws_the_levels_per_step() -> None:
    torch.manual_seed(0)
    act = QCFS(8, 1.0)
    model = nn.Sequential(nn.Linear(3, 4), act, nn.Linear(4, 2))
    seen: list[int] = []
    act.register_forward_hook(lambda m, _i, _o: seen.append(m.levels))
    batches = [(torch.randn(4, 3), torch.randint(2, (4,))) for _ in range(30)]

    def epoch(seed: int, levels: tuple[int, ...] = (2, 5)) -> list[int]:
        seen.clear()
        opt = torch.optim.SGD(model.parameters(), lr=0.01)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
        loss = nn.CrossEntropyLoss()
        with tqdm(disable=True) as bar:
            train_epoch(model, opt, sched, loss, batches, torch.device("cpu"), bar, levels, seed)
        return list(seen)

    first = epoch(3)
    assert set(first) == {2, 5} and len(first) == 30
    assert epoch(3) == first  # seeded
    assert epoch(4) != first
    assert act.levels == 8  # the model's own levels come back
    assert set(epoch(3, levels=())) == {8}  # no train_levels: every step at the model's own


@pytest.fixture(scope="module")
def qcfs_run(
    tiny_checkpoint: Path, fashion_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    out = tmp_path_factory.mktemp("qcfs")
    res = run_dtif(
        "train", "--width", "0.125", "--epochs", "1", "--batch-size", "32",
        "--train-limit", "200", "--test-limit", "50", "--device", "cpu",
        "--optimizer", "adam", "--lr", "1e-4", "--activation", "qcfs", "--levels", "4",
        "--train-levels", "2,4", "--init-from", tiny_checkpoint, "--data-dir", fashion_dir, "--out", out,
    )  # fmt: skip
    assert res.code == 0, res.err
    return out


def test_train_qcfs_checkpoint_records_levels_and_lambdas(
    qcfs_run: Path, tiny_checkpoint: Path
) -> None:
    ckpt = load_checkpoint(qcfs_run / "checkpoint.pt")
    assert dict(ckpt.spec.kwargs) == {"activation": "qcfs", "levels": 4}
    acts = qcfs_modules(ckpt.model)
    assert len(acts) == 4 and all(isinstance(a, QCFS) and a.levels == 4 for a in acts.values())
    state = ckpt.model.state_dict()
    assert all(f"{name}.scale" in state for name in acts)
    assert all(a.scale.item() > 0 for a in acts.values())
    # The weights start from the ReLU checkpoint (one small-lr epoch moves them a little).
    relu = load_checkpoint(tiny_checkpoint).model.state_dict()
    w = "features.0.0.weight"
    assert (state[w] - relu[w]).abs().max() < 0.05 * relu[w].abs().max()
    summary = json.loads((qcfs_run / "train.json").read_text())
    assert summary["config"]["activation"] == "qcfs" and summary["config"]["levels"] == 4
    assert summary["config"]["train_levels"] == [2, 4]


def test_compare_runs_on_a_qcfs_checkpoint(
    qcfs_run: Path, fashion_dir: Path, tmp_path: Path
) -> None:
    res = run_dtif(
        "compare", *workload(qcfs_run / "checkpoint.pt", fashion_dir, num_steps=8),
        "--methods", "if-qcfs,if-qcfs-signed,dtif-auto-qcfs-signed,if-auto-qcfs-signed,if-max,dtif",
        "--out", tmp_path / "cmp",
    )  # fmt: skip
    assert res.code == 0, res.err
    results = json.loads((tmp_path / "cmp" / "results.json").read_text())
    methods = results["methods"]
    assert set(methods) == {
        "if-qcfs", "if-qcfs-signed", "dtif-auto-qcfs-signed", "if-auto-qcfs-signed", "if-max", "dtif"
    }  # fmt: skip
    assert methods["if-qcfs"]["method"]["norm"]["type"] == "TrainedScale"
    for name in ("if-qcfs-signed", "dtif-auto-qcfs-signed", "if-auto-qcfs-signed"):
        method, used = methods[name]["method"], methods[name].get("neuron_used", {})
        assert method["norm"]["type"] == "TrainedScale" and method["neuron"]["signed"] is True
        assert used.get("signed", True) is True
    assert set(methods["if-auto-qcfs-signed"]["neuron_used"]["alpha"]) == {0.0}


def test_if_qcfs_on_a_relu_checkpoint_is_a_clean_error(
    tiny_checkpoint: Path, fashion_dir: Path, tmp_path: Path
) -> None:
    res = run_dtif(
        "compare", *workload(tiny_checkpoint, fashion_dir, num_steps=4),
        "--methods", "if-qcfs", "--out", tmp_path / "cmp",
    )  # fmt: skip
    assert_clean_error(res, "compare", "TrainedScale needs a QCFS network")


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--activation", "qcfs", "--levels", "0"], "levels must be an int >= 1"),
        (["--activation", "qcfs"], "needs levels"),
        (["--levels", "4"], "a ReLU has no levels"),
        (["--train-levels", "2,4"], "train_levels is for activation='qcfs'"),
        (
            ["--activation", "qcfs", "--levels", "4", "--train-levels", "0,4"],
            "levels must be an int >= 1",
        ),
        (["--activation", "qcfs", "--levels", "4", "--model", "vgg16"], "same dataset, model"),
    ],
)
def test_train_bad_qcfs_input(
    extra: list[str], needle: str, tiny_checkpoint: Path, fashion_dir: Path, tmp_path: Path
) -> None:
    res = run_dtif(
        "train", "--width", "0.125", "--epochs", "1", "--train-limit", "64", "--device", "cpu",
        "--init-from", tiny_checkpoint, "--data-dir", fashion_dir, "--out", tmp_path / "r",
        *extra,
    )  # fmt: skip
    assert_clean_error(res, "train", needle)


def test_train_levels_not_a_list(tmp_path: Path) -> None:
    res = run_dtif(
        "train", "--activation", "qcfs", "--levels", "4", "--train-levels", "a", "--out", tmp_path
    )
    assert res.code == 2 and "--train-levels: expected comma-separated ints" in res.err
