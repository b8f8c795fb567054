"""The one place that sets Numba jit options for the engine.

Every compiled function in :mod:`simengine.engine` is decorated with
:data:`jit` (serial kernels), :data:`jit_inline` (small serial functions
inlined into their callers) or :data:`jit_parallel` (kernels using
``numba.prange``). Options:

* ``cache=True``: compiled code is cached next to the module, so a second
  process does not recompile;
* ``nogil=True``: kernels release the GIL, so Python/dask threads can run
  blocks concurrently;
* ``error_model="numpy"``: division by zero gives ``inf``/``nan`` as in NumPy
  instead of raising (and keeps loops vectorisable);
* ``fastmath=False``: IEEE semantics, so results are bitwise reproducible
  across machines and block layouts (no reassociation of sums).

Dependency-aware cache
----------------------
Numba stamps a cached function with its *own* file's mtime and size only: a
kernel in ``_kernels.py`` that inlines ``_rng.uniform`` keeps running the old
``uniform`` from its cache after ``_rng.py`` changes (checked with numba 0.65).
To make that impossible, importing this module registers cache locators (ahead
of Numba's own, same cache directories) for functions defined in the
``simengine`` package or in the checkout's ``tests/`` and ``benchmarks/``;
their stamp is ``(mtime, size, digest)`` where ``digest`` is the SHA-256 of
every ``simengine/engine/**/*.py`` at import time. Any edit to any engine
source therefore invalidates every cached engine-dependent function.
``CACHE_DEPENDENCY_AWARE`` says whether the hook is active (it is skipped if
Numba's caching internals change or ``NUMBA_CACHE_LOCATOR_CLASSES`` is set).

Global arrays (the ziggurat, log-factorial and reciprocal tables of
:mod:`simengine.engine._rng`) are frozen into the compiled code as constants
and stored in the cache with it. They are built at import from constants in
the source, so the source digest covers them too; loading them from the cache
does not trigger a recompile (``benchmarks/engine_startup.py`` reports
``compiled_in_process: 0`` for a warm process).
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path
from typing import Any

import numba

__all__ = [
    "CACHE_DEPENDENCY_AWARE",
    "ENGINE_SOURCE_DIGEST",
    "JIT_OPTIONS",
    "claims",
    "jit",
    "jit_inline",
    "jit_parallel",
    "source_digest",
]

JIT_OPTIONS: dict[str, Any] = {
    "cache": True,
    "nogil": True,
    "error_model": "numpy",
    "fastmath": False,
}

jit = functools.partial(numba.njit, **JIT_OPTIONS)
"""``numba.njit`` with the engine's options (serial kernels)."""

jit_inline = functools.partial(numba.njit, inline="always", **JIT_OPTIONS)
"""``numba.njit`` with the engine's options, inlined into its callers at Numba IR level.

For small functions called per unit from the hot loops, taking scalars (or
straight-line code on one or two arrays, as :func:`~simengine.engine._kernels._pipe`).
Inlining does not make passing arrays free: the inlined arguments are
copies, each taking an atomic reference on its array, and Numba's
reference-count pruning removes them only in straight-line code. A per-unit
function with branches and calls that needs arrays is therefore a plain
:data:`jit` function that takes them one by one and loops over the units
itself (:func:`~simengine.engine._kernels._play_units`), so the references
are taken once per call, at its entry, where they are pruned
(``tests/engine/test_refcounts.py`` checks the compiled code). The numbers
are bitwise those of a call (same operations, same order).
"""

jit_parallel = functools.partial(numba.njit, parallel=True, **JIT_OPTIONS)
"""``numba.njit`` with the engine's options and ``parallel=True`` (``prange`` kernels)."""

_ENGINE_DIR = Path(__file__).resolve().parent
_PACKAGE_DIR = _ENGINE_DIR.parent


def source_digest(directory: Path) -> str:
    """SHA-256 over the relative paths and bytes of every ``*.py`` under ``directory``.

    Parameters
    ----------
    directory : pathlib.Path
        Directory to hash (recursively, in sorted path order).

    Returns
    -------
    str
        Hex digest.
    """
    h = hashlib.sha256()
    for path in sorted(directory.rglob("*.py")):
        h.update(path.relative_to(directory).as_posix().encode())
        h.update(b"\0")
        h.update(path.read_bytes())
        h.update(b"\0")
    return h.hexdigest()


ENGINE_SOURCE_DIGEST = source_digest(_ENGINE_DIR)
"""Digest of the engine's sources when this module was imported."""


def _claimed_roots() -> tuple[Path, ...]:
    roots = [_PACKAGE_DIR]
    checkout = _PACKAGE_DIR.parent
    if (checkout / "pyproject.toml").is_file():  # a source checkout, not site-packages
        roots += [checkout / "tests", checkout / "benchmarks"]
    return tuple(roots)


_CLAIMED_ROOTS = _claimed_roots()


def claims(py_file: str) -> bool:
    """Whether functions defined in ``py_file`` get the dependency-aware cache stamp.

    Parameters
    ----------
    py_file : str
        Source file of a jitted function.

    Returns
    -------
    bool
        True for files in the ``simengine`` package or the checkout's
        ``tests/`` and ``benchmarks/`` directories.
    """
    try:
        path = Path(py_file).resolve()
    except (OSError, RuntimeError):
        return False
    return any(path.is_relative_to(root) for root in _CLAIMED_ROOTS)


def _install_locators() -> bool:
    try:
        from numba.core import caching, config
    except ImportError:  # pragma: no cover - numba layout changed
        return False
    if getattr(config, "CACHE_LOCATOR_CLASSES", None):
        return False  # the user chose locators explicitly; respect that
    impl = getattr(caching, "CacheImpl", None) or getattr(caching, "_CacheImpl", None)
    names = ("UserProvidedCacheLocator", "InTreeCacheLocator", "UserWideCacheLocator")
    bases: list[Any] = [getattr(caching, n, None) or getattr(caching, "_" + n, None) for n in names]
    if impl is None or not hasattr(impl, "_locator_classes") or any(b is None for b in bases):
        return False  # pragma: no cover - numba internals changed; plain mtime stamps
    if any(getattr(c, "_simengine_locator", False) for c in impl._locator_classes):
        return True

    class _EngineStamp:
        _simengine_locator = True

        @classmethod
        def from_function(cls, py_func: Any, py_file: str) -> Any:
            if not claims(py_file):
                return None
            return super().from_function(py_func, py_file)  # type: ignore[misc]

        def get_source_stamp(self) -> Any:
            return (*super().get_source_stamp(), ENGINE_SOURCE_DIGEST)  # type: ignore[misc]

    ours = [type("Engine" + b.__name__, (_EngineStamp, b), {}) for b in bases]
    impl._locator_classes = [*ours, *impl._locator_classes]
    return True


CACHE_DEPENDENCY_AWARE = _install_locators()
"""True when engine-dependent functions are cached with the engine source digest."""
