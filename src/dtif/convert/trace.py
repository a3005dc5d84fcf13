"""Trace a user model into a torch.fx graph, on a deep copy in eval mode."""

from __future__ import annotations

import copy
import warnings

from torch import fx, nn

from dtif.errors import UnsupportedOpsError
from dtif.models.qcfs import QCFS


class _Tracer(fx.Tracer):
    """torch.fx's tracer, keeping QCFS activations as single (leaf) modules."""

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return isinstance(m, QCFS) or super().is_leaf_module(m, module_qualified_name)


def trace(model: nn.Module) -> fx.GraphModule:
    """Deep-copy `model`, put the copy in eval mode and trace it with torch.fx.

    The user's model is never mutated. A model in train mode is converted in eval mode, with a
    warning, because BN folding and dropout removal use eval semantics.

    Args:
        model: the trained ANN.

    Returns:
        The traced copy.

    Raises:
        UnsupportedOpsError: the model is not an nn.Module, or torch.fx cannot trace it.
    """
    if not isinstance(model, nn.Module):
        raise UnsupportedOpsError(
            f"dtif converts torch.nn.Module models, got {type(model).__name__}"
        )
    if model.training:
        warnings.warn(
            "the model is in train mode; dtif converts it in eval mode (BN running statistics, "
            "no dropout). Your model is left untouched.",
            stacklevel=4,  # trace <- prepare_ann <- convert <- the caller
        )
    clone = copy.deepcopy(model).eval()
    try:
        graph = _Tracer().trace(clone)
        return fx.GraphModule(clone, graph, type(clone).__name__)
    except Exception as err:  # noqa: BLE001 - any tracing failure is reported the same way
        raise UnsupportedOpsError(
            f"torch.fx could not trace {type(model).__name__}: {type(err).__name__}: {err}. "
            "dtif converts models whose forward has no data-dependent control flow; rewrite "
            "the branch with tensor ops, or fold it into a submodule of a supported type."
        ) from err
