"""A user's own model: a factory in a Python file, and a weights file (state_dict).

`--model-file PATH.py:FACTORY` runs the user's own file, as `python PATH.py` would: that is
the one place dtif runs code it did not ship. The weights are read as tensors only
(`torch.load(weights_only=True)` or safetensors), so a weights file never runs code.
"""

from __future__ import annotations

import importlib.util
import json
import os
import pickle
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dtif.checkpoint.files import _unpickler_detail, load_weights
from dtif.convert.outputs import pick_output
from dtif.errors import CheckpointError, InputError

_MODEL_FIX = "Give --model-file PATH.py:FACTORY, where FACTORY(**kwargs) returns the nn.Module."
_WEIGHTS_FIX = (
    "Save the weights with torch.save(model.state_dict(), 'weights.pt') or "
    "safetensors.torch.save_file(model.state_dict(), 'weights.safetensors')."
)
# Containers that training scripts wrap a state_dict in.
_STATE_KEYS = ("state_dict", "model_state_dict", "model")


def parse_model_kwargs(text: str | None) -> dict[str, Any]:
    """`--model-kwargs` as a dict: a JSON object, or {} when not given.

    Raises:
        InputError: not JSON, or not an object.
    """
    if text is None or not text.strip():
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise InputError(
            f"--model-kwargs is not valid JSON ({err.msg} at char {err.pos}): {text!r}; give an "
            "object such as '{\"num_classes\": 10}'"
        ) from None
    if not isinstance(value, dict):
        raise InputError(f"--model-kwargs must be a JSON object, got {type(value).__name__}")
    return value


def load_model_file(target: str, kwargs: dict[str, Any] | None = None) -> nn.Module:
    """Build the model that `FACTORY(**kwargs)` returns, FACTORY defined in PATH.py.

    This runs the file's top-level code, as importing it would.

    Args:
        target: "PATH.py:FACTORY" (a class or function).
        kwargs: keyword arguments of the factory.

    Returns:
        The model, in eval mode.

    Raises:
        InputError: a malformed target, a missing file or factory, a file or factory that
            raises, or a factory that does not return an nn.Module.
    """
    path_text, sep, name = target.rpartition(":")
    if not sep or not path_text or not name.isidentifier():
        raise InputError(f"--model-file {target!r} names no factory. {_MODEL_FIX}")
    path = Path(path_text).expanduser()
    if path.suffix != ".py":
        raise InputError(f"--model-file {path} is not a .py file. {_MODEL_FIX}")
    if not path.is_file():
        raise InputError(f"--model-file {path} does not exist. {_MODEL_FIX}")
    module_name = f"dtif_user_model_{abs(hash(path.resolve()))}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise InputError(f"--model-file {path} cannot be imported. {_MODEL_FIX}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses and pickling look modules up by name
    try:
        spec.loader.exec_module(module)
    except Exception as err:  # noqa: BLE001 - any failure of the user's file is reported
        sys.modules.pop(module_name, None)
        raise InputError(f"running {path} raised {type(err).__name__}: {err}") from err
    factory = getattr(module, name, None)
    if not callable(factory):
        found = sorted(
            k
            for k, v in vars(module).items()
            if callable(v) and getattr(v, "__module__", "") == module_name
        )
        raise InputError(
            f"{path} defines no {name!r}; it defines {', '.join(found) or 'no class or function'}. "
            f"{_MODEL_FIX}"
        )
    try:
        model = factory(**(kwargs or {}))
    except Exception as err:  # noqa: BLE001 - reported with the call that failed
        raise InputError(
            f"{name}(**{kwargs or {}}) from {path} raised {type(err).__name__}: {err}; check "
            "--model-kwargs"
        ) from err
    if not isinstance(model, nn.Module):
        raise InputError(
            f"{name}(...) from {path} returned {type(model).__name__}, not a torch.nn.Module. "
            f"{_MODEL_FIX}"
        )
    return model.eval()


def _torch_weights(file: Path) -> object:
    try:
        return torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        detail = _unpickler_detail(err)
        if "Unsupported global" in detail:
            raise CheckpointError(
                f"weights {file} refused: the file carries Python objects beyond tensors (e.g. "
                f"a whole pickled model: {detail[:200]}); dtif loads tensors only. {_WEIGHTS_FIX}"
            ) from None
        raise CheckpointError(
            f"weights {file} are corrupt or not a torch file ({detail})"
        ) from None
    except Exception as err:  # noqa: BLE001 - a truncated or foreign file
        raise CheckpointError(
            f"weights {file} cannot be read ({type(err).__name__}: {str(err)[:200]}). {_WEIGHTS_FIX}"
        ) from None


def _safetensors_weights(file: Path) -> dict[str, torch.Tensor]:
    try:
        from safetensors import SafetensorError
        from safetensors.torch import load_file
    except ImportError:
        raise InputError(
            f"{file} is a .safetensors file and the safetensors package is not installed: "
            "pip install 'dtif[safetensors]'"
        ) from None
    try:
        return load_file(file, device="cpu")
    except (SafetensorError, OSError) as err:
        raise CheckpointError(
            f"weights {file} are not a readable safetensors file ({err})"
        ) from None


def _unwrap(payload: object, file: Path) -> dict[str, torch.Tensor]:
    """The state_dict in `payload`: itself, or under "state_dict" / "model_state_dict"."""
    if isinstance(payload, dict):
        for key in _STATE_KEYS:
            if isinstance(payload.get(key), dict):
                payload = payload[key]
                break
    if not isinstance(payload, dict) or not payload:
        raise CheckpointError(f"weights {file} hold no state_dict. {_WEIGHTS_FIX}")
    bad = [str(k) for k, v in payload.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(
            f"weights {file}: entries {', '.join(bad[:5])} are not tensors; {_WEIGHTS_FIX}"
        )
    return payload  # type: ignore[return-value]  # checked above


def strip_data_parallel(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop the `module.` prefix that nn.DataParallel / DDP give every key."""
    prefix = "module."
    if state and all(k.startswith(prefix) for k in state):
        return {k[len(prefix) :]: v for k, v in state.items()}
    return state


def read_weights(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """A state_dict from a `.safetensors` file or a torch file (tensors only), prefixes stripped.

    Raises:
        CheckpointError: a missing, corrupt or pickled-object file, or one with no state_dict.
        InputError: a .safetensors file without the safetensors package.
    """
    file = Path(path).expanduser()
    if not file.is_file():
        raise CheckpointError(f"weights file {file} not found. {_WEIGHTS_FIX}")
    if file.suffix == ".safetensors":
        payload: object = _safetensors_weights(file)
    else:
        payload = _torch_weights(file)
    return strip_data_parallel(_unwrap(payload, file))


def load_user_model(
    target: str, kwargs: dict[str, Any] | None, weights: str | os.PathLike[str] | None
) -> nn.Module:
    """`load_model_file(target, kwargs)` with the weights loaded strictly.

    Raises:
        InputError: see `load_model_file`; no weights given.
        CheckpointError: see `read_weights`; weights that do not match the model (the missing
            and unexpected keys and the shape mismatches are listed).
    """
    if weights is None:
        raise InputError(
            "--model-file needs --weights FILE (.pt state_dict or .safetensors); a model "
            "without trained weights converts to noise"
        )
    model = load_model_file(target, kwargs)
    state = read_weights(weights)
    load_weights(model, state, Path(weights), f"{target}", "Check --model-file and --model-kwargs.")
    return model.eval()


@dataclass(frozen=True)
class UserModel:
    """The recipe of a --model-file model, as an SNN file records it (never its code).

    Attributes:
        target: "PATH.py:FACTORY".
        kwargs: the factory's keyword arguments (plain JSON values).
        output: the index or key of the output kept, or None.
    """

    target: str
    kwargs: dict[str, Any]
    output: int | str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"model_file": self.target, "model_kwargs": dict(self.kwargs), "output": self.output}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UserModel:
        return cls(
            str(data["model_file"]), dict(data.get("model_kwargs") or {}), data.get("output")
        )

    def build(self, target: str | None = None) -> nn.Module:
        """Run the model file (`target`, default the recorded one) and build the model."""
        model = load_model_file(target or self.target, self.kwargs)
        return model if self.output is None else pick_output(model, self.output).eval()
