"""Remove Dropout: an identity in eval mode."""

from __future__ import annotations

from torch import fx

from dtif.convert.support import DROPOUT_FUNCTIONS, DROPOUT_MODULES


def remove_dropout(gm: fx.GraphModule) -> fx.GraphModule:
    """Remove every dropout module and function call. Before: x -> dropout -> y. After: x -> y."""
    modules = dict(gm.named_modules())
    for node in list(gm.graph.nodes):
        is_dropout = (
            node.op == "call_module" and isinstance(modules[str(node.target)], DROPOUT_MODULES)
        ) or (node.op == "call_function" and node.target in DROPOUT_FUNCTIONS)
        if is_dropout:
            node.replace_all_uses_with(node.args[0])
            gm.graph.erase_node(node)
    gm.graph.lint()
    gm.delete_all_unused_submodules()
    gm.recompile()
    return gm
