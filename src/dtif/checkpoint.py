"""Checkpoints of trained ANNs and converted SNNs: plain tensors and metadata, loaded safely.

Both files are ``torch.save`` archives of a dict that holds only plain values (tensors,
dicts, lists, tuples, str, int, float, bool, None), written atomically. They are read with
``torch.load(weights_only=True)`` and nothing else, so a file that carries arbitrary Python
objects (a pickle payload that could run code) is refused before any of it runs.

ANN checkpoint (``format: "dtif-checkpoint"``)::

    {"format", "format_version", "dtif_version", "model": ModelSpec.to_dict(), "dataset",
     "mean": [C floats], "std": [C floats], "test_accuracy": float | None, "epoch": int,
     "state_dict": {name: tensor}, "train_state": dict | None}

SNN file (``format: "dtif-snn"``)::

    {"format", "format_version", "dtif_version", "model": ModelSpec.to_dict(), "method",
     "neuron": {"type", **params}, "norm": {"type", **params} | None, "maxpool",
     "input_shape": [ints], "state_dict": SpikingNetwork.state_dict(),
     "meta": the other plain entries of snn.meta (e.g. DTIF calibration results)}

An SNN is rebuilt from its recipe (model spec -> ``prepare_ann`` -> ``build_snn`` with the
saved per-layer scales), then its saved state is loaded strictly, so the loaded network gives
exactly the outputs of the saved one.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dtif.convert.normalize import MaxNorm, Norm, PercentileNorm
from dtif.convert.pipeline import build_snn, prepare_ann
from dtif.convert.pooling import MaxPoolPolicy
from dtif.convert.replace_relu import relu_sites
from dtif.errors import CheckpointError, DtifError, InputError
from dtif.io import atomic_torch_save
from dtif.models import ModelSpec
from dtif.neurons import DTIFParams, IFParams
from dtif.neurons.module import NeuronParams
from dtif.sim.network import SpikingNetwork

__all__ = [
    "CHECKPOINT_FORMAT",
    "SNN_FORMAT",
    "Checkpoint",
    "load_checkpoint",
    "load_snn",
    "save_checkpoint",
    "save_snn",
]

CHECKPOINT_FORMAT = "dtif-checkpoint"
SNN_FORMAT = "dtif-snn"
#: Layout version of both formats; a file with a higher one needs a newer dtif.
FORMAT_VERSION = 1
#: How many mismatched keys an architecture error lists.
MAX_LISTED = 5

_NEURON_TYPES: dict[str, type[IFParams] | type[DTIFParams]] = {
    "IFParams": IFParams,
    "DTIFParams": DTIFParams,
}
_NORM_TYPES: dict[str, type[MaxNorm] | type[PercentileNorm]] = {
    "MaxNorm": MaxNorm,
    "PercentileNorm": PercentileNorm,
}
_POLICIES: tuple[MaxPoolPolicy, ...] = ("error", "avg", "gate")


def _dtif_version() -> str:
    from dtif import __version__

    return __version__


# ---------------------------------------------------------------------------------------------
# Plain payloads


def _check_plain(obj: object, where: str) -> None:
    """Raise if ``obj`` holds anything ``torch.load(weights_only=True)`` would refuse."""
    if obj is None or isinstance(obj, (torch.Tensor, str, int, float, bool)):
        return
    if isinstance(obj, dict):
        for key, value in obj.items():
            if not isinstance(key, (str, int)):
                raise InputError(f"cannot save {where}: key {key!r} is not a str or int")
            _check_plain(value, f"{where}[{key!r}]")
        return
    if isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            _check_plain(value, f"{where}[{i}]")
        return
    raise InputError(
        f"cannot save {where}: {type(obj).__name__} is not a plain value (tensor, dict, list, "
        "tuple, str, int, float, bool, None)"
    )


def _plain_state_dict(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu() for k, v in module.state_dict().items()}


def _params_dict(params: object) -> dict[str, Any]:
    """``{"type": class name, **fields}`` of a params dataclass (neuron or norm)."""
    if not dataclasses.is_dataclass(params) or isinstance(params, type):
        raise InputError(f"expected a parameters dataclass, got {params!r}")
    return {"type": type(params).__name__, **dataclasses.asdict(params)}


# ---------------------------------------------------------------------------------------------
# Reading


def _unpickler_detail(err: BaseException) -> str:
    match = re.search(r"WeightsUnpickler error:\s*(.+)", str(err))
    if match:
        return match.group(1).strip()
    lines = str(err).strip().splitlines()
    return lines[-1] if lines else type(err).__name__


def _read(
    path: str | os.PathLike[str], fmt: str, kind: str, fix: str, map_location: Any
) -> dict[str, Any]:
    """``torch.load(path, weights_only=True)`` with every failure turned into a CheckpointError."""
    file = Path(path)
    if not file.exists():
        raise CheckpointError(f"{kind} not found: {file}. {fix}")
    if file.is_dir():
        raise CheckpointError(f"{kind} path {file} is a directory, not a file. {fix}")
    try:
        payload = torch.load(file, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        detail = _unpickler_detail(err)
        if "Unsupported global" in detail:
            culprit = re.search(r"GLOBAL (\S+)", detail)
            what = f": {culprit.group(1)}" if culprit else ""
            raise CheckpointError(
                f"{kind} {file} refused: the file carries arbitrary Python objects (a pickle "
                f"payload{what}); dtif loads only plain tensors. Do not load it with "
                f"torch.load(weights_only=False) unless you trust its source. {fix}"
            ) from None
        raise CheckpointError(
            f"{kind} {file} is corrupt or not a torch file ({detail}). {fix}"
        ) from None
    except OSError as err:
        raise CheckpointError(
            f"cannot read {kind} {file} ({err.strerror or err}); it may be truncated or "
            f"unreadable. {fix}"
        ) from None
    except Exception as err:  # any decoding failure means a corrupt or truncated file
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(
            f"{kind} {file} is truncated or corrupt ({type(err).__name__}: {message[:200]}). {fix}"
        ) from None
    return _check_header(payload, file, fmt, kind, fix)


def _version_key(version: object) -> tuple[int, int] | None:
    match = re.match(r"^(\d+)\.(\d+)", version) if isinstance(version, str) else None
    return (int(match.group(1)), int(match.group(2))) if match else None


def _check_header(payload: object, file: Path, fmt: str, kind: str, fix: str) -> dict[str, Any]:
    """Check the format name, and refuse files from a newer dtif (major.minor) or layout."""
    if not isinstance(payload, dict) or payload.get("format") != fmt:
        found = payload.get("format") if isinstance(payload, dict) else None
        what = f"format {found!r}" if found is not None else "no 'format' key"
        raise CheckpointError(
            f"{file} is not a {fmt} file ({what}, expected {fmt!r}); a bare "
            f"state_dict or another tool's file cannot be loaded as a dtif {kind}. {fix}"
        )
    saved, ours = payload.get("dtif_version"), _dtif_version()
    saved_key, our_key = _version_key(saved), _version_key(ours)
    if saved_key is None:
        raise CheckpointError(f"{kind} {file} has an unreadable dtif_version {saved!r}. {fix}")
    layout = payload.get("format_version")
    newer = None
    if our_key is not None and saved_key > our_key:
        newer = f"was written by dtif {saved}, newer than this dtif {ours}"
    elif isinstance(layout, int) and layout > FORMAT_VERSION:
        newer = f"has layout version {layout}, newer than this dtif {ours} reads ({FORMAT_VERSION})"
    if newer is not None:
        raise CheckpointError(
            f"{kind} {file} {newer}; its content may differ. Upgrade dtif (pip install -U dtif) "
            "to load it."
        )
    return payload


def _field(payload: Mapping[str, Any], key: str, types: tuple[type, ...], file: Path) -> Any:
    value = payload.get(key)
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
        names = " or ".join("None" if t is type(None) else t.__name__ for t in types)
        raise CheckpointError(
            f"{file}: field {key!r} is missing or not {names} (got {type(value).__name__}); "
            "the file is damaged or was not written by dtif. Re-create it."
        )
    return value


def _floats(payload: Mapping[str, Any], key: str, file: Path) -> tuple[float, ...]:
    values = _field(payload, key, (list, tuple), file)
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        raise CheckpointError(f"{file}: field {key!r} must be a list of numbers, got {values!r}")
    return tuple(float(v) for v in values)


def _spec(payload: Mapping[str, Any], file: Path, fix: str) -> ModelSpec:
    data = _field(payload, "model", (dict,), file)
    try:
        spec = ModelSpec.from_dict(data)
        spec.build()  # validates the name and the arguments
    except (InputError, TypeError) as err:
        raise CheckpointError(
            f"{file}: cannot rebuild model {data.get('name')!r} from the spec it records: {err}. "
            f"{fix}"
        ) from None
    return spec


def _state_dict(payload: Mapping[str, Any], file: Path) -> dict[str, torch.Tensor]:
    state = _field(payload, "state_dict", (dict,), file)
    bad = [k for k, v in state.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"{file}: state_dict entries {bad[:MAX_LISTED]} are not tensors")
    return state


def _load_weights(
    module: nn.Module, state: Mapping[str, torch.Tensor], file: Path, what: str, fix: str
) -> None:
    """Load ``state`` strictly into ``module``, listing the first mismatches on failure."""
    ours = module.state_dict()
    missing = [k for k in ours if k not in state]
    unexpected = [k for k in state if k not in ours]
    shapes = [
        f"{k}: file {list(state[k].shape)} vs model {list(ours[k].shape)}"
        for k in ours
        if k in state and state[k].shape != ours[k].shape
    ]
    parts = []
    for label, items in (
        ("missing keys", missing),
        ("unexpected keys", unexpected),
        ("shape mismatches", shapes),
    ):
        if items:
            more = f" (+{len(items) - MAX_LISTED} more)" if len(items) > MAX_LISTED else ""
            parts.append(f"{label} {', '.join(items[:MAX_LISTED])}{more}")
    if parts:
        raise CheckpointError(
            f"{file} does not match the architecture of {what}: {'; '.join(parts)}. The weights "
            f"were saved from a different model or width. {fix}"
        )
    module.load_state_dict(state, strict=True)


# ---------------------------------------------------------------------------------------------
# ANN checkpoints


@dataclass
class Checkpoint:
    """A loaded ANN checkpoint.

    Attributes:
        model: the rebuilt model with the saved weights, in eval mode.
        spec: name and arguments that rebuild the architecture.
        dataset: name of the dataset it was trained on.
        mean: per-channel normalisation mean of the inputs, ``C`` values.
        std: per-channel normalisation std of the inputs, ``C`` values.
        test_accuracy: test accuracy (fraction in ``[0, 1]``) when saved, or ``None``.
        epoch: number of completed training epochs.
        dtif_version: dtif version that wrote the file.
        train_state: optimizer/scheduler state etc. for resuming, or ``None``.
        path: the file it was loaded from.
    """

    model: nn.Module
    spec: ModelSpec
    dataset: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    test_accuracy: float | None
    epoch: int
    dtif_version: str
    train_state: dict[str, Any] | None
    path: Path


_CHECKPOINT_FIX = (
    "Train a new one with `dtif train --out DIR` (it writes DIR/checkpoint.pt) or pass the "
    "right --checkpoint."
)


def save_checkpoint(
    path: str | os.PathLike[str],
    model: nn.Module,
    spec: ModelSpec,
    *,
    dataset: str,
    mean: Sequence[float],
    std: Sequence[float],
    test_accuracy: float | None,
    epoch: int,
    train_state: dict[str, Any] | None = None,
) -> Path:
    """Write an ANN checkpoint atomically (temp file, fsync, rename).

    Args:
        path: target file; its directory must exist.
        model: the model; its ``state_dict()`` is saved (moved to the CPU).
        spec: the spec that rebuilds ``model`` (``spec.build()``).
        dataset: name of the training dataset.
        mean: per-channel input normalisation mean.
        std: per-channel input normalisation std.
        test_accuracy: test accuracy as a fraction in ``[0, 1]``, or ``None``.
        epoch: completed training epochs.
        train_state: state for resuming (optimizer, scheduler, ...): plain values only.

    Returns:
        ``path`` as a ``Path``.

    Raises:
        InputError: ``train_state`` or the spec's kwargs hold a non-plain value.
        OutputError: the file cannot be written; any previous file is unchanged.
    """
    payload: dict[str, Any] = {
        "format": CHECKPOINT_FORMAT,
        "format_version": FORMAT_VERSION,
        "dtif_version": _dtif_version(),
        "model": spec.to_dict(),
        "dataset": str(dataset),
        "mean": [float(m) for m in mean],
        "std": [float(s) for s in std],
        "test_accuracy": None if test_accuracy is None else float(test_accuracy),
        "epoch": int(epoch),
        "state_dict": _plain_state_dict(model),
        "train_state": train_state,
    }
    _check_plain(payload, "checkpoint")
    return atomic_torch_save(payload, path)


def load_checkpoint(path: str | os.PathLike[str], map_location: Any = "cpu") -> Checkpoint:
    """Load an ANN checkpoint written by :func:`save_checkpoint`, safely.

    Reads with ``torch.load(weights_only=True)`` only, rebuilds the model from the recorded
    spec, and loads the weights strictly.

    Args:
        path: the checkpoint file.
        map_location: where to put the tensors (as ``torch.load``).

    Returns:
        The :class:`Checkpoint`, its model in eval mode.

    Raises:
        CheckpointError: the file is missing, truncated or corrupt, carries a pickle payload,
            is not a dtif checkpoint, was written by a newer dtif, or its weights do not match
            the architecture it names (the first mismatches are listed). Each message names
            the file and the fix.
    """
    file = Path(path)
    payload = _read(file, CHECKPOINT_FORMAT, "checkpoint", _CHECKPOINT_FIX, map_location)
    spec = _spec(payload, file, _CHECKPOINT_FIX)
    state = _state_dict(payload, file)
    model = spec.build()
    _load_weights(model, state, file, f"model {spec.name!r} (width {spec.width})", _CHECKPOINT_FIX)
    model.eval()
    accuracy = _field(payload, "test_accuracy", (float, int, type(None)), file)
    train_state = _field(payload, "train_state", (dict, type(None)), file)
    return Checkpoint(
        model=model,
        spec=spec,
        dataset=_field(payload, "dataset", (str,), file),
        mean=_floats(payload, "mean", file),
        std=_floats(payload, "std", file),
        test_accuracy=None if accuracy is None else float(accuracy),
        epoch=_field(payload, "epoch", (int,), file),
        dtif_version=str(payload["dtif_version"]),
        train_state=train_state,
        path=file,
    )


# ---------------------------------------------------------------------------------------------
# Converted SNNs


_SNN_FIX = "Convert again with `dtif convert --checkpoint ... --out FILE`."


def _matching(given: dict[str, Any] | str | None, recorded: object, name: str) -> None:
    if given is not None and recorded is not None and given != recorded:
        raise InputError(
            f"save_snn: {name} {given!r} differs from the one the network was built with "
            f"({recorded!r}); pass the {name} used for the conversion (or leave it out)"
        )


#: ``snn.meta`` keys that the recipe rebuilds; other plain entries are saved as they are.
_RECIPE_KEYS = frozenset({"method", "model", "neuron", "neuron_params", "norm", "maxpool"})


def _fields(params: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if k != "type"}


def _is_plain(value: object) -> bool:
    try:
        _check_plain(value, "meta")
    except InputError:
        return False
    return True


def _check_neurons(snn: SpikingNetwork, neuron: NeuronParams) -> None:
    """Each spiking layer must hold the params that ``build_snn`` derives from ``neuron``.

    The file records one neuron for the whole network; a layer changed after conversion
    would otherwise load silently as something else.
    """
    sites = relu_sites(snn.ann)
    modules = dict(snn.dynamic.named_modules())
    wrong = []
    for index, site in enumerate(sites):
        module = modules.get(str(site.target))
        expected = neuron.for_layer(index, len(sites)) if isinstance(neuron, DTIFParams) else neuron
        actual = getattr(module, "params", None)
        if actual != expected:
            wrong.append(f"{site.target}: {actual} (recorded neuron gives {expected})")
    if wrong:
        raise InputError(
            "save_snn: the neuron parameters do not describe the network's spiking layers: "
            f"{'; '.join(wrong[:MAX_LISTED])}. Pass the neuron (e.g. a DTIF with per-layer "
            "alpha and v0) that gives every layer its parameters."
        )


def save_snn(
    path: str | os.PathLike[str],
    snn: SpikingNetwork,
    spec: ModelSpec,
    *,
    method: str,
    neuron: NeuronParams | None = None,
    norm: Norm | None = None,
    maxpool: MaxPoolPolicy | None = None,
) -> Path:
    """Write a converted spiking network atomically: its recipe and its state.

    ``neuron``, ``norm`` and ``maxpool`` default to what ``snn.meta`` records (as set by
    ``dtif.convert``); a given norm or max-pool policy must agree with it. The neuron must
    give each spiking layer the parameters it holds (checked), since only the recipe is
    saved.

    Args:
        path: target file; its directory must exist.
        snn: the network returned by ``dtif.convert``.
        spec: the spec of the ANN it was converted from.
        method: the conversion method's name (e.g. ``"dtif"``), kept in ``snn.meta["method"]``.
        neuron: neuron parameters used for the conversion.
        norm: threshold normalisation used for the conversion, or ``None`` if unknown.
        maxpool: max-pool policy used for the conversion.

    Returns:
        ``path`` as a ``Path``.

    Raises:
        InputError: the neuron, norm or max-pool policy is unknown, missing, or disagrees
            with ``snn.meta`` or with the parameters of the spiking layers; or ``spec`` does
            not rebuild the network (a dry-run rebuild is done before writing).
        OutputError: the file cannot be written; any previous file is unchanged.
    """
    meta = snn.meta
    neuron_dict = _params_dict(neuron) if neuron is not None else meta.get("neuron")
    norm_dict = _params_dict(norm) if norm is not None else meta.get("norm")
    policy = maxpool if maxpool is not None else meta.get("maxpool")
    if norm is not None:
        _matching(norm_dict, meta.get("norm"), "norm")
    if maxpool is not None:
        _matching(maxpool, meta.get("maxpool"), "maxpool")
    if not isinstance(neuron_dict, dict) or neuron_dict.get("type") not in _NEURON_TYPES:
        raise InputError(
            f"save_snn: neuron must be dtif.IF(...) or dtif.DTIF(...), got {neuron_dict!r}"
        )
    if norm_dict is not None and (
        not isinstance(norm_dict, dict) or norm_dict.get("type") not in _NORM_TYPES
    ):
        raise InputError(
            f"save_snn: norm must be MaxNorm(...) or PercentileNorm(...), got {norm_dict!r}"
        )
    if policy not in _POLICIES:
        raise InputError(f"save_snn: maxpool must be one of {_POLICIES}, got {policy!r}")
    _check_neurons(snn, _NEURON_TYPES[neuron_dict["type"]](**_fields(neuron_dict)))
    payload: dict[str, Any] = {
        "format": SNN_FORMAT,
        "format_version": FORMAT_VERSION,
        "dtif_version": _dtif_version(),
        "model": spec.to_dict(),
        "method": str(method),
        "neuron": neuron_dict,
        "norm": norm_dict,
        "maxpool": policy,
        "input_shape": [int(s) for s in snn.input_shape],
        "state_dict": _plain_state_dict(snn),
        "meta": {k: v for k, v in meta.items() if k not in _RECIPE_KEYS and _is_plain(v)},
    }
    _check_plain(payload, "snn")
    try:  # what is saved must load back: rebuild it now rather than fail at load time
        _rebuild_snn(payload, Path(path))
    except CheckpointError as err:
        raise InputError(
            f"save_snn: the network would not load back from its recipe: {err}"
        ) from None
    return atomic_torch_save(payload, path)


def _params_from(data: object, table: Mapping[str, type[Any]], what: str, file: Path) -> Any:
    if not isinstance(data, dict) or data.get("type") not in table:
        raise CheckpointError(
            f"{file}: unknown {what} {data!r}; valid types: {', '.join(table)}. {_SNN_FIX}"
        )
    try:
        return table[data["type"]](**_fields(data))
    except (TypeError, DtifError) as err:
        raise CheckpointError(f"{file}: invalid {what} {data!r}: {err}. {_SNN_FIX}") from None


def load_snn(path: str | os.PathLike[str], map_location: Any = "cpu") -> SpikingNetwork:
    """Load a spiking network written by :func:`save_snn`, safely.

    Reads with ``torch.load(weights_only=True)`` only. Rebuilds the network from its recipe:
    ``spec.build()`` -> ``prepare_ann(model, maxpool)`` -> ``build_snn`` with the saved
    per-layer scales, then loads the saved state strictly; its outputs equal the saved
    network's exactly.

    Args:
        path: the file.
        map_location: where to put the tensors (as ``torch.load``).

    Returns:
        The network in eval mode; ``meta`` holds ``method``, ``neuron``, ``norm``, ``maxpool``,
        ``model`` (the spec dict) and the other plain entries the saved ``snn.meta`` had.

    Raises:
        CheckpointError: the file is missing, truncated or corrupt, carries a pickle payload,
            is not a dtif SNN file, was written by a newer dtif, or does not match the
            architecture it names.
    """
    file = Path(path)
    return _rebuild_snn(_read(file, SNN_FORMAT, "SNN file", _SNN_FIX, map_location), file)


def _rebuild_snn(payload: Mapping[str, Any], file: Path) -> SpikingNetwork:
    """The network that an SNN payload describes, with its state loaded strictly."""
    spec = _spec(payload, file, _SNN_FIX)
    state = _state_dict(payload, file)
    neuron = _params_from(payload.get("neuron"), _NEURON_TYPES, "neuron", file)
    norm_data = payload.get("norm")
    if norm_data is not None:
        _params_from(norm_data, _NORM_TYPES, "norm", file)
    policy = payload.get("maxpool")
    if policy not in _POLICIES:
        raise CheckpointError(f"{file}: unknown maxpool policy {policy!r}. {_SNN_FIX}")
    shape = _field(payload, "input_shape", (list, tuple), file)
    method = _field(payload, "method", (str,), file)

    what = f"model {spec.name!r} (width {spec.width}) converted with maxpool={policy!r}"
    try:
        ann = prepare_ann(spec.build().eval(), policy)
    except DtifError as err:
        raise CheckpointError(f"{file}: cannot rebuild {what}: {err}. {_SNN_FIX}") from None
    keys = [f"dynamic.{site.target}.scale" for site in relu_sites(ann)]
    missing = [k for k in keys if k not in state]
    if missing:
        raise CheckpointError(
            f"{file} does not match the architecture of {what}: no scale for spiking layers "
            f"{', '.join(missing[:MAX_LISTED])}. {_SNN_FIX}"
        )
    extra = payload.get("meta")
    meta = dict(extra) if isinstance(extra, dict) else {}
    meta.update({"method": method, "norm": norm_data, "model": spec.to_dict()})
    try:
        snn = build_snn(
            ann, tuple(int(s) for s in shape), neuron, [state[k] for k in keys], policy, meta
        )
    except DtifError as err:
        raise CheckpointError(f"{file}: cannot rebuild {what}: {err}. {_SNN_FIX}") from None
    _load_weights(snn, state, file, what, _SNN_FIX)
    return snn.eval()
