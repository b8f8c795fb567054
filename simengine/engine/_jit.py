"""The one place that sets Numba jit options for the engine.

Every compiled function in :mod:`simengine.engine` is decorated with
:data:`jit` (serial kernels) or :data:`jit_parallel` (kernels using
``numba.prange``). Options:

* ``cache=True``: compiled code is cached next to the module, so a second
  process does not recompile;
* ``nogil=True``: kernels release the GIL, so Python/dask threads can run
  blocks concurrently;
* ``error_model="numpy"``: division by zero gives ``inf``/``nan`` as in NumPy
  instead of raising (and keeps loops vectorisable);
* ``fastmath=False``: IEEE semantics, so results are bitwise reproducible
  across machines and block layouts (no reassociation of sums).
"""

from __future__ import annotations

import functools
from typing import Any

import numba

__all__ = ["JIT_OPTIONS", "jit", "jit_parallel"]

JIT_OPTIONS: dict[str, Any] = {
    "cache": True,
    "nogil": True,
    "error_model": "numpy",
    "fastmath": False,
}

jit = functools.partial(numba.njit, **JIT_OPTIONS)
"""``numba.njit`` with the engine's options (serial kernels)."""

jit_parallel = functools.partial(numba.njit, parallel=True, **JIT_OPTIONS)
"""``numba.njit`` with the engine's options and ``parallel=True`` (``prange`` kernels)."""
