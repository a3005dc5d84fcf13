"""Named conversion methods: a neuron and a normalization, given short names for the CLI."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dtif.calibrate.bias import calibrate_biases
from dtif.calibrate.search import START, calibrate_dtif
from dtif.convert.normalize import MaxNorm, Norm, PercentileNorm, TrainedScale, has_qcfs
from dtif.convert.options import MaxPoolPolicy, from_dict, to_dict
from dtif.convert.pipeline import check_burst, convert
from dtif.errors import ConversionError, InputError
from dtif.neurons import DTIFParams, IFParams, NeuronParams
from dtif.sim.network import SpikingNetwork

AUTO = "dtif-auto"


@dataclass(frozen=True)
class Method:
    """A conversion recipe.

    Attributes:
        name: the short name.
        neuron: IF or DTIF parameters.
        norm: the threshold normalization.
        description: one line for `--list-methods`.
        auto: True when DTIF's hyperparameters are calibrated per network (`dtif-auto`).
        alpha_grid: the alphas that calibration tries (None: `calibrate_dtif`'s default).
        dynamic_steps_grid: the K that calibration tries after its search, for a threshold
            that is dynamic for the first K steps only (empty: always dynamic).
        bias_steps: None, or the T at which each layer's bias is calibrated after conversion.
        burst: None, or the most spikes a step, set after the search (which runs with one)
            and before bias calibration.
    """

    name: str
    neuron: NeuronParams
    norm: Norm
    description: str
    auto: bool = False
    alpha_grid: tuple[float, ...] | None = None
    dynamic_steps_grid: tuple[int, ...] = ()
    bias_steps: int | None = None
    burst: int | None = None

    def to_dict(self) -> dict[str, Any]:
        d = {
            "name": self.name,
            "neuron": to_dict(self.neuron),
            "norm": to_dict(self.norm),
            "description": self.description,
            "auto": self.auto,
        }
        if self.alpha_grid is not None:
            d["alpha_grid"] = list(self.alpha_grid)
        if self.dynamic_steps_grid:
            d["dynamic_steps_grid"] = list(self.dynamic_steps_grid)
        if self.bias_steps is not None:
            d["bias_steps"] = self.bias_steps
        if self.burst is not None:
            d["burst"] = self.burst
        if self.auto:  # results of an older search do not match, so --resume reruns them
            d["search_start"] = list(START)
        return d

    def build(
        self,
        model: nn.Module,
        calib: torch.Tensor,
        maxpool: MaxPoolPolicy,
        target_steps: int,
        progress: bool = False,
    ) -> SpikingNetwork:
        """Convert `model` with this method; an auto method calibrates DTIF on `calib` first."""
        if self.burst is not None and self.burst > 1 and has_qcfs(model):  # before the search
            raise ConversionError(
                f"method {self.name} fires up to {self.burst} spikes a step, but the model's "
                "QCFS activations saturate at their trained lambda: use a method without "
                "bursts (e.g. dtif-auto-qcfs-signed)"
            )
        snn = self._convert(model, calib, maxpool, target_steps, progress)
        if self.burst is not None:
            set_burst(snn, self.burst)
        if self.bias_steps is not None:
            calibrate_biases(snn, calib, self.bias_steps, progress=progress)
        return snn

    def _convert(
        self,
        model: nn.Module,
        calib: torch.Tensor,
        maxpool: MaxPoolPolicy,
        target_steps: int,
        progress: bool,
    ) -> SpikingNetwork:
        if not self.auto:
            return convert(model, calib, neuron=self.neuron, norm=self.norm, maxpool=maxpool)
        base = self.neuron if isinstance(self.neuron, DTIFParams) else None
        grid: dict[str, Any] = {} if self.alpha_grid is None else {"alpha_grid": self.alpha_grid}
        if self.dynamic_steps_grid:
            grid["dynamic_steps_grid"] = self.dynamic_steps_grid
        return calibrate_dtif(
            model,
            calib,
            target_steps=target_steps,
            base=base,
            norm=self.norm,
            maxpool=maxpool,
            progress=progress,
            **grid,
        ).snn


# The default DTIF: binary payload, rational g, one fixed alpha (see docs/dtif.md).
DTIF_ALPHA = 8.0
_P999 = PercentileNorm(99.9)
# The negative firing level of the signed methods; 0, 0.1 and 0.5 were screened against it on
# held-out training images (docs/dtif.md, "Signed correction spikes").
SIGNED_THETA_NEG = 0.25
# The T at which the -bias methods calibrate their biases, chosen on held-out training images
# (docs/results.md, "What we tried").
BIAS_STEPS = 8
# The K tried by the -switch methods: the threshold dynamic for the first K steps, then 1.
SWITCH_GRID = (1, 2, 3, 4, 6, 8, 12, 16)
# Spikes per step of the -burst2 methods: a neuron whose input exceeds its scale carries the
# excess instead of saturating at one spike a step (docs/dtif.md).
BURST = 2

METHODS: dict[str, Method] = {
    m.name: m
    for m in [
        Method("if-max", IFParams(), MaxNorm(), "IF, max normalization (Diehl et al. 2015)"),
        Method(
            "if-p99.9", IFParams(), _P999, "IF, 99.9th-percentile normalization (Rueckauer 2017)"
        ),
        Method(
            "if-p99.99", IFParams(), PercentileNorm(99.99), "IF, 99.99th-percentile normalization"
        ),
        Method(
            "if-max-v0.5",
            IFParams(v0=0.5),
            MaxNorm(),
            "IF, max norm, initial potential 0.5 (Bu et al.)",
        ),
        Method("if-p99.9-v0.5", IFParams(v0=0.5), _P999, "IF, p99.9 norm, initial potential 0.5"),
        Method(
            "dtif",
            DTIFParams(alpha=DTIF_ALPHA),
            _P999,
            f"DTIF, binary payload, rational g, alpha={DTIF_ALPHA:g}, p99.9 norm",
        ),
        Method(
            "dtif-exp",
            DTIFParams(alpha=DTIF_ALPHA, g="exp"),
            _P999,
            f"DTIF, binary payload, exponential g, alpha={DTIF_ALPHA:g}, p99.9 norm",
        ),
        Method(
            "dtif-graded",
            DTIFParams(alpha=DTIF_ALPHA, payload="graded", burst=4, theta_min=0.25, v0=0.5),
            _P999,
            "DTIF, graded payload (MSAT reading), burst 4, theta_min 0.25, v0 0.5, p99.9 norm",
        ),
        Method(
            "dtif-pow2",
            DTIFParams(
                alpha=DTIF_ALPHA,
                payload="graded",
                burst=4,
                theta_min=0.25,
                v0=0.5,
                theta_levels="pow2",
            ),
            _P999,
            "DTIF graded with power-of-two threshold levels (shift-and-add synapses)",
        ),
        Method(
            "dtif-binary-biased",
            DTIFParams(alpha=DTIF_ALPHA, payload="binary-biased"),
            _P999,
            "ablation: binary payload but reset by theta(t); the rate is biased",
        ),
        Method(
            AUTO,
            DTIFParams(alpha=DTIF_ALPHA),
            _P999,
            "DTIF with per-layer alpha and v0 calibrated on training images",
            auto=True,
        ),
        Method(
            "if-auto",
            DTIFParams(alpha=0.0),
            _P999,
            "control for dtif-auto: the same search with alpha fixed at 0 (IF), per-layer v0 only",
            auto=True,
            alpha_grid=(0.0,),
        ),
        Method(
            "if-qcfs",
            IFParams(v0=0.5),
            TrainedScale(),
            "IF, trained QCFS scale, initial potential 0.5 (Bu et al. 2022; QCFS checkpoints only)",
        ),
        Method(
            "dtif-auto-qcfs",
            DTIFParams(alpha=DTIF_ALPHA),
            TrainedScale(),
            "dtif-auto on the trained QCFS scale (QCFS checkpoints only)",
            auto=True,
        ),
        Method(
            "dtif-auto-signed",
            DTIFParams(alpha=DTIF_ALPHA, signed=True, theta_neg=SIGNED_THETA_NEG),
            _P999,
            "dtif-auto with signed correction spikes (-1 when V < -theta_neg, net count > 0), "
            f"theta_neg={SIGNED_THETA_NEG:g}",
            auto=True,
        ),
        Method(
            "dtif-auto-signed-switch",
            DTIFParams(alpha=DTIF_ALPHA, signed=True, theta_neg=SIGNED_THETA_NEG),
            _P999,
            "dtif-auto-signed whose threshold is dynamic for the first K steps, then 1 (IF); "
            "K chosen after the search on the same images",
            auto=True,
            dynamic_steps_grid=SWITCH_GRID,
        ),
        Method(
            "if-auto-signed",
            DTIFParams(alpha=0.0, signed=True, theta_neg=SIGNED_THETA_NEG),
            _P999,
            "control for dtif-auto-signed: IF with the same signed spikes, per-layer v0 searched",
            auto=True,
            alpha_grid=(0.0,),
        ),
        Method(
            "dtif-signed",
            DTIFParams(alpha=4.0, v0=0.5, signed=True, theta_neg=SIGNED_THETA_NEG),
            _P999,
            "DTIF alpha 4, v0 0.5, signed correction spikes, p99.9 norm (no search)",
        ),
        Method(
            "if-p99.9-v0.5-signed",
            IFParams(v0=0.5, signed=True, theta_neg=SIGNED_THETA_NEG),
            _P999,
            "control for dtif-signed: IF, p99.9 norm, v0 0.5, signed correction spikes",
        ),
        Method(
            "if-qcfs-signed",
            IFParams(v0=0.5, signed=True, theta_neg=SIGNED_THETA_NEG),
            TrainedScale(),
            "if-qcfs with signed correction spikes (QCFS checkpoints only)",
        ),
        Method(
            "dtif-auto-qcfs-signed",
            DTIFParams(alpha=DTIF_ALPHA, signed=True, theta_neg=SIGNED_THETA_NEG),
            TrainedScale(),
            "dtif-auto-qcfs with signed correction spikes (QCFS checkpoints only)",
            auto=True,
        ),
        Method(
            "dtif-auto-qcfs-signed-switch",
            DTIFParams(alpha=DTIF_ALPHA, signed=True, theta_neg=SIGNED_THETA_NEG),
            TrainedScale(),
            "dtif-auto-qcfs-signed with the dynamic threshold for the first K steps only "
            "(QCFS checkpoints only)",
            auto=True,
            dynamic_steps_grid=SWITCH_GRID,
        ),
        Method(
            "if-auto-qcfs-signed",
            DTIFParams(alpha=0.0, signed=True, theta_neg=SIGNED_THETA_NEG),
            TrainedScale(),
            "control for dtif-auto-qcfs-signed: the same search with alpha fixed at 0 (IF)",
            auto=True,
            alpha_grid=(0.0,),
        ),
    ]
}


def _with_bias(base: str, description: str) -> Method:
    """`base` followed by bias calibration for the first BIAS_STEPS steps: "<base>-bias"."""
    return replace(
        METHODS[base], name=f"{base}-bias", description=description, bias_steps=BIAS_STEPS
    )


for _bias in [
    _with_bias(
        "dtif-auto-signed",
        "dtif-auto-signed, then each layer's bias calibrated on the same images for its "
        f"mean rate at T={BIAS_STEPS} (layer by layer)",
    ),
    _with_bias(
        "dtif-auto-signed-switch",
        "dtif-auto-signed-switch, then the bias calibration of dtif-auto-signed-bias "
        f"(T={BIAS_STEPS})",
    ),
    _with_bias(
        "if-auto-signed",
        "control for dtif-auto-signed-bias: if-auto-signed with the same bias calibration",
    ),
    _with_bias(
        "dtif-auto-qcfs-signed",
        "dtif-auto-qcfs-signed with the bias calibration of dtif-auto-signed-bias "
        f"(T={BIAS_STEPS}; QCFS checkpoints only)",
    ),
    _with_bias(
        "if-qcfs-signed",
        f"if-qcfs-signed with the same bias calibration (T={BIAS_STEPS}; QCFS checkpoints only)",
    ),
]:
    METHODS[_bias.name] = _bias


def _with_burst(base: str, description: str) -> Method:
    """`base` with up to BURST spikes a step once searched: "<base>-burst2"."""
    return replace(METHODS[base], name=f"{base}-burst{BURST}", description=description, burst=BURST)


def set_burst(snn: SpikingNetwork, burst: int) -> None:
    """Let every neuron of `snn` fire up to `burst` spikes a step (its record too).

    Raises:
        ConversionError: activations that saturate (QCFS, clipped ReLU), as `convert` does.
    """
    check_burst(snn.ann, burst)
    for m in snn.neurons():
        m.params = replace(m.params, burst=burst)
    snn.meta["neuron"] = replace(snn.meta["neuron"], burst=burst)


for _burst in [
    _with_burst(
        "dtif-auto-signed-switch-bias",
        f"dtif-auto-signed-switch-bias with up to {BURST} spikes a step after the switch "
        "(one a step while the threshold is dynamic)",
    ),
    _with_burst(
        "if-auto-signed-bias",
        f"control for dtif-auto-signed-switch-bias-burst{BURST}: if-auto-signed-bias with up "
        f"to {BURST} spikes a step",
    ),
]:
    METHODS[_burst.name] = _burst

DEFAULT_METHODS = ("if-max", "if-p99.9", "if-max-v0.5", "dtif")


def neuron_from_dict(spec: object, source: str) -> NeuronParams:
    """Neuron parameters from a mapping {"type": "IF" | "DTIF" (or the class name), fields}.

    Raises:
        InputError: not such a mapping, or bad fields; the message names `source`.
    """
    neuron: NeuronParams = from_dict(spec, "neuron", source)
    return neuron


def method_from_file(path: Path) -> Method:
    """A method from a JSON or YAML spec: {name, neuron: {type, ...}, norm: {type, ...}}.

    Raises:
        InputError: unreadable file, or bad fields.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"cannot read method spec {path}: {err}") from err
    if path.suffix in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError as err:
            raise InputError(
                f"{path}: reading YAML needs PyYAML (pip install pyyaml), or use JSON"
            ) from err
        try:
            spec = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise InputError(f"{path}: not valid YAML: {err}") from err
    else:
        try:
            spec = json.loads(text)
        except json.JSONDecodeError as err:
            raise InputError(f"{path}: not valid JSON: {err}") from err
    if not isinstance(spec, dict) or "neuron" not in spec:
        raise InputError(
            f"{path}: a method spec needs a 'neuron' mapping (and optionally 'norm', 'name')"
        )
    neuron = neuron_from_dict(spec["neuron"], str(path))
    norm = from_dict(spec.get("norm", {"type": "MaxNorm"}), "norm", str(path))
    name = str(spec.get("name", path.stem))
    return Method(
        name,
        neuron,
        norm,
        spec.get("description", f"from {path.name}"),
        bool(spec.get("auto", False)),
        _alpha_grid(spec.get("alpha_grid"), str(path)),
        _dynamic_steps_grid(spec.get("dynamic_steps_grid"), str(path)),
        _bias_steps(spec.get("bias_steps"), str(path)),
        _burst(spec.get("burst"), str(path)),
    )


def _alpha_grid(value: object, source: str) -> tuple[float, ...] | None:
    if value is None:
        return None
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(v, int | float) and not isinstance(v, bool) and v >= 0 for v in value)
    ):
        raise InputError(f"{source}: alpha_grid must be a non-empty list of numbers >= 0")
    return tuple(float(v) for v in value)


def _dynamic_steps_grid(value: object, source: str) -> tuple[int, ...]:
    if value is None:
        return ()
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value)
    ):
        raise InputError(f"{source}: dynamic_steps_grid must be a non-empty list of integers >= 1")
    return tuple(value)


def _bias_steps(value: object, source: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(f"{source}: bias_steps must be an integer >= 1, got {value!r}")
    return value


def _burst(value: object, source: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(f"{source}: burst must be an integer >= 1, got {value!r}")
    return value


def get_method(name: str) -> Method:
    """The method called `name`, or one read from a .json/.yaml spec file.

    Raises:
        InputError: an unknown name; the message lists the valid names.
    """
    if name in METHODS:
        return METHODS[name]
    path = Path(name)
    if path.suffix in (".json", ".yaml", ".yml"):
        if not path.is_file():
            raise InputError(f"method spec file {path} does not exist")
        return method_from_file(path)
    raise InputError(
        f"unknown method {name!r}; valid names: {', '.join(METHODS)} "
        "(or a .json/.yaml spec file; see `dtif compare --list-methods`)"
    )


def parse_methods(text: str) -> list[Method]:
    """Methods from a comma-separated list; duplicates are dropped."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise InputError("--methods is empty; give a comma-separated list of method names")
    seen: dict[str, Method] = {}
    for n in names:
        m = get_method(n)
        seen.setdefault(m.name, m)
    return list(seen.values())
