"""ANN checkpoints and SNN files: round trips, and a clear error for every bad file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import dtif
from dtif.checkpoint import (
    Checkpoint,
    load_checkpoint,
    load_snn,
    save_checkpoint,
    save_snn,
)
from dtif.errors import CheckpointError, InputError
from dtif.models import ModelSpec
from dtif.models import registry as model_registry
from dtif.nn.neuron import SpikingNeuron
from tests.helpers.pickles import Innocent, Payload

SPEC = ModelSpec("cnn", width=0.125)
MEAN, STD = (0.2860,), (0.3530,)


def _model(spec: ModelSpec = SPEC, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    model = spec.build()
    # Non-trivial BN statistics, so that folding is exercised.
    model.train()
    with torch.no_grad():
        model(torch.randn(8, spec.in_channels, spec.image_size, spec.image_size))
    return model.eval()


def _save(path: Path, model: nn.Module, spec: ModelSpec = SPEC, **kw: Any) -> Path:
    args: dict[str, Any] = {
        "dataset": "fashion-mnist",
        "mean": MEAN,
        "std": STD,
        "test_accuracy": 0.875,
        "epoch": 3,
    }
    args.update(kw)
    return save_checkpoint(path, model, spec, **args)


def _payload(path: Path) -> dict[str, Any]:
    payload = torch.load(path, weights_only=True)
    assert isinstance(payload, dict)
    return payload


@pytest.fixture
def saved(tmp_path: Path) -> tuple[Path, nn.Module]:
    model = _model()
    return _save(tmp_path / "checkpoint.pt", model), model


# ---- ANN checkpoints --------------------------------------------------------------------------


def test_round_trip(saved: tuple[Path, nn.Module]) -> None:
    path, model = saved
    ckpt = load_checkpoint(path)
    assert isinstance(ckpt, Checkpoint)
    assert ckpt.spec == SPEC and ckpt.dataset == "fashion-mnist"
    assert ckpt.mean == MEAN and ckpt.std == STD
    assert ckpt.test_accuracy == 0.875 and ckpt.epoch == 3
    assert ckpt.dtif_version == dtif.__version__ and ckpt.train_state is None
    assert ckpt.path == path and not ckpt.model.training
    for key, value in model.state_dict().items():
        assert torch.equal(ckpt.model.state_dict()[key], value), key
    x = torch.randn(4, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(ckpt.model(x), model(x))


def test_file_holds_only_plain_values(saved: tuple[Path, nn.Module]) -> None:
    payload = _payload(saved[0])  # weights_only=True accepts it
    assert payload["format"] == "dtif-checkpoint"
    assert payload["model"] == SPEC.to_dict()
    assert payload["dtif_version"] == dtif.__version__


def test_train_state_round_trip(tmp_path: Path) -> None:
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(2, 1, 28, 28)).sum().backward()
    opt.step()
    state = {"optimizer": opt.state_dict(), "history": [{"loss": 1.0}], "note": None}
    path = _save(tmp_path / "c.pt", model, train_state=state)
    loaded = load_checkpoint(path).train_state
    assert loaded is not None and loaded["history"] == [{"loss": 1.0}]
    opt.load_state_dict(loaded["optimizer"])


def test_save_rejects_non_plain_train_state(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"train_state.*'bad'.*not a plain value"):
        _save(tmp_path / "c.pt", _model(), train_state={"bad": object()})
    assert not (tmp_path / "c.pt").exists()


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.pt"
    with pytest.raises(CheckpointError, match=rf"not found: {path}.*dtif train"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="is a directory"):
        load_checkpoint(tmp_path)


@pytest.mark.parametrize("cut", ["half", "tail", "empty", "garbage", "zeroed"])
def test_truncated_or_corrupt(saved: tuple[Path, nn.Module], cut: str) -> None:
    path = saved[0]
    raw = path.read_bytes()
    damaged = {
        "half": raw[: len(raw) // 2],
        "tail": raw[:-40],
        "empty": b"",
        "garbage": b"not a checkpoint at all " * 20,
        "zeroed": raw[:300] + bytes(200) + raw[500:],
    }[cut]
    path.write_bytes(damaged)
    with pytest.raises(CheckpointError, match=rf"{path}.*(truncated|corrupt).*dtif train"):
        load_checkpoint(path)


@pytest.mark.parametrize("kind", ["code", "object"])
def test_pickle_payload_refused(saved: tuple[Path, nn.Module], tmp_path: Path, kind: str) -> None:
    path = saved[0]
    marker = tmp_path / "pwned"
    payload = _payload(path)
    payload["train_state"] = {"x": Payload(marker) if kind == "code" else Innocent()}
    torch.save(payload, path)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert str(path) in message
    assert (
        "refused: the file carries arbitrary Python objects (a pickle payload" in message
        and "dtif loads only plain tensors" in message
    )
    assert not marker.exists()  # the payload never ran


def test_not_a_dtif_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "bare.pt"
    torch.save(_model().state_dict(), path)
    with pytest.raises(CheckpointError, match=r"not a dtif-checkpoint file \(no 'format' key"):
        load_checkpoint(path)
    torch.save({"format": "something-else"}, path)
    with pytest.raises(CheckpointError, match="format 'something-else'"):
        load_checkpoint(path)


@pytest.mark.parametrize(
    ("field", "value", "refused"),
    [
        ("dtif_version", "99.0.0", True),
        ("dtif_version", "0.99.0", True),
        ("format_version", 99, True),
        ("dtif_version", dtif.__version__.rsplit(".", 1)[0] + ".999", False),  # newer patch: ok
        ("dtif_version", "0.0.1", False),  # older: ok
    ],
)
def test_newer_version_refused(
    saved: tuple[Path, nn.Module], field: str, value: object, refused: bool
) -> None:
    path = saved[0]
    payload = _payload(path)
    payload[field] = value
    torch.save(payload, path)
    if refused:
        with pytest.raises(CheckpointError, match=r"newer than this dtif .*Upgrade dtif"):
            load_checkpoint(path)
    else:
        assert load_checkpoint(path).epoch == 3


def test_architecture_mismatch_lists_keys(tmp_path: Path) -> None:
    path = _save(tmp_path / "c.pt", _model(), spec=ModelSpec("cnn", width=0.25))
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert str(path) in message and "does not match the architecture" in message
    assert "features.0.0.weight: file [4, 1, 3, 3] vs model [8, 1, 3, 3]" in message
    assert "(+" in message  # only the first few are listed

    payload = _payload(path)
    payload["model"] = SPEC.to_dict()
    del payload["state_dict"]["classifier.4.bias"]
    payload["state_dict"]["extra.weight"] = torch.zeros(1)
    torch.save(payload, path)
    with pytest.raises(
        CheckpointError, match=r"missing keys classifier.4.bias; unexpected keys extra.weight"
    ):
        load_checkpoint(path)


def test_unknown_model_in_spec(saved: tuple[Path, nn.Module]) -> None:
    path = saved[0]
    payload = _payload(path)
    payload["model"]["name"] = "no-such-net"
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="cannot rebuild model 'no-such-net'"):
        load_checkpoint(path)


def test_damaged_fields(saved: tuple[Path, nn.Module]) -> None:
    path = saved[0]
    payload = _payload(path)
    payload["epoch"] = "three"
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="field 'epoch' is missing or not int"):
        load_checkpoint(path)


# ---- SNN files --------------------------------------------------------------------------------


class MaxPoolNet(nn.Module):
    """A small CNN with a max-pool, for the spiking max-pool gate."""

    def __init__(self, num_classes: int, in_channels: int, image_size: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(4 * (image_size // 2) ** 2, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(torch.relu(self.bn(self.conv(x))))
        return self.fc(torch.relu(x.flatten(1)))


def maxpool_net(*, num_classes: int, in_channels: int, image_size: int, width: float) -> nn.Module:
    del width
    return MaxPoolNet(num_classes, in_channels, image_size)


CASES: dict[str, tuple[Any, Any, str]] = {
    "if-max": (dtif.IF(), dtif.MaxNorm(), "error"),
    "if-v0.5-p99": (dtif.IF(v0=0.5), dtif.PercentileNorm(99.0, channelwise=True), "error"),
    "dtif-layers": (
        dtif.DTIF(alpha=(1.0, 2.0, 3.0, 4.0), payload="graded"),
        dtif.MaxNorm(channelwise=True),
        "error",
    ),
    "gate": (dtif.DTIF(alpha=2.0), dtif.MaxNorm(), "gate"),
    "if-signed": (dtif.IF(v0=0.5, signed=True, theta_neg=0.25), dtif.MaxNorm(), "error"),
    "dtif-signed": (dtif.DTIF(alpha=(1.0, 2.0, 3.0, 4.0), signed=True), dtif.MaxNorm(), "error"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_snn_round_trip_identical_outputs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    neuron, norm, maxpool = CASES[case]
    spec = SPEC
    if maxpool == "gate":
        monkeypatch.setitem(model_registry._MODELS, "maxpool_net", maxpool_net)
        spec = ModelSpec("maxpool_net", image_size=8)
    model = _model(spec)
    calib = torch.randn(32, 1, spec.image_size, spec.image_size)
    snn = dtif.convert(model, calib, neuron=neuron, norm=norm, maxpool=maxpool)
    path = save_snn(
        tmp_path / "snn.pt", snn, spec, method=case, neuron=neuron, norm=norm, maxpool=maxpool
    )

    loaded = load_snn(path)
    assert isinstance(loaded, dtif.SpikingNetwork)
    assert loaded.meta["method"] == case and loaded.meta["maxpool"] == maxpool
    assert loaded.meta["neuron"] == snn.meta["neuron"] and loaded.meta["norm"] == snn.meta["norm"]
    assert loaded.input_shape == snn.input_shape
    assert loaded.spiking_layer_names() == snn.spiking_layer_names()
    x = torch.randn(5, 1, spec.image_size, spec.image_size)
    a, b = snn.simulate(x, 12), loaded.simulate(x, 12)
    assert torch.equal(a.outputs, b.outputs)
    for key, value in snn.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


def test_save_snn_defaults_to_meta_and_checks_agreement(tmp_path: Path) -> None:
    model = _model()
    snn = dtif.convert(model, torch.randn(16, 1, 28, 28), neuron=dtif.DTIF(alpha=3.0))
    path = save_snn(tmp_path / "snn.pt", snn, SPEC, method="dtif")
    assert load_snn(path).meta["neuron"] == snn.meta["neuron"]
    with pytest.raises(InputError, match="do not describe the network's spiking layers"):
        save_snn(tmp_path / "snn.pt", snn, SPEC, method="dtif", neuron=dtif.DTIF(alpha=1.0))
    with pytest.raises(InputError, match="maxpool 'avg' differs"):
        save_snn(tmp_path / "snn.pt", snn, SPEC, method="dtif", maxpool="avg")


def test_snn_per_layer_dtif_and_extra_meta(tmp_path: Path) -> None:
    """As `calibrate_dtif` leaves it: per-layer alpha and v0 set on the layers, and in meta."""
    model = _model()
    snn = dtif.convert(model, torch.randn(16, 1, 28, 28), neuron=dtif.DTIF(alpha=2.0))
    alphas, v0s = (0.5, 1.0, 2.0, 4.0), (0.0, 0.25, 0.5, 0.0)
    neuron = dtif.DTIF(alpha=alphas, v0=v0s)
    layers = [m for m in snn.layers() if isinstance(m, SpikingNeuron)]
    for i, layer in enumerate(layers):
        layer.params = neuron.for_layer(i, len(layers))
    snn.meta["calibration"] = {"target_steps": 8, "loss": 0.25}
    path = save_snn(tmp_path / "snn.pt", snn, SPEC, method="dtif-auto", neuron=neuron)
    loaded = load_snn(path)
    assert loaded.meta["calibration"] == {"target_steps": 8, "loss": 0.25}
    x = torch.randn(3, 1, 28, 28)
    assert torch.equal(snn.simulate(x, 8).outputs, loaded.simulate(x, 8).outputs)


def test_save_snn_refuses_layers_the_neuron_does_not_describe(tmp_path: Path) -> None:
    snn = dtif.convert(_model(), torch.randn(16, 1, 28, 28), neuron=dtif.DTIF(alpha=2.0))
    first = next(m for m in snn.layers() if isinstance(m, SpikingNeuron))
    first.params = dtif.DTIF(alpha=7.0)  # changed after conversion, meta not updated
    with pytest.raises(InputError, match=r"do not describe the network's spiking layers: dtif_"):
        save_snn(tmp_path / "snn.pt", snn, SPEC, method="dtif")
    assert not (tmp_path / "snn.pt").exists()


def test_save_snn_refuses_a_spec_that_does_not_rebuild_it(tmp_path: Path) -> None:
    snn = dtif.convert(_model(), torch.randn(16, 1, 28, 28))
    with pytest.raises(InputError, match="would not load back.*does not match the architecture"):
        save_snn(tmp_path / "snn.pt", snn, ModelSpec("cnn", width=0.25), method="if-max")
    assert not (tmp_path / "snn.pt").exists()


def test_snn_bad_files(tmp_path: Path, saved: tuple[Path, nn.Module]) -> None:
    ckpt_path, model = saved
    with pytest.raises(CheckpointError, match="not a dtif-snn file"):
        load_snn(ckpt_path)
    snn = dtif.convert(model, torch.randn(16, 1, 28, 28))
    path = save_snn(tmp_path / "snn.pt", snn, SPEC, method="if-max")
    with pytest.raises(CheckpointError, match="not a dtif-checkpoint file"):
        load_checkpoint(path)

    payload = _payload(path)
    payload["model"]["width"] = 0.25  # another architecture
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="does not match the architecture"):
        load_snn(path)

    payload["model"]["width"] = SPEC.width
    payload["neuron"] = {"type": "LIFParams", "tau": 2.0}
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="unknown neuron"):
        load_snn(path)

    payload["neuron"] = {"type": "IFParams", "x": Innocent()}
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="refused: .*pickle payload"):
        load_snn(path)

    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="truncated or corrupt.*dtif convert"):
        load_snn(path)
