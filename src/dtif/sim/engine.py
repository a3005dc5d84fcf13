"""The simulation engine: time-major, layer by layer, chunked over time and batch.

Every linear op runs once over a time-stacked tensor [steps*B, ...]; only the neuron
recurrence loops over t. The static prefix (up to the first spiking layer) runs once per
batch. One run to T_max gives the output at every T <= T_max.

Chunking rule (when `time_chunk` and `batch_chunk` are not given). A chunk is `tc` steps of
`bc` samples; the dynamic part runs once per chunk on [tc*bc, ...] tensors.

1. Memory budget: bc is the whole batch, unless bc x `Profile.sample_step_bytes` (the
   working memory of one sample for one step) exceeds the budget (a quarter of the free
   memory on CUDA, `DEFAULT_CPU_BUDGET_BYTES` on CPU); then bc = budget // sample_step_bytes
   and tc = 1. Otherwise tc = min(T, budget // (bc x sample_step_bytes)).
2. On CPU, also tc <= max(1, `CPU_CHUNK_BYTES` // (bc x bytes of the largest layer per
   sample)): each layer's stacked tensor stays within a few MiB (5 MiB). Measured on a
   2-core EPYC (2 MiB L2 per core, 32 MiB L3), batch 32, T = 64: one step per chunk costs
   up to 20% more than three (a Python call per layer and step), and chunks of 8 MiB or
   more per layer up to 50% more (the per-step recurrence streams from DRAM, and glibc hands
   freed chunk-sized blocks back to the OS, so that every chunk faults its pages in again;
   `simulate` now keeps freed memory in the process, see `dtif.sim.allocator`).
   On CUDA, large chunks keep the kernels few and big, so rule 1 alone applies.

So the working memory is bounded by the chunk, never by T: what grows with T is only the
output [T, B, ...] and a few counters per step. A spiking layer writes its spikes over its
input when nothing else reads it (`overwritable_inputs`), else into a chunk-sized buffer that
it keeps for the run (see `SpikingNeuron`).

Channels-last (opt-in). After `snn.to(memory_format=torch.channels_last)`, images are laid
out the same way and every chunk buffer follows its input's layout, so the convolutions run
in channels-last without conversions. Measured on this project's 2-core CPU
(`benchmarks/channels_last.py`): up to 1.2x faster (resnet20 at batch 32: no gain); the
results equal the default layout's up to the convolutions' float rounding (a prediction at
some T may change), so it is not the default.

Event-driven Linear layers. On CPU, every Linear layer of the dynamic part with at least
`SPARSE_MIN_WEIGHTS` weights runs as an `EventLinear`: when at most `SPARSE_MAX_DENSITY` of
its inputs in a chunk are nonzero (spikes are mostly zero), it multiplies only those (a CSR
product), else it runs dense. Its result equals the dense one up to float32 rounding (the
sums run in another order); smaller layers, and every layer on CUDA, always run dense.
"""

from __future__ import annotations

import copy
import operator
import warnings
import weakref
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import fx, nn

from dtif.errors import InputError
from dtif.metrics.energy import EnergyModel
from dtif.sim.allocator import keep_freed_memory
from dtif.sim.context import LayerRecord, RunContext, bind, is_channels_last
from dtif.sim.network import SpikingNetwork

DEFAULT_CPU_BUDGET_BYTES = 1 << 30
CPU_CHUNK_BYTES = 5 << 20
"""On CPU, the target size in bytes of one layer's tensor in one chunk (rule 2 above)."""
SPARSE_MAX_DENSITY = 0.04
"""An `EventLinear` takes the sparse path when at most this fraction of its inputs is
nonzero. Measured on CPU (one thread), 3136 -> 256 weights, 32 or 160 rows: the CSR product
beats the dense one below 5-6% nonzero inputs (3x faster at 0.5%), and is 1.3-2.7x slower at
10%. Set it to 0 to run every layer dense."""
SPARSE_MIN_WEIGHTS = 1 << 16
"""Linear layers with fewer weights always run dense (256 -> 10: dense wins at any density)."""


@dataclass
class SimulationResult:
    """The outcome of one simulation.

    Attributes:
        outputs: [T, B, ...] the output layer's input accumulated over steps 1..t.
        spikes: spike counts per step, summed over the batch, [T] by layer name.
        synops: [T] cumulative synaptic operations per sample (binary and graded).
        synops_graded: [T] the part of `synops` whose events cost a multiply.
        energy_pj: [T] cumulative energy per sample, in pJ.
        static_macs: MACs per sample of the analog first part, done once.
        layer_sizes: neurons per sample by layer name.
    """

    outputs: torch.Tensor
    spikes: dict[str, torch.Tensor]
    synops: torch.Tensor
    synops_graded: torch.Tensor
    energy_pj: torch.Tensor
    static_macs: int
    layer_sizes: dict[str, int] = field(default_factory=dict)

    @property
    def num_steps(self) -> int:
        return int(self.outputs.shape[0])

    def predictions(self) -> torch.Tensor:
        """[T, B] the predicted class at every step."""
        return self.outputs.flatten(2).argmax(dim=2)

    def correct(self, labels: torch.Tensor) -> torch.Tensor:
        """[T] the number of correct predictions at every step."""
        return (self.predictions() == labels.to(self.outputs.device)[None]).sum(dim=1)


def check_input(x: object, input_shape: tuple[int, ...]) -> torch.Tensor:
    """Validate a simulation input.

    Raises:
        InputError: not a float tensor [B, *input_shape], or not finite.
    """
    if not isinstance(x, torch.Tensor):
        raise InputError(f"input must be a tensor [B, {input_shape}], got {type(x).__name__}")
    if not x.is_floating_point():
        raise InputError(f"input must be a float tensor, got dtype {x.dtype}")
    if tuple(x.shape[1:]) != tuple(input_shape):
        raise InputError(
            f"input has shape {tuple(x.shape)}; expected [B, {', '.join(map(str, input_shape))}]"
        )
    if x.shape[0] == 0:
        raise InputError("input batch is empty")
    if not torch.isfinite(x).all():
        raise InputError("input contains NaN or Inf values; clean the data before simulating")
    return x


def _budget_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return max(free // 4, 1 << 28)
    return DEFAULT_CPU_BUDGET_BYTES


def choose_chunks(
    batch: int, num_steps: int, sample_step_bytes: int, budget_bytes: int
) -> tuple[int, int]:
    """(time_chunk, batch_chunk) such that chunk samples x steps x bytes fits the budget.

    Time is chunked first (so that the whole batch shares each step's kernels), then batch.
    """
    per_step = max(1, budget_bytes // max(sample_step_bytes, 1))
    if per_step >= batch:
        return max(1, min(num_steps, per_step // batch)), batch
    return 1, per_step


def cpu_time_chunk(
    batch_chunk: int, num_steps: int, layer_bytes: int, target_bytes: int = CPU_CHUNK_BYTES
) -> int:
    """Steps per chunk on CPU: the largest layer's chunk tensor stays about `target_bytes`.

    Args:
        batch_chunk: samples per chunk.
        num_steps: T.
        layer_bytes: bytes of the largest layer for one sample and one step.
        target_bytes: the target size of one layer's chunk tensor.

    Returns:
        max(1, min(T, target_bytes // (batch_chunk x layer_bytes))).
    """
    return max(1, min(num_steps, target_bytes // max(batch_chunk * layer_bytes, 1)))


class EventLinear(nn.Module):
    """A spike-fed Linear layer that multiplies only its nonzero inputs when they are few.

    With at most `SPARSE_MAX_DENSITY` nonzero inputs (2-D input, CPU, no autograd), y = b +
    x W^T is computed as a CSR x dense product, else as `linear(x)`. The two agree up to
    float32 rounding.

    Args:
        linear: the layer; shared, not copied.

    Attributes:
        calls: forward calls so far.
        sparse_calls: the calls that took the sparse path.
    """

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.linear = linear
        self.calls = 0
        self.sparse_calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        lin = self.linear
        if x.ndim == 2 and x.device.type == "cpu" and not x.requires_grad:
            nonzero = int(torch.count_nonzero(x))
            if nonzero <= SPARSE_MAX_DENSITY * x.numel():
                self.sparse_calls += 1
                return sparse_linear(x, lin.weight, lin.bias)
        return F.linear(x, lin.weight, lin.bias)


def sparse_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """b + x W^T from the nonzero entries of x only (CSR), for x: [N, in], weight [out, in]."""
    with warnings.catch_warnings():  # "Sparse CSR tensor support is in beta state"
        warnings.simplefilter("ignore", UserWarning)
        xs = x.to_sparse_csr()
        if bias is None:
            return torch.mm(xs, weight.t())
        return torch.addmm(bias, xs, weight.t())


_EVENT_GRAPHS: weakref.WeakKeyDictionary[fx.GraphModule, tuple[fx.Graph, fx.GraphModule]] = (
    weakref.WeakKeyDictionary()
)


def event_driven(dynamic: fx.GraphModule) -> fx.GraphModule:
    """`dynamic` with each Linear of >= `SPARSE_MIN_WEIGHTS` weights wrapped in `EventLinear`.

    The result is a new GraphModule over a copy of the graph that shares every module (and
    so the parameters and the time-aware layers) with `dynamic`, which is left untouched. It
    is cached per `dynamic` and graph; without such layers, `dynamic` itself is returned.
    """
    cached = _EVENT_GRAPHS.get(dynamic)
    if cached is not None and cached[0] is dynamic.graph:
        return cached[1]
    modules = dict(dynamic.named_modules())
    big = {
        str(n.target)
        for n in dynamic.graph.nodes
        if n.op == "call_module"
        and isinstance(modules[str(n.target)], nn.Linear)
        and modules[str(n.target)].weight.numel() >= SPARSE_MIN_WEIGHTS
    }
    result = dynamic
    if big:
        result = fx.GraphModule(dynamic, copy.deepcopy(dynamic.graph))
        for node in result.graph.nodes:
            if node.op == "call_module" and str(node.target) in big:
                name = "event_" + str(node.target).replace(".", "_")
                if not hasattr(result, name):
                    result.add_submodule(name, EventLinear(modules[str(node.target)]))
                node.target = name
        result.recompile()
    _EVENT_GRAPHS[dynamic] = (dynamic.graph, result)
    return result


_FRESH_MODULES = (
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.Linear,
    EventLinear,
    nn.AvgPool1d,
    nn.AvgPool2d,
    nn.AvgPool3d,
)
_FRESH_FUNCTIONS = (operator.add, torch.add)


def overwritable_inputs(dynamic: fx.GraphModule) -> frozenset[str]:
    """The spiking layers of `dynamic` that may write their spikes over their input tensor.

    That is safe when the input is made afresh on every call, by a convolution, a Linear
    layer, an average pool or an out-of-place addition (a residual sum), and the spiking
    layer is its only reader. A graph input (the static part's output, reused by every
    chunk), a view, or a tensor read twice never qualifies. Writing over the input saves each
    such layer its own chunk-sized spike buffer, and its writes land in memory that the step
    has just read (the speed-up on CPU is measured in docs/results.md). The results are
    bit-identical either way.
    """
    from dtif.neurons.module import SpikingNeuron

    modules = dict(dynamic.named_modules())
    names = set()
    for node in dynamic.graph.nodes:
        mod = modules.get(str(node.target)) if node.op == "call_module" else None
        if not isinstance(mod, SpikingNeuron) or len(node.args) != 1 or node.kwargs:
            continue
        src = node.args[0]
        if not isinstance(src, fx.Node) or len(src.users) != 1:
            continue
        if src.op == "call_module":
            fresh = isinstance(modules.get(str(src.target)), _FRESH_MODULES)
        else:
            fresh = (
                src.op == "call_function"
                and src.target in _FRESH_FUNCTIONS
                and "out" not in src.kwargs
            )
        if fresh:
            names.add(mod.layer_name)
    return frozenset(names)


def _stack(chunks: list[list[torch.Tensor]]) -> torch.Tensor:
    """Batch chunks of time chunks -> [T], summed over batch chunks."""
    return torch.stack([torch.cat(c) for c in chunks]).sum(dim=0)


def _channels_last(snn: SpikingNetwork) -> bool:
    """True when the network's convolutions were moved to channels-last by the user."""
    return any(is_channels_last(p) for p in snn.parameters())


def simulate(
    snn: SpikingNetwork,
    x: torch.Tensor,
    num_steps: int,
    *,
    time_chunk: int | None = None,
    batch_chunk: int | None = None,
    energy: EnergyModel | None = None,
    record: bool = True,
) -> SimulationResult:
    """Simulate `snn` for `num_steps` steps on the analog input `x` (direct coding).

    Args:
        snn: the converted network.
        x: [B, ...] analog input, constant in time.
        num_steps: T_max >= 1.
        time_chunk: steps simulated together (default: the chunking rule in the module
            docstring).
        batch_chunk: samples simulated together (default: as many as the budget allows).
        energy: the energy model (default `EnergyModel()`).
        record: record spikes, SOPs and energy (costs a little time).

    Returns:
        The outputs at every T <= num_steps, with spike, SOP and energy counts.

    Raises:
        InputError: a bad input, num_steps < 1, or chunk sizes < 1.
    """
    if not isinstance(num_steps, int) or num_steps < 1:
        raise InputError(f"num_steps must be an int >= 1, got {num_steps!r}")
    x = check_input(x, snn.input_shape)
    dtype = next((p.dtype for p in snn.parameters()), x.dtype)
    if x.dtype != dtype:
        raise InputError(f"input has dtype {x.dtype}, the network {dtype}; pass x.to({dtype})")
    energy = energy or EnergyModel()
    device = snn.device
    if device.type == "cpu":
        keep_freed_memory()  # else chunk-sized tensors fault their pages in on every call
    x = x.to(device)
    if x.dim() == 4 and _channels_last(snn):
        x = x.contiguous(memory_format=torch.channels_last)
    batch = x.shape[0]
    profile = snn.profile(tuple(x.shape[1:]))
    auto_t, auto_b = choose_chunks(
        batch, num_steps, profile.sample_step_bytes, _budget_bytes(device)
    )
    if device.type != "cuda":
        layer_bytes = x.element_size() * max(profile.layer_sizes.values(), default=1)
        auto_t = min(auto_t, cpu_time_chunk(auto_b, num_steps, layer_bytes))
    tc = time_chunk if time_chunk is not None else auto_t
    bc = batch_chunk if batch_chunk is not None else (auto_b if time_chunk is None else batch)
    if tc < 1 or bc < 1:
        raise InputError(f"time_chunk and batch_chunk must be >= 1, got {tc} and {bc}")
    layers = snn.layers()
    dynamic = event_driven(snn.dynamic) if device.type == "cpu" else snn.dynamic
    overwritable = overwritable_inputs(dynamic)
    outputs: torch.Tensor | None = None
    per_chunk: list[dict[str, LayerRecord]] = []
    with torch.inference_mode():
        for b0 in range(0, batch, bc):
            xb = x[b0 : b0 + bc]
            nb = xb.shape[0]
            boundary = snn.static(xb)
            ctx = RunContext(
                batch_size=nb,
                fanout=profile.fanout if record else None,
                overwritable=overwritable,
            )
            acc: torch.Tensor | None = None
            with bind(layers, ctx):
                for t0 in range(0, num_steps, tc):
                    steps = min(tc, num_steps - t0)
                    ctx.num_steps = steps
                    y = dynamic(*boundary)
                    if y.shape[0] == nb and steps > 1:
                        y = y.unsqueeze(0).expand(steps, *y.shape)
                    else:
                        y = y.reshape(steps, nb, *y.shape[1:])
                    # Carry the running sum in float64 and scan it with the chunk, so that
                    # every time chunking adds in the same order as one unchunked scan.
                    if acc is None:
                        acc = torch.zeros_like(y[0], dtype=torch.float64)
                    cum = torch.cumsum(torch.cat([acc[None], y.double()]), dim=0)[1:]
                    acc = cum[-1]
                    if outputs is None:
                        outputs = torch.empty(
                            (num_steps, batch, *y.shape[2:]), dtype=y.dtype, device=device
                        )
                    outputs[t0 : t0 + steps, b0 : b0 + nb] = cum
            per_chunk.append(ctx.records)
    assert outputs is not None  # noqa: S101 - batch >= 1 and num_steps >= 1
    return _result(outputs, per_chunk, profile.static_macs, profile.layer_sizes, batch, energy)


def _result(
    outputs: torch.Tensor,
    per_chunk: list[dict[str, LayerRecord]],
    static_macs: int,
    layer_sizes: dict[str, int],
    batch: int,
    energy: EnergyModel,
) -> SimulationResult:
    num_steps = outputs.shape[0]
    zeros = torch.zeros(num_steps, dtype=torch.float64, device=outputs.device)
    spikes: dict[str, torch.Tensor] = {}
    binary, graded = zeros.clone(), zeros.clone()
    names = list(per_chunk[0]) if per_chunk else []
    for name in names:
        recs = [chunk[name] for chunk in per_chunk]
        spikes[name] = _stack([r.spikes for r in recs]).double()
        sops = _stack([r.synops for r in recs]).double()
        if recs[0].graded:
            graded += sops
        else:
            binary += sops
    binary = torch.cumsum(binary, 0) / batch
    graded = torch.cumsum(graded, 0) / batch
    return SimulationResult(
        outputs=outputs,
        spikes=spikes,
        synops=binary + graded,
        synops_graded=graded,
        energy_pj=energy.snn_pj(static_macs, binary, graded),
        static_macs=static_macs,
        layer_sizes=layer_sizes,
    )
