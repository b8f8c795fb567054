"""PyTensor's import-time BLAS notice, silenced in one place.

Kept free of heavy imports: a process that simengine spawns runs
:func:`ignore_pytensor_blas_notice` as its initializer before it unpickles
its first task, and that unpickling is what imports PyMC and PyTensor. The
demo and the synthetic backtest call it too, before they import them.
"""

from __future__ import annotations

import warnings

__all__ = ["ignore_pytensor_blas_notice"]


def ignore_pytensor_blas_notice() -> None:
    """Ignore PyTensor's warning that it could not link to a BLAS library.

    The warning is about PyTensor's C backend; the fits sample
    Numba-compiled code, which does not use that backend, so the notice is
    not actionable here.
    """
    warnings.filterwarnings(
        "ignore", message="PyTensor could not link to a BLAS", category=UserWarning
    )
