"""ReLU passes: give every ReLU spelling its own module, then swap those for spiking neurons."""

from __future__ import annotations

from collections.abc import Callable

from torch import fx, nn

from dtif.convert.support import is_relu

RELU_META = "dtif.relu"


def canonicalize_relu(gm: fx.GraphModule) -> fx.GraphModule:
    """Give every ReLU call site its own nn.ReLU module, marked in `node.meta["dtif.relu"]`.

    Before: F.relu(x), torch.relu(x), x.relu(), x.clamp(min=0), a shared or in-place nn.ReLU.
    After: call_module `dtif_<node>` (a fresh nn.ReLU) at each site, so each becomes one
    spiking layer with its own state.
    """
    modules = dict(gm.named_modules())
    for node in list(gm.graph.nodes):
        if not is_relu(node, modules):
            continue
        target = f"dtif_{node.name}"
        gm.add_submodule(target, nn.ReLU())
        node.op, node.target, node.args, node.kwargs = "call_module", target, node.args[:1], {}
        node.meta[RELU_META] = node.name
    gm.graph.lint()
    gm.delete_all_unused_submodules()
    gm.recompile()
    return gm


def relu_sites(gm: fx.GraphModule) -> list[fx.Node]:
    """The ReLU nodes marked by `canonicalize_relu`, in graph order."""
    return [n for n in gm.graph.nodes if RELU_META in n.meta]


def replace_relu(
    gm: fx.GraphModule, make_neuron: Callable[[int, fx.Node], nn.Module]
) -> fx.GraphModule:
    """Swap each marked ReLU module for `make_neuron(index, node)`.

    Before: x -> ReLU -> y.  After: x -> SpikingNeuron -> y (same target name).
    """
    for i, node in enumerate(relu_sites(gm)):
        gm.add_submodule(str(node.target), make_neuron(i, node))
    gm.recompile()
    return gm
