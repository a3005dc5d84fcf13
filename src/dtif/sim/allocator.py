"""An opt-in glibc setting that keeps freed memory in the process, so simulations do not fault pages in.

A simulation allocates and frees the same chunk-sized tensors (convolution outputs, a few
MiB each) thousands of times. With glibc's defaults, blocks above the mmap threshold are
mapped and unmapped on every call, and freed memory at the top of the heap is handed back to
the system, so each new block faults its pages in again (docs/results.md measures the cost).

`keep_freed_memory` changes three `mallopt` parameters for the WHOLE PROCESS: every block
comes from the heap, not from a mapping of its own (M_MMAP_MAX = 0; M_MMAP_THRESHOLD =
32 MiB as well, glibc's largest), and up to 256 MiB of free heap is kept (M_TRIM_THRESHOLD).
The price is that the resident memory does not shrink after a run. The library never calls
it; the `dtif` command line and the benchmarks do, at start-up. It does nothing when the C
library is not glibc, when any of these is already set through glibc's environment variables
(MALLOC_MMAP_THRESHOLD_, MALLOC_TRIM_THRESHOLD_, MALLOC_MMAP_MAX_), or when
DTIF_KEEP_FREED_MEMORY=0.
"""

from __future__ import annotations

import ctypes
import functools
import os

MMAP_THRESHOLD_BYTES = 32 << 20
"""glibc's largest allowed M_MMAP_THRESHOLD on 64-bit systems."""
TRIM_THRESHOLD_BYTES = 256 << 20
ENV_SWITCH = "DTIF_KEEP_FREED_MEMORY"

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_MMAP_MAX = -4
_GLIBC_ENV = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_MAX_")


@functools.cache
def keep_freed_memory() -> bool:
    """Set glibc's mmap and trim parameters for this process, once (see the module docstring).

    Returns:
        True when the parameters are set (now or by an earlier call), False when skipped.
    """
    if os.environ.get(ENV_SWITCH, "1") == "0":
        return False
    if any(name in os.environ for name in _GLIBC_ENV):
        return False
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018 - present in glibc only
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    ok = mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1
    ok = ok and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES) == 1
    return ok and mallopt(_M_MMAP_MAX, 0) == 1
