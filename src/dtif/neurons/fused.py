"""A fused IF time loop in C++ for CPU (opt-in): one pass over a chunk instead of five.

The eager IF loop (`dtif.neurons.module._run_if`) makes, per step, three passes over the
layer's tensor (V += x / lambda, n = [V >= 1], V -= n), and per chunk two more (the output
n * lambda, and the spike counts summed over the batch). This kernel does all of them in one
loop: for each channel (in parallel, torch's thread pool), sample and step it reads x once and
writes the output once, while V stays in the L1 cache. The same float operations run in the
same order (x / lambda, then V + z; a comparison; V - n; n * lambda; counts summed in
float32, exact for whole numbers), so the results are bit-identical to the eager loop (tested).

It covers IF with subtractive reset and one spike per step (the `if-*` methods), on
contiguous float32 CPU tensors; anything else runs the eager loop. It is compiled on first
use with `torch.utils.cpp_extension.load_inline` (a C++ compiler and ninja are needed; about
a minute on 2 cores, then cached in torch's extensions folder). Switch it on with
`enable()` or DTIF_FUSED=1; when it cannot be built, `enable()` raises and DTIF_FUSED=1 warns
once and runs the eager loop.
"""

from __future__ import annotations

import os
import warnings
from types import ModuleType
from typing import Any

import torch

from dtif.errors import DtifError

ENV_SWITCH = "DTIF_FUSED"

_SOURCE = r"""
#include <torch/extension.h>
#include <ATen/Parallel.h>

// x: [T, B, C, S] input (divided by div[c] when divide), or [B, C, S] when static (the
// same x at every step). v: [B, C, S] potential, updated. out: [T, B, C, S], receives
// n * scale[c]. counts: [T, C * S], receives the spikes summed over the batch.
void if_chunk(torch::Tensor x, torch::Tensor div, torch::Tensor scale, torch::Tensor v,
              torch::Tensor out, torch::Tensor counts, int64_t steps, bool is_static,
              bool divide) {
  const int64_t B = v.size(0), C = v.size(1), S = v.size(2);
  const float* xp = x.data_ptr<float>();
  const float* dp = div.data_ptr<float>();
  const float* sp = scale.data_ptr<float>();
  float* vp = v.data_ptr<float>();
  float* op = out.data_ptr<float>();
  float* cp = counts.data_ptr<float>();
  const int64_t step_stride = is_static ? 0 : B * C * S;
  at::parallel_for(0, C, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      const float d = dp[c], sc = sp[c];
      for (int64_t t = 0; t < steps; ++t) {
        float* cnt = cp + t * C * S + c * S;
        for (int64_t s = 0; s < S; ++s) cnt[s] = 0.0f;
      }
      for (int64_t b = 0; b < B; ++b) {
        float* vv = vp + (b * C + c) * S;
        for (int64_t t = 0; t < steps; ++t) {
          const float* __restrict__ xx = xp + t * step_stride + (b * C + c) * S;
          float* __restrict__ oo = op + t * B * C * S + (b * C + c) * S;
          float* __restrict__ cnt = cp + t * C * S + c * S;
          float* __restrict__ vw = vv;
          if (divide) {
            for (int64_t s = 0; s < S; ++s) {
              const float z = xx[s] / d;
              const float u = vw[s] + z;
              const float n = u >= 1.0f ? 1.0f : 0.0f;
              vw[s] = u - n;
              oo[s] = n * sc;
              cnt[s] += n;
            }
          } else {
            for (int64_t s = 0; s < S; ++s) {
              const float u = vw[s] + xx[s];
              const float n = u >= 1.0f ? 1.0f : 0.0f;
              vw[s] = u - n;
              oo[s] = n * sc;
              cnt[s] += n;
            }
          }
        }
      }
    }
  });
}
"""

_state: dict[str, Any] = {}


def _build() -> ModuleType:
    from torch.utils.cpp_extension import load_inline

    return load_inline(  # type: ignore[no-any-return]
        name="dtif_fused_if_v2",
        cpp_sources=_SOURCE,
        functions=["if_chunk"],
        extra_cflags=["-O3", "-march=native", "-ffp-contract=off"],
        verbose=False,
    )


def _module() -> ModuleType | None:
    """The compiled kernel, built once per process; None when it cannot be built."""
    if "module" not in _state:
        try:
            _state["module"] = _build()
        except Exception as err:  # noqa: BLE001 - any build failure falls back to eager
            _state["module"] = None
            _state["error"] = f"{type(err).__name__}: {err}"
    return _state["module"]  # type: ignore[no-any-return]


def enable(on: bool = True) -> None:
    """Use the fused IF loop from now on (this process), or stop using it.

    Raises:
        DtifError: it cannot be compiled here (no C++ compiler or ninja); the message says
            why.
    """
    if on and _module() is None:
        raise DtifError(
            f"the fused IF kernel could not be built: {_state.get('error')}. It needs a C++ "
            "compiler and ninja (pip install ninja); the eager loop works without them"
        )
    _state["enabled"] = on


def enabled() -> bool:
    """True when the fused loop is switched on (by `enable` or DTIF_FUSED=1) and built."""
    on = _state.get("enabled")
    if on is None:
        on = _state["enabled"] = os.environ.get(ENV_SWITCH, "0") == "1"
    if not on:
        return False
    if _module() is None:
        warnings.warn(
            f"{ENV_SWITCH}=1 but the fused IF kernel could not be built "
            f"({_state.get('error')}); using the eager loop",
            stacklevel=3,
        )
        _state["enabled"] = False
        return False
    return True


def applies(z: torch.Tensor, v: torch.Tensor, spikes: torch.Tensor) -> bool:
    """The kernel handles these tensors: contiguous float32 on CPU, batch-first."""
    return (
        z.device.type == "cpu"
        and z.dtype == torch.float32
        and v.dtype == torch.float32
        and z.is_contiguous()
        and v.is_contiguous()
        and spikes.is_contiguous()
        and v.dim() >= 2
    )


def if_chunk(
    z: torch.Tensor,
    divisor: torch.Tensor | None,
    scale: torch.Tensor,
    static: bool,
    v: torch.Tensor,
    spikes: torch.Tensor,
) -> torch.Tensor:
    """One chunk of IF steps (subtractive reset, binary spikes), fused.

    Args:
        z: the current [steps, B, C, ...], or [B, C, ...] when static; with a `divisor`, the
            layer's input x, divided by lambda per step.
        divisor: None, or lambda ([] or [C]).
        scale: lambda ([] or [C]), the payload of a spike.
        static: z is the same at every step.
        v: the potential [B, C, ...], updated in place.
        spikes: [steps, B, C, ...], receives n(t) * lambda (the layer's output).

    Returns:
        The spike counts per step and neuron, summed over the batch, [steps, C * ...].
    """
    module = _module()
    assert module is not None  # guarded by enabled()
    steps, batch, channels = spikes.shape[0], v.shape[0], v.shape[1]
    inner = v[0, 0].numel()
    per_channel = scale.expand(channels).contiguous().float()
    div = per_channel if divisor is None else divisor.reshape(-1).expand(channels).contiguous()
    counts = torch.empty((steps, channels * inner), dtype=torch.float32)
    module.if_chunk(
        z,
        div,
        per_channel,
        v.view(batch, channels, inner),
        spikes,
        counts,
        steps,
        static,
        divisor is not None,
    )
    return counts
