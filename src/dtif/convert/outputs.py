"""One output: a model that returns a tuple, list or dict is refused, or one value is picked."""

from __future__ import annotations

from typing import Any

import torch
from torch import fx, nn

from dtif.errors import InputError, UnsupportedOpsError

OutputKey = int | str


def _describe(value: object) -> str:
    if isinstance(value, dict):
        return f"a dict with keys {sorted(map(str, value))}"
    return f"a {type(value).__name__} of {len(value)} values"  # type: ignore[arg-type]  # tuple/list


def select_output(gm: fx.GraphModule, output: OutputKey | None) -> fx.GraphModule:
    """Make `gm` return one tensor: the one `output` names, when the model returns several.

    Before: return (logits, aux).  After (output=0): return logits.

    Raises:
        UnsupportedOpsError: the model returns several values and `output` is None.
        InputError: `output` names no value the model returns, or is given for a model that
            returns one value.
    """
    node = next(n for n in gm.graph.nodes if n.op == "output")
    result = node.args[0]
    if not isinstance(result, (tuple, list, dict)):
        if output is not None:
            raise InputError(
                f"output={output!r} was given, but the model's forward returns one value; "
                "leave output out"
            )
        return gm
    if output is None:
        keys = "an index" if not isinstance(result, dict) else "a key"
        raise UnsupportedOpsError(
            f"the model returns {_describe(result)}; a spiking network has one output tensor. "
            f"Pick one with convert(..., output=<{keys}>) (--output on the command line), or "
            "wrap the model with dtif.pick_output(model, <key>)."
        )
    is_index = isinstance(output, int) and not isinstance(output, bool)
    try:
        if not isinstance(result, dict) and not is_index:
            raise KeyError(output)
        chosen = result[output]  # type: ignore[index]  # checked above
    except (KeyError, IndexError):
        raise InputError(
            f"output={output!r} names no value of the model's output ({_describe(result)})"
        ) from None
    node.args = (chosen,)
    gm.graph.eliminate_dead_code()
    gm.delete_all_unused_submodules()
    gm.recompile()
    return gm


def check_tensor_output(value: Any) -> None:
    """Raise a clear error when the model's output (found by running it) is not one tensor.

    Raises:
        UnsupportedOpsError: the output is a tuple, list, dict or other non-tensor.
    """
    if isinstance(value, torch.Tensor):
        return
    what = _describe(value) if isinstance(value, (tuple, list, dict)) else type(value).__name__
    raise UnsupportedOpsError(
        f"the model returns {what}, not one tensor; a spiking network has one output tensor. "
        "Pick one with dtif.pick_output(model, <key>) or make forward return one tensor."
    )


class PickOutput(nn.Module):
    """Wrap a model whose forward returns several values; forward returns `model(x)[key]`.

    Args:
        model: the model.
        key: an index (tuple, list) or key (dict) of its output.
    """

    def __init__(self, model: nn.Module, key: OutputKey) -> None:
        super().__init__()
        self.model = model
        self.key = key
        self.train(model.training)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)[self.key]


def pick_output(model: nn.Module, key: OutputKey) -> nn.Module:
    """`model` with one output: `model(x)[key]` (see `PickOutput`)."""
    if isinstance(key, bool) or not isinstance(key, (int, str)):
        raise InputError(f"the output key must be an int index or a str key, got {key!r}")
    return PickOutput(model, key)
