"""SNN files (format "dtif-snn"): a converted network's recipe and state."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from dtif.checkpoint.files import (
    SNN_FORMAT,
    check_plain,
    header,
    plain_state_dict,
    read_payload,
)
from dtif.checkpoint.rebuild import SNN_FIX, check_neurons, rebuild_snn
from dtif.checkpoint.user_model import UserModel
from dtif.convert.normalize import Norm
from dtif.convert.options import MaxPoolPolicy, check_policy, to_dict
from dtif.errors import CheckpointError, InputError
from dtif.io import atomic_torch_save
from dtif.models import ModelSpec
from dtif.neurons import DTIFParams, IFParams, NeuronParams
from dtif.sim.network import SpikingNetwork

#: ``snn.meta`` keys that the recipe rebuilds; other plain entries are saved as they are.
_RECIPE_KEYS = frozenset({"method", "model", "neuron", "norm", "maxpool"})


def _matching(given: object, recorded: object, name: str) -> None:
    if given is not None and recorded is not None and given != recorded:
        raise InputError(
            f"save_snn: {name} {given!r} differs from the one the network was built with "
            f"({recorded!r}); pass the {name} used for the conversion (or leave it out)"
        )


def _is_plain(value: object) -> bool:
    try:
        check_plain(value, "meta")
    except InputError:
        return False
    return True


def save_snn(
    path: str | os.PathLike[str],
    snn: SpikingNetwork,
    spec: ModelSpec | UserModel,
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
        spec: the spec of the ANN it was converted from, or the `UserModel` recipe of a
            --model-file model (the file records its path and kwargs, not its code).
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
    if norm is not None:
        _matching(norm, meta.get("norm"), "norm")
    if maxpool is not None:
        _matching(maxpool, meta.get("maxpool"), "maxpool")
    neuron = neuron if neuron is not None else meta.get("neuron")
    norm = norm if norm is not None else meta.get("norm")
    if not isinstance(neuron, (IFParams, DTIFParams)):
        raise InputError(f"save_snn: neuron must be dtif.IF(...) or dtif.DTIF(...), got {neuron!r}")
    policy = check_policy(maxpool if maxpool is not None else meta.get("maxpool"))
    check_neurons(snn, neuron)
    payload: dict[str, Any] = {
        **header(SNN_FORMAT),
        "model": spec.to_dict(),
        "method": str(method),
        "neuron": to_dict(neuron),
        "norm": None if norm is None else to_dict(norm),
        "maxpool": policy,
        "input_shape": [int(s) for s in snn.input_shape],
        "state_dict": plain_state_dict(snn),
        "meta": {k: v for k, v in meta.items() if k not in _RECIPE_KEYS and _is_plain(v)},
    }
    check_plain(payload, "snn")
    try:  # what is saved must load back: rebuild it now rather than fail at load time
        rebuild_snn(payload, Path(path), spec.target if isinstance(spec, UserModel) else None)
    except CheckpointError as err:
        raise InputError(
            f"save_snn: the network would not load back from its recipe: {err}"
        ) from None
    return atomic_torch_save(payload, path)


def load_snn(
    path: str | os.PathLike[str], map_location: Any = "cpu", model_file: str | None = None
) -> SpikingNetwork:
    """Load a spiking network written by :func:`save_snn`, safely.

    Reads with ``torch.load(weights_only=True)`` only. Rebuilds the network from its recipe:
    ``spec.build()`` -> ``prepare_ann(model, maxpool)`` -> ``build_snn`` with the saved
    per-layer scales, then loads the saved state strictly; its outputs equal the saved
    network's exactly.

    Args:
        path: the file.
        map_location: where to put the tensors (as ``torch.load``).
        model_file: for a network converted from your own model file: "PATH.py:FACTORY",
            which is run to rebuild the architecture. Such a file is refused without it.

    Returns:
        The network in eval mode; ``meta`` holds ``method``, ``neuron``, ``norm``, ``maxpool``,
        ``model`` (the spec dict) and the other plain entries the saved ``snn.meta`` had.

    Raises:
        CheckpointError: the file is missing, truncated or corrupt, carries a pickle payload,
            is not a dtif SNN file, was written by a newer dtif, or does not match the
            architecture it names.
    """
    file = Path(path)
    payload = read_payload(file, SNN_FORMAT, "SNN file", SNN_FIX, map_location)
    return rebuild_snn(payload, file, model_file)
