"""Initialiser of the worker processes simengine spawns itself.

Kept free of heavy imports: a spawned process runs :func:`quiet_child` before
it unpickles its first task, and that unpickling is what imports PyMC and
PyTensor.
"""

from __future__ import annotations

import warnings

__all__ = ["quiet_child"]


def quiet_child() -> None:
    """Silence PyTensor's import-time BLAS notice, as the CLI and the demo do.

    PyTensor warns at import that it could not link to a BLAS library for its
    C backend; the fits sample Numba-compiled code, which does not use that
    backend, so the notice is not actionable here.
    """
    warnings.filterwarnings(
        "ignore", message="PyTensor could not link to a BLAS", category=UserWarning
    )
