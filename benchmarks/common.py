"""What the benchmark scripts share: paths, training recipes, the machine, the speed networks.

A helper module, not a benchmark: the scripts in this folder import it (`import common`,
found beside them when run as `python benchmarks/<script>.py`); it imports only dtif's public
names, and no script.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import platform
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import torch
from torch import nn

import dtif
from dtif.checkpoint import load_checkpoint
from dtif.methods import METHODS, neuron_from_dict
from dtif.models import create_model

ROOT = Path(__file__).resolve().parents[1]
CHECKPOINTS = ROOT / "benchmarks" / "checkpoints"
RESULTS = ROOT / "benchmarks" / "results"

# Training recipes per model: (width, epochs, optimizer, lr).
RECIPES: dict[str, tuple[float, int, str, float | None]] = {
    "cnn": (1.0, 3, "adam", None),
    "resnet20": (1.0, 3, "adam", None),
    "vgg16": (0.25, 3, "adam", None),
    "vgg11": (0.25, 3, "adam", None),
    "resnet18": (0.25, 3, "adam", None),
}
CALIB_SEED = 0
"""The seed of the latency run's calibration subset (and of its test subset)."""
# Fine-tuning a shipped ReLU checkpoint into QCFS: (epochs, optimizer, lr).
QCFS_RECIPE: tuple[int, str, float | None] = (1, "adam", 5e-4)


def shipped_qcfs_levels(relu_tag: str) -> int:
    """L of the one shipped `<relu_tag>-qcfs<L>.pt`; SystemExit if none or several."""
    found = sorted(CHECKPOINTS.glob(f"{relu_tag}-qcfs*.pt"))
    if len(found) != 1:
        names = ", ".join(f.name for f in found) or "none"
        raise SystemExit(f"pass --levels: shipped QCFS checkpoints of {relu_tag}: {names}")
    return int(found[0].stem.rsplit("-qcfs", 1)[1])


def heldout_subset(
    train: Any, calib: torch.Tensor, calib_size: int, num: int, seed: int
) -> torch.utils.data.Subset[Any]:
    """`num` training images outside the calibration subset (the next ones of its permutation).

    `dtif.data.calibration_subset(train, calib_size, seed)` takes the first `calib_size`
    images of `torch.randperm(len(train))` under a generator seeded with `seed`; this takes
    the following `num`. Checked against `calib`, so the two can never overlap silently.
    """
    perm = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))
    if not torch.equal(train.images[perm[:calib_size]], calib.cpu()):
        raise SystemExit("the held-out subset cannot be placed after the calibration subset")
    if calib_size + num > len(train):
        raise SystemExit(f"--heldout {num} + --calib-size {calib_size} > {len(train)} images")
    chosen = perm[calib_size : calib_size + num]
    return torch.utils.data.Subset(train, torch.sort(chosen).values.tolist())


def model_tag(dataset: str, model: str, width: float | None = None) -> str:
    """`<dataset>-<model>-w<width>`: the name of a shipped checkpoint and of its results."""
    return f"{dataset}-{model}-w{width or RECIPES[model][0]:g}"


def latency_json(tag: str, num_steps: int, num_test: int) -> Path:
    """Where `latency.py` writes the results of one run."""
    return RESULTS / f"latency_{tag}_T{num_steps}_n{num_test}.json"


def fingerprint(model: nn.Module) -> str:
    """A short hash of the weights, so that results of two models are never mixed."""
    h = hashlib.sha256()
    for name, t in model.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def load_latency_run(
    dataset: str,
    model: str,
    width: float | None,
    kind: str,
    levels: int | None,
    num_steps: int,
    num_test: int,
) -> tuple[str, Path, dict[str, Any], Any]:
    """The tag, JSON path, results and checkpoint of a published latency run; SystemExit if
    the run is missing or was measured on other weights than the shipped checkpoint."""
    tag = model_tag(dataset, model, width)
    if kind == "qcfs":
        tag = f"{tag}-qcfs{levels or shipped_qcfs_levels(tag)}"
    run = latency_json(tag, num_steps, num_test)
    if not run.exists():
        raise SystemExit(f"{run} does not exist: run latency.py for this model first")
    results = json.loads(run.read_text())
    ckpt = load_checkpoint(CHECKPOINTS / f"{tag}.pt")
    weights = results["meta"]["run"].get("weights")  # absent in runs before it was recorded
    if weights is not None and weights != fingerprint(ckpt.model):
        raise SystemExit(f"{run} was measured on other weights than {tag}.pt (--retrain?)")
    return tag, run, results, ckpt


def rebuild_method(
    results: dict[str, Any], run: Path, name: str, model: nn.Module, calib: torch.Tensor
) -> dtif.SpikingNetwork:
    """The network of method `name` as the latency run built it, without repeating a search.

    An auto method's calibrated per-layer values come from the run's `neuron_used`; a `-bias`
    method's offsets are calibrated again on the same images (deterministic).
    """
    methods = results["methods"]
    if name not in methods:
        raise SystemExit(f"{run} has no results for {name}; it has {', '.join(methods)}")
    used = methods[name].get("neuron_used")
    if used is None and METHODS[name].auto:
        raise SystemExit(f"{run} has no calibrated values for {name}: rerun latency.py")
    neuron = neuron_from_dict(used, str(run)) if used else METHODS[name].neuron
    snn = dtif.convert(model, calib, neuron=neuron, norm=METHODS[name].norm, maxpool="avg")
    if METHODS[name].bias_steps is not None:
        dtif.calibrate_biases(snn, calib, METHODS[name].bias_steps)
    return snn


# ----------------------------------------------------------------------------- machine


def cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo, else what `platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> str:
    """One line: torch threads, CPU, GPU if any, torch version."""
    gpu = f", GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ""
    return f"{torch.get_num_threads()} threads, {cpu_name()}{gpu}, torch {torch.__version__}"


def package_version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def machine_info(device: torch.device) -> dict[str, Any]:
    """The machine and software of a speed run, with the date and the load at its start."""
    info: dict[str, Any] = {
        "date": dt.datetime.now().isoformat(timespec="seconds"),
        "nproc": os.cpu_count(),
        "cpu": cpu_name(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": str(device),
        "threads": torch.get_num_threads(),
        "loadavg_start": list(os.getloadavg()),
        "dtif": dtif.__version__,
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    info["spikingjelly"] = package_version("spikingjelly")
    return info


def set_threads(threads: int) -> None:
    """Use `threads` torch threads; 0 keeps torch's default."""
    if threads > 0:
        torch.set_num_threads(threads)


# ----------------------------------------------------------------------------- speed networks

SPEED_MODELS = ("cnn", "vgg16", "resnet20")


@dataclass(frozen=True)
class Config:
    """One setting of the speed benchmarks.

    Attributes:
        model: registered model name.
        width: channel multiplier.
        input_shape: (C, H, W) of one sample.
        batch: samples per simulation.
        neuron: "if" (max-norm IF, subtractive reset) or "dtif" (DTIF binary, alpha 4).
        seed: seed for weights, BN statistics and data.
    """

    model: str
    width: float
    input_shape: tuple[int, int, int]
    batch: int
    neuron: str
    seed: int


@dataclass
class Network:
    """A speed benchmark's network: the ANN, its dtif conversion, the calibration and input."""

    ann: nn.Module
    snn: dtif.SpikingNetwork
    calib: torch.Tensor
    x: torch.Tensor


_BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def randomize_bn(model: nn.Module, gen: torch.Generator) -> None:
    """Random BN running statistics and affine parameters (so that folding is not trivial)."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, _BATCH_NORMS):
                c = m.num_features
                m.running_mean.copy_(torch.randn(c, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(c, generator=gen) * 0.5 + 0.75)
                m.weight.copy_(torch.rand(c, generator=gen) * 0.5 + 0.75)
                m.bias.copy_(torch.randn(c, generator=gen) * 0.1)


def build_network(cfg: Config, device: torch.device, calib_size: int = 64) -> Network:
    """Random weights and BN statistics, calibration on random data, and a random input.

    The speed of a dense network does not depend on the values, and spike rates stay
    plausible with max-norm IF. Everything is drawn from `cfg.seed`.
    """
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    c, h, w = cfg.input_shape
    ann = create_model(cfg.model, in_channels=c, image_size=h, width=cfg.width).eval()
    randomize_bn(ann, gen)
    calib = torch.rand(calib_size, c, h, w, generator=gen)
    x = torch.rand(cfg.batch, c, h, w, generator=gen)
    neuron = dtif.IF() if cfg.neuron == "if" else dtif.DTIF(alpha=4.0)
    ann = ann.to(device)
    calib = calib.to(device)
    snn = dtif.convert(ann, calib, neuron=neuron)
    return Network(ann=ann, snn=snn, calib=calib, x=x.to(device))
