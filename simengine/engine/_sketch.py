"""Log-spaced histogram quantile sketches (fixed memory, exactly mergeable).

A value ``v`` goes to one bin of a fixed grid shared by every metric:

* bin 0: ``v == 0`` (or not positive);
* bin 1: ``0 < v < LO`` (underflow, reported as 0);
* bin ``k >= 2``: ``LO * R**(k-2) <= v < LO * R**(k-1)``;
* the last bin: ``v >= LO * R**(NBINS-3)`` (overflow, reported as ``inf``).

A bin ``[a, a R)`` is reported by ``m = 2 a R / (1 + R)``, the point whose
largest relative distance to any value of the bin is smallest:
``|m - v| / v <= (R - 1) / (R + 1)``. With ``R = 1.01`` the bound is
``0.01 / 2.01 = 0.4975 %`` (``REL_ERROR``). Quantiles are the inverted-CDF
(lower) empirical quantiles: the sketch's ``q`` quantile is within
``REL_ERROR`` of ``numpy.quantile(x, q, method="inverted_cdf")``. Counts are
integers, so merging sketches (adding counts) is exact and order-free.

The grid spans ``1e-6 .. ~1e13``: it covers attainments and coverages (ratios
around 1) and revenues in any currency unit up to ten trillion.
"""

from __future__ import annotations

import decimal
import functools
import math

import numpy as np
import numpy.typing as npt

from simengine.engine._jit import jit

__all__ = [
    "INV_LOG_R",
    "LO",
    "NBINS",
    "REL_ERROR",
    "R",
    "bin_index",
    "bin_values",
    "hist_quantiles",
]

R = 1.01
LO = 1e-6
INV_LOG_R = 1.0 / math.log(R)
NBINS = 2 + (math.ceil(math.log(1e13 / LO) / math.log(R))) + 1
REL_ERROR = (R - 1.0) / (R + 1.0)


@functools.cache
def _powers() -> npt.NDArray[np.float64]:
    """``R**(k - 2)`` for every bin ``k``, each correctly rounded to float64 (read-only).

    Computed in decimal arithmetic (60 digits) from the exact value of the
    float ``R``, then rounded once: the same bits on every machine. A
    vectorised ``R ** k`` is not: NumPy dispatches ``power`` to SIMD code
    picked by the CPU (its AVX-512 routines differ from the C library's in
    the last bit for about one bin in twenty), which moved the reported
    quantiles, and so ``summary.csv``, from one machine to another.
    """
    with decimal.localcontext() as ctx:
        ctx.prec = 60
        r = decimal.Decimal(R)
        out = np.array([float(r ** (k - 2)) for k in range(NBINS)])
    out.setflags(write=False)
    return out


@jit
def bin_index(v: float) -> int:  # pragma: no cover - compiled
    """Bin of ``v`` on the shared grid (numba)."""
    if not v > 0.0:
        return 0
    if v < LO:
        return 1
    k = math.floor(math.log(v / LO) * INV_LOG_R) + 2
    if k >= NBINS - 1:
        return NBINS - 1
    if k < 2:
        return 2
    return k


def bin_values(integer: bool = False) -> npt.NDArray[np.float64]:
    """Return the value reported for each bin (see module docstring).

    Parameters
    ----------
    integer : bool
        Round to whole numbers (for counts): exact below 100, where every bin
        holds at most one integer.
    """
    a = LO * _powers()
    v = 2.0 * a * R / (1.0 + R)
    v[0] = 0.0
    v[1] = 0.0
    v[-1] = np.inf
    if integer:
        v[2:-1] = np.round(v[2:-1])
    return v


def hist_quantiles(
    counts: npt.NDArray[np.int64], values: npt.NDArray[np.float64], q: npt.ArrayLike
) -> npt.NDArray[np.float64]:
    """Inverted-CDF quantiles of histograms along the last axis.

    Parameters
    ----------
    counts : ndarray of int64, shape (..., nbins)
        Bin counts.
    values : ndarray of float64, shape (nbins,)
        The value reported for each bin.
    q : array_like of float
        Probabilities in (0, 1].

    Returns
    -------
    ndarray, shape (..., len(q))
        ``values[b]`` for the first bin ``b`` whose cumulative count reaches
        ``ceil(q n)`` (at least 1); NaN where ``n == 0``.
    """
    qs = np.atleast_1d(np.asarray(q, dtype=np.float64))
    cum = np.cumsum(counts, axis=-1)
    n = cum[..., -1:]
    rank = np.maximum(np.ceil(qs * n - 1e-9 * n), 1.0)  # shape (..., len(q))
    flat = cum.reshape(-1, cum.shape[-1])
    ranks = rank.reshape(-1, qs.size)
    out = np.empty(ranks.shape, dtype=np.float64)
    for i in range(flat.shape[0]):
        idx = np.searchsorted(flat[i], ranks[i], side="left")
        out[i] = values[np.minimum(idx, values.size - 1)]
        if flat[i, -1] == 0:
            out[i] = np.nan
    return out.reshape((*counts.shape[:-1], qs.size))
