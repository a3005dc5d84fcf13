"""The converted spiking network: a static prefix, a dynamic part, and the reference ANN."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import fx, nn

from dtif.convert.static import SplitGraph
from dtif.metrics.synops import count_macs, measure_fanout
from dtif.sim.context import TimeAware

if TYPE_CHECKING:
    from dtif.metrics.energy import EnergyModel
    from dtif.sim.engine import SimulationResult


@dataclass
class Profile:
    """What the network costs for one input shape, measured once and cached.

    Attributes:
        fanout: fan-out per output element of each time-aware layer, [1, ...].
        layer_sizes: neurons per sample of each time-aware layer.
        static_macs: MACs per sample of the static prefix (done once per inference).
        ann_macs: MACs per sample of the ANN.
        sample_step_bytes: working memory of one sample for one step (an estimate).
    """

    fanout: dict[str, torch.Tensor]
    layer_sizes: dict[str, int]
    static_macs: int
    ann_macs: int
    sample_step_bytes: int


class SpikingNetwork(nn.Module):
    """A spiking network converted from an ANN by `dtif.convert`.

    Attributes:
        static: the part before the first spiking layer, run once per input.
        dynamic: the rest, run on time-stacked tensors [steps*B, ...].
        ann: the folded reference ANN (BN folded, dropout removed, max-pool policy applied).
        input_shape: the shape of one input sample.
        meta: how it was made (neuron, norm, max-pool policy, scales).
    """

    def __init__(
        self,
        split: SplitGraph,
        ann: fx.GraphModule,
        input_shape: tuple[int, ...],
        meta: dict[str, Any],
    ) -> None:
        super().__init__()
        self.static = split.static
        self.dynamic = split.dynamic
        self.ann = ann
        self.input_shape = tuple(input_shape)
        self.meta = meta
        self._profiles: dict[tuple[str, tuple[int, ...]], Profile] = {}

    @property
    def split(self) -> SplitGraph:
        return SplitGraph(static=self.static, dynamic=self.dynamic)

    def layers(self) -> list[TimeAware]:
        """The time-aware layers (neurons, max-pool gates) in graph order."""
        modules = dict(self.dynamic.named_modules())
        out = []
        for node in self.dynamic.graph.nodes:
            mod = modules.get(str(node.target)) if node.op == "call_module" else None
            if isinstance(mod, TimeAware) and mod not in out:
                out.append(mod)
        return out

    def spiking_layer_names(self) -> list[str]:
        """Names of the layers that spike (neurons), in graph order."""
        from dtif.neurons.module import SpikingNeuron

        return [m.layer_name for m in self.layers() if isinstance(m, SpikingNeuron)]

    @property
    def device(self) -> torch.device:
        return next((p.device for p in self.parameters()), torch.device("cpu"))

    def profile(self, sample_shape: tuple[int, ...]) -> Profile:
        """Fan-out maps and MAC counts for inputs of one sample shape (cached)."""
        key = (str(self.device), tuple(sample_shape))
        if key not in self._profiles:
            dtype = next((p.dtype for p in self.parameters()), torch.float32)
            x = torch.zeros((1, *sample_shape), device=self.device, dtype=dtype)
            with torch.inference_mode():
                boundary = tuple(b.clone() for b in self.static(x))
            fanout = measure_fanout(self.dynamic, boundary)
            sizes = {name: f.numel() for name, f in fanout.items()}
            biggest = max([*sizes.values(), *(b.numel() for b in boundary), 1])
            self._profiles[key] = Profile(
                fanout=fanout,
                layer_sizes=sizes,
                static_macs=count_macs(self.static, x),
                ann_macs=count_macs(self.ann, x),
                sample_step_bytes=8 * 4 * biggest,
            )
        return self._profiles[key]

    def simulate(
        self,
        x: torch.Tensor,
        num_steps: int,
        *,
        time_chunk: int | None = None,
        batch_chunk: int | None = None,
        energy: EnergyModel | None = None,
        record: bool = True,
    ) -> SimulationResult:
        """Simulate for `num_steps` steps with direct (constant-current) input coding.

        See `dtif.sim.engine.simulate`.
        """
        from dtif.sim.engine import simulate

        return simulate(
            self,
            x,
            num_steps,
            time_chunk=time_chunk,
            batch_chunk=batch_chunk,
            energy=energy,
            record=record,
        )

    def forward(self, x: torch.Tensor, num_steps: int = 32) -> torch.Tensor:
        """The rate-decoded output after `num_steps`: accumulated output / num_steps, [B, ...]."""
        return self.simulate(x, num_steps, record=False).outputs[-1] / num_steps

    def _apply(self, fn: Any, recurse: bool = True) -> SpikingNetwork:
        self._profiles = {}
        return super()._apply(fn, recurse)  # type: ignore[return-value]  # nn.Module returns self
