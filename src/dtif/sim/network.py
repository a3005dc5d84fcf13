"""`SpikingNetwork`: a static prefix, a dynamic part, and the reference ANN."""

from __future__ import annotations

from typing import Any

import torch
from torch import fx, nn

from dtif.metrics.energy import EnergyModel
from dtif.nn.context import TimeAware
from dtif.nn.neuron import SpikingNeuron
from dtif.sim.early_exit import EarlyExit
from dtif.sim.engine import simulate
from dtif.sim.profile import Profile, measure_profile
from dtif.sim.result import SimulationResult


class SpikingNetwork(nn.Module):
    """A spiking network converted from an ANN by `dtif.convert`.

    Attributes:
        static: the part before the first spiking layer, run once per input.
        dynamic: the rest, run on time-stacked tensors [steps*B, ...].
        ann: the folded reference ANN (BN folded, dropout removed, max-pool policy applied).
        input_shape: the shape of one input sample.
        meta: how it was made: "neuron" (the neuron parameters), "norm", "maxpool", and
            what calibration added.
    """

    def __init__(
        self,
        static: fx.GraphModule,
        dynamic: fx.GraphModule,
        ann: fx.GraphModule,
        input_shape: tuple[int, ...],
        meta: dict[str, Any],
    ) -> None:
        super().__init__()
        self.static = static
        self.dynamic = dynamic
        self.ann = ann
        self.input_shape = tuple(input_shape)
        self.meta = meta
        self._profiles: dict[tuple[str, tuple[int, ...]], Profile] = {}

    def layers(self) -> list[TimeAware]:
        """The time-aware layers (neurons, max-pool gates) in graph order."""
        modules = dict(self.dynamic.named_modules())
        out = []
        for node in self.dynamic.graph.nodes:
            mod = modules.get(str(node.target)) if node.op == "call_module" else None
            if isinstance(mod, TimeAware) and mod not in out:
                out.append(mod)
        return out

    def neurons(self) -> list[SpikingNeuron]:
        """The spiking layers, in graph order."""
        return [m for m in self.layers() if isinstance(m, SpikingNeuron)]

    def spiking_layer_names(self) -> list[str]:
        """Names of the layers that spike (neurons), in graph order."""
        return [m.layer_name for m in self.neurons()]

    @property
    def device(self) -> torch.device:
        return next((p.device for p in self.parameters()), torch.device("cpu"))

    def profile(self, sample_shape: tuple[int, ...]) -> Profile:
        """Fan-out maps and MAC counts for inputs of one sample shape (cached)."""
        key = (str(self.device), tuple(sample_shape))
        if key not in self._profiles:
            dtype = next((p.dtype for p in self.parameters()), torch.float32)
            x = torch.zeros((1, *sample_shape), device=self.device, dtype=dtype)
            self._profiles[key] = measure_profile(self.static, self.dynamic, self.ann, x)
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
        exit: EarlyExit | None = None,
    ) -> SimulationResult:
        """Simulate for `num_steps` steps with direct (constant-current) input coding.

        See `dtif.sim.engine.simulate`.
        """
        return simulate(
            self,
            x,
            num_steps,
            time_chunk=time_chunk,
            batch_chunk=batch_chunk,
            energy=energy,
            record=record,
            exit=exit,
        )

    def forward(self, x: torch.Tensor, num_steps: int = 32) -> torch.Tensor:
        """The rate-decoded output after `num_steps`: accumulated output / num_steps, [B, ...]."""
        return self.simulate(x, num_steps, record=False).outputs[-1] / num_steps

    def _apply(self, fn: Any, recurse: bool = True) -> SpikingNetwork:
        self._profiles = {}
        return super()._apply(fn, recurse)  # type: ignore[return-value]  # nn.Module returns self
