"""Rebuild a converted network from the recipe an SNN file records, and check a recipe against it."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from dtif.checkpoint.files import MAX_LISTED, field, load_weights, read_spec, read_state_dict
from dtif.checkpoint.user_model import UserModel
from dtif.convert.options import MAXPOOL_POLICIES, from_dict
from dtif.convert.pipeline import build_snn, prepare_ann
from dtif.convert.replace_relu import relu_sites
from dtif.errors import CheckpointError, DtifError, InputError
from dtif.neurons import DTIFParams, NeuronParams
from dtif.nn.neuron import SpikingNeuron
from dtif.sim.network import SpikingNetwork

SNN_FIX = "Convert again with `dtif convert --checkpoint ... --out FILE`."


def check_neurons(snn: SpikingNetwork, neuron: NeuronParams) -> None:
    """Each spiking layer must hold the params that ``build_snn`` derives from ``neuron``.

    The file records one neuron for the whole network; a layer changed after conversion
    would otherwise load silently as something else.

    Raises:
        InputError: a layer's parameters differ; the first ones are listed.
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


def _options(data: object, kind: str, file: Path) -> Any:
    try:
        return from_dict(data, kind, str(file))  # type: ignore[arg-type]  # "neuron" or "norm"
    except DtifError as err:
        raise CheckpointError(f"{err}. {SNN_FIX}") from None


def _user_model(data: Mapping[str, Any], file: Path, model_file: str | None) -> Any:
    """The ANN of a network converted from a --model-file model: runs the file, if allowed."""
    recorded = UserModel.from_dict(dict(data))
    if model_file is None:
        raise CheckpointError(
            f"{file} was converted from your own model {recorded.target}; rebuilding it runs "
            "that file, which an SNN file never does on its own. If you trust it, pass it again: "
            f"--model-file {recorded.target} (load_snn(path, model_file=...))."
        )
    try:
        return recorded.build(model_file)
    except DtifError as err:
        raise CheckpointError(
            f"{file}: cannot rebuild the model from {model_file}: {err}"
        ) from None


def rebuild_snn(
    payload: Mapping[str, Any], file: Path, model_file: str | None = None
) -> SpikingNetwork:
    """The network that an SNN payload describes, with its state loaded strictly.

    Args:
        payload: the file's contents.
        file: the file, for messages.
        model_file: for a network converted from a --model-file model: "PATH.py:FACTORY",
            which is run to rebuild it. Without it such a file is refused.

    Raises:
        CheckpointError: a field is missing or invalid, or the state does not match the
            architecture the recipe rebuilds; a --model-file network without `model_file`.
    """
    data = field(payload, "model", (dict,), file)
    spec = None if "model_file" in data else read_spec(payload, file, SNN_FIX)
    state = read_state_dict(payload, file)
    neuron = _options(payload.get("neuron"), "neuron", file)
    norm_data = payload.get("norm")
    norm = _options(norm_data, "norm", file) if norm_data is not None else None
    policy = payload.get("maxpool")
    if policy not in MAXPOOL_POLICIES:
        raise CheckpointError(f"{file}: unknown maxpool policy {policy!r}. {SNN_FIX}")
    shape = field(payload, "input_shape", (list, tuple), file)
    method = field(payload, "method", (str,), file)

    if spec is None:
        what = f"model {data['model_file']} converted with maxpool={policy!r}"
        model = _user_model(data, file, model_file)
    else:
        what = f"model {spec.name!r} (width {spec.width}) converted with maxpool={policy!r}"
        model = spec.build().eval()
    try:
        ann = prepare_ann(model, policy)
    except DtifError as err:
        raise CheckpointError(f"{file}: cannot rebuild {what}: {err}. {SNN_FIX}") from None
    keys = [f"dynamic.{site.target}.scale" for site in relu_sites(ann)]
    missing = [k for k in keys if k not in state]
    if missing:
        raise CheckpointError(
            f"{file} does not match the architecture of {what}: no scale for spiking layers "
            f"{', '.join(missing[:MAX_LISTED])}. {SNN_FIX}"
        )
    extra = payload.get("meta")
    meta = dict(extra) if isinstance(extra, dict) else {}
    meta.update({"method": method, "norm": norm, "model": dict(data)})
    try:
        snn = build_snn(
            ann, tuple(int(s) for s in shape), neuron, [state[k] for k in keys], policy, meta
        )
    except DtifError as err:
        raise CheckpointError(f"{file}: cannot rebuild {what}: {err}. {SNN_FIX}") from None
    for name, mod in snn.named_modules():  # offsets of a bias calibration: made, then loaded
        offset = state.get(f"{name}.input_offset")
        if isinstance(mod, SpikingNeuron) and isinstance(offset, torch.Tensor):
            try:
                mod.set_input_offset(offset)
            except InputError as err:
                raise CheckpointError(f"{file}: {err}. {SNN_FIX}") from None
    load_weights(snn, state, file, what, SNN_FIX)
    return snn.eval()
