"""Property-based fuzzing of the converter: every random model converts right, or fails loudly.

Each example is a random tiny architecture (see `fuzz_models`): conv1d/conv2d and linear
stacks, BN in and out (random statistics, with and without affine), every ReLU spelling (in
place too, and as a bare statement), residual blocks with identity or 1x1-conv/linear + BN
shortcuts, nested blocks, average and adaptive pooling, max-pooling under each policy, seven
flatten spellings, dropout, clipped ReLUs, torch.cat, spatial means, scaling by constants,
grouped, strided and dilated convs, random input sizes and scales,
random weights; and sometimes ops with no spiking equivalent mixed in. The claim for each:

- it raises `dtif.UnsupportedOpsError` naming exactly the unsupported nodes (every node inside
  an injected op, and every max-pool under maxpool='error'), or
- with maxpool='avg' and a dilated max-pool, `dtif.ConversionError` saying so, or
- it converts; its reference ANN equals the model (maxpool='avg': the model with each max-pool
  swapped for average pooling, count_include_pad=False), and the SNN (IF, IF v0=0.5 or binary
  DTIF, MaxNorm calibrated on the same 32 inputs) simulated for T=1024 steps gives rates
  within `TOLERANCE` (4% of max |ANN output|; 5% with the max-pool gate) of the ANN's output,
  and predicts the ANN's class on >= 95% (90% with the gate) of the inputs whose two top ANN
  outputs are at least 2% of max |output| apart. Rate coding converges as 1/T with a constant
  that can be large (a layer fed spikes much larger than its threshold); such a case may meet
  the tolerance at T=4096 instead, if its error shrank. A model whose every output is a ReLU
  silent on all inputs is checked for its ANN only (there is no scale to measure against).

Anything else (another exception, a mismatch) fails. Over more than 10,000 examples the
largest error at T=1024 was ~3% of max |output| (deep nets, binary DTIF; IF ~1.5%, the gate
~1%), about 1 in 2,000 converted models needed T=4096, and agreement was always 100%.

The default run draws `DEFAULT_EXAMPLES` examples (derandomized: the same ones on every run)
and prints how many it tried (`pytest -s`); `-m slow` runs `SLOW_EXAMPLES` fresh ones.
"""

from __future__ import annotations

import collections
import time

import pytest
from hypothesis import HealthCheck, given, settings

from tests.convert.fuzz.fuzz_models import Case, cases, check_case

DEFAULT_EXAMPLES = 300
SLOW_EXAMPLES = 5000

COUNTS: collections.Counter[str] = collections.Counter()


def _body(case: Case) -> None:
    COUNTS["tried"] += 1
    COUNTS[check_case(case).kind] += 1


_HEALTH = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]


def _run(search: object, minimum: int) -> None:
    COUNTS.clear()
    start = time.perf_counter()
    search()  # type: ignore[operator]  # a hypothesis-wrapped function
    seconds = time.perf_counter() - start
    summary = ", ".join(f"{k} {v}" for k, v in sorted(COUNTS.items()) if k != "tried")
    print(f"\nconverter fuzzer: {COUNTS['tried']} examples in {seconds:.1f} s ({summary})")
    assert COUNTS["tried"] >= minimum, f"only {COUNTS['tried']} examples tried"
    assert COUNTS["converted"] and COUNTS["unsupported"], "the generator lost an outcome"


_default = settings(
    max_examples=DEFAULT_EXAMPLES,
    deadline=None,
    derandomize=True,  # the same examples on every run: CI is never flaky
    suppress_health_check=_HEALTH,
)(given(cases())(_body))

_slow = settings(
    max_examples=SLOW_EXAMPLES,
    deadline=None,
    suppress_health_check=_HEALTH,
)(given(cases())(_body))


def test_fuzz_converter() -> None:
    _run(_default, minimum=200)


@pytest.mark.slow
def test_fuzz_converter_long() -> None:
    _run(_slow, minimum=SLOW_EXAMPLES)
