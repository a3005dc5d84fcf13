"""The two file formats of dtif, and how they are read: plain tensors and metadata, loaded safely.

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

import os
import pickle
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dtif.errors import CheckpointError, InputError
from dtif.models import ModelSpec
from dtif.version import __version__

CHECKPOINT_FORMAT = "dtif-checkpoint"
SNN_FORMAT = "dtif-snn"
#: Layout version of both formats; a file with a higher one needs a newer dtif.
FORMAT_VERSION = 1
#: How many mismatched keys an architecture error lists.
MAX_LISTED = 5


def header(fmt: str) -> dict[str, Any]:
    """The first entries of a file of format `fmt`."""
    return {"format": fmt, "format_version": FORMAT_VERSION, "dtif_version": __version__}


def check_plain(obj: object, where: str) -> None:
    """Raise if ``obj`` holds anything ``torch.load(weights_only=True)`` would refuse."""
    if obj is None or isinstance(obj, (torch.Tensor, str, int, float, bool)):
        return
    if isinstance(obj, dict):
        for key, value in obj.items():
            if not isinstance(key, (str, int)):
                raise InputError(f"cannot save {where}: key {key!r} is not a str or int")
            check_plain(value, f"{where}[{key!r}]")
        return
    if isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            check_plain(value, f"{where}[{i}]")
        return
    raise InputError(
        f"cannot save {where}: {type(obj).__name__} is not a plain value (tensor, dict, list, "
        "tuple, str, int, float, bool, None)"
    )


def plain_state_dict(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu() for k, v in module.state_dict().items()}


def _unpickler_detail(err: BaseException) -> str:
    match = re.search(r"WeightsUnpickler error:\s*(.+)", str(err))
    if match:
        return match.group(1).strip()
    lines = str(err).strip().splitlines()
    return lines[-1] if lines else type(err).__name__


def read_payload(
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
    saved, ours = payload.get("dtif_version"), __version__
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


def field(payload: Mapping[str, Any], key: str, types: tuple[type, ...], file: Path) -> Any:
    value = payload.get(key)
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
        names = " or ".join("None" if t is type(None) else t.__name__ for t in types)
        raise CheckpointError(
            f"{file}: field {key!r} is missing or not {names} (got {type(value).__name__}); "
            "the file is damaged or was not written by dtif. Re-create it."
        )
    return value


def floats(payload: Mapping[str, Any], key: str, file: Path) -> tuple[float, ...]:
    values = field(payload, key, (list, tuple), file)
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        raise CheckpointError(f"{file}: field {key!r} must be a list of numbers, got {values!r}")
    return tuple(float(v) for v in values)


def read_spec(payload: Mapping[str, Any], file: Path, fix: str) -> ModelSpec:
    data = field(payload, "model", (dict,), file)
    try:
        spec = ModelSpec.from_dict(data)
        spec.build()  # validates the name and the arguments
    except (InputError, TypeError) as err:
        raise CheckpointError(
            f"{file}: cannot rebuild model {data.get('name')!r} from the spec it records: {err}. "
            f"{fix}"
        ) from None
    return spec


def read_state_dict(payload: Mapping[str, Any], file: Path) -> dict[str, torch.Tensor]:
    state = field(payload, "state_dict", (dict,), file)
    bad = [k for k, v in state.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"{file}: state_dict entries {bad[:MAX_LISTED]} are not tensors")
    return state


def load_weights(
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
