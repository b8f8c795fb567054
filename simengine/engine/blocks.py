"""Blocks of paths and their mergeable summaries (what Dask scale-out calls).

A run of ``paths`` paths is cut into fixed-size blocks (:func:`plan_blocks`);
block ``b`` covers paths ``[b * block_size, min((b + 1) * block_size, paths))``.
:func:`run_block` simulates one block in one thread into a
:class:`BlockSummary` of fixed size (independent of the number of paths):

* exact integer counts (probabilities, the time-to-target day histogram);
* per-block Welford moments (count, mean, M2) merged in block order with
  Chan's formula (mean and sd of scalar metrics);
* per-block compensated (Kahan) sums of the cumulative revenue by day,
  merged in block order (the fan chart's mean line);
* log-spaced histogram sketches (see :mod:`simengine.engine._sketch`) for
  every quantile;
* optionally, per Monte Carlo batch (``Block.batches``), the few statistics
  batch-means errors read: revenue's sketch and moments, P(hit)'s count and
  the time-to-target histogram. A batch is not a block: path ``i`` goes to
  batch ``i mod batches`` (``_kernels._batch_of``), so every batch holds
  every posterior draw's paths in the same proportion, while a block holds
  a contiguous range of draws (paths are grouped by draw).

A block's summary depends only on (seed, block, inputs), never on which
thread or worker ran it; :func:`merge_summaries` merges in block order, so
the merged result is bitwise the same for any thread count or worker layout.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from simengine.engine import _rng
from simengine.engine._interface import KernelModel, kernel_model
from simengine.engine._kernels import block_kernel, paths_kernel
from simengine.engine._prepare import Prepared
from simengine.engine._sketch import NBINS

__all__ = [
    "SUMMARY_ARRAYS",
    "Block",
    "BlockSummary",
    "PathMetrics",
    "merge_summaries",
    "n_scalars",
    "plan_blocks",
    "run_block",
    "run_paths",
    "scalar_names",
]


@dataclass(frozen=True)
class Block:
    """A contiguous range of global path indices.

    Parameters
    ----------
    index : int
        Block number (merge order).
    first : int
        First global path index.
    n : int
        Number of paths.
    total : int
        Paths in the whole run (path ``i``'s posterior draw depends on it:
        ``floor(i n_draws / total)``); 0 (default) means ``first + n``.
    batches : int
        Monte Carlo batches of the whole run whose statistics the block's
        summary also keeps (``BlockSummary.batch_*``); 0 (default) for none.
    """

    index: int
    first: int
    n: int
    total: int = 0
    batches: int = 0

    @property
    def n_paths(self) -> int:
        """Paths in the whole run (``total``, or ``first + n`` when it is 0)."""
        return self.total if self.total > 0 else self.first + self.n


def plan_blocks(paths: int, block_size: int, batches: int = 0) -> list[Block]:
    """Cut ``paths`` paths into blocks of ``block_size`` (the last may be shorter).

    Parameters
    ----------
    paths : int
        Total paths (>= 1).
    block_size : int
        Paths per block (>= 1).
    batches : int
        Monte Carlo batches to keep statistics of (0: none; else 2 ..
        ``paths``).

    Returns
    -------
    list of Block
    """
    if paths < 1 or block_size < 1:
        raise ValueError("paths and block_size must be >= 1")
    if batches != 0 and not 2 <= batches <= paths:
        raise ValueError("batches must be 0 or between 2 and paths")
    return [
        Block(b, first, min(block_size, paths - first), paths, batches)
        for b, first in enumerate(range(0, paths, block_size))
    ]


def scalar_names(stages: Sequence[str]) -> list[str]:
    """Names of the per-path scalar metrics (axis ``k``), in kernel order.

    ``revenue`` (won in the period), ``attainment``, ``coverage`` (at the
    period start), ``won_deals``, ``entered_<stage>`` for every stage, then
    revenue won in the period by source: ``revenue_from_open`` (units open at
    the as-of date) and ``revenue_from_new_<entry_stage>`` for every entry
    stage (units entering there during the simulation). The sources add up
    to ``revenue`` path by path (up to floating-point rounding).

    Parameters
    ----------
    stages : sequence of str
        The funnel's stages (the entry stages are all but the last).

    Returns
    -------
    list of str
    """
    return [
        "revenue",
        "attainment",
        "coverage",
        "won_deals",
        *(f"entered_{s}" for s in stages),
        "revenue_from_open",
        *(f"revenue_from_new_{s}" for s in stages[:-1]),
    ]


def n_scalars(n_stages: int) -> int:
    """Length of the scalar axis ``k`` for ``n_stages`` stages (see :func:`scalar_names`)."""
    return 4 + 2 * n_stages


SUMMARY_ARRAYS = (
    "scal_hist",
    "welford",
    "hit",
    "within",
    "ttt_hist",
    "cum_hist",
    "cum_sum",
    "cum_comp",
    "wcov_hist",
    "batch_hist",
    "batch_welford",
    "batch_hit",
    "batch_ttt_hist",
)
"""The array fields of :class:`BlockSummary`, in declaration order."""


@dataclass
class BlockSummary:
    """Mergeable, fixed-size summary of some paths.

    Axes: ``g`` = segments then total; ``k`` = scalar metrics
    (:func:`scalar_names`: revenue, attainment, coverage, won_deals, entered
    per stage, revenue by source); ``i`` = days from the
    period start to the horizon end; ``w`` = week ends in the period;
    ``b`` = the run's Monte Carlo batches (length 0 when none are kept).

    Attributes
    ----------
    n : int
        Paths summarised.
    blocks : tuple of int
        Block indices merged, in order.
    scal_hist : ndarray of int64, (g, k, NBINS)
    welford : ndarray of float64, (g, k, 3)
        Count, mean and sum of squared deviations.
    hit, within : ndarray of int64, (g,)
        Paths with attainment >= 1; with attainment >= 0.95.
    ttt_hist : ndarray of int64, (g, i + 1)
        Paths reaching the target on day ``i`` from the start; last = never.
    cum_hist : ndarray of int64, (g, i, NBINS)
    cum_sum, cum_comp : ndarray of float64, (g, i)
        Compensated sum of cumulative revenue (sum, Kahan compensation).
    wcov_hist : ndarray of int64, (g, w, NBINS)
    batch_hist : ndarray of int64, (b, g, NBINS)
        Revenue's sketch per batch.
    batch_welford : ndarray of float64, (b, g, 3)
        Revenue's count, mean and sum of squared deviations per batch.
    batch_hit : ndarray of int64, (b, g)
        Paths with attainment >= 1 per batch.
    batch_ttt_hist : ndarray of int64, (b, g, i + 1)
        ``ttt_hist`` per batch.
    """

    n: int
    blocks: tuple[int, ...]
    scal_hist: npt.NDArray[np.int64]
    welford: npt.NDArray[np.float64]
    hit: npt.NDArray[np.int64]
    within: npt.NDArray[np.int64]
    ttt_hist: npt.NDArray[np.int64]
    cum_hist: npt.NDArray[np.int64]
    cum_sum: npt.NDArray[np.float64]
    cum_comp: npt.NDArray[np.float64]
    wcov_hist: npt.NDArray[np.int64]
    batch_hist: npt.NDArray[np.int64]
    batch_welford: npt.NDArray[np.float64]
    batch_hit: npt.NDArray[np.int64]
    batch_ttt_hist: npt.NDArray[np.int64]

    @classmethod
    def zeros(cls, prepared: Prepared, batches: int = 0) -> BlockSummary:
        """Return an empty summary shaped for ``prepared`` (and ``batches`` batches)."""
        g1 = prepared.n_segments + 1
        k = n_scalars(prepared.n_stages)
        nd = prepared.n_dates
        w = prepared.week_days.shape[0]
        return cls(
            n=0,
            blocks=(),
            scal_hist=np.zeros((g1, k, NBINS), np.int64),
            welford=np.zeros((g1, k, 3)),
            hit=np.zeros(g1, np.int64),
            within=np.zeros(g1, np.int64),
            ttt_hist=np.zeros((g1, nd + 1), np.int64),
            cum_hist=np.zeros((g1, nd, NBINS), np.int64),
            cum_sum=np.zeros((g1, nd)),
            cum_comp=np.zeros((g1, nd)),
            wcov_hist=np.zeros((g1, w, NBINS), np.int64),
            batch_hist=np.zeros((batches, g1, NBINS), np.int64),
            batch_welford=np.zeros((batches, g1, 3)),
            batch_hit=np.zeros((batches, g1), np.int64),
            batch_ttt_hist=np.zeros((batches, g1, nd + 1), np.int64),
        )

    @property
    def nbytes(self) -> int:
        """Memory held by the arrays."""
        return sum(getattr(self, f).nbytes for f in SUMMARY_ARRAYS)

    def merge_into(self, other: BlockSummary) -> None:
        """Merge ``other`` (the next blocks in order) into this summary, in place."""
        if self.batch_hist.shape != other.batch_hist.shape:
            raise ValueError("cannot merge summaries with different batch counts")
        for f in (
            "scal_hist",
            "hit",
            "within",
            "ttt_hist",
            "cum_hist",
            "wcov_hist",
            "batch_hist",
            "batch_hit",
            "batch_ttt_hist",
        ):
            getattr(self, f).__iadd__(getattr(other, f))
        _merge_moments(self.welford, other.welford)
        _merge_moments(self.batch_welford, other.batch_welford)
        # Neumaier sum of the two compensated sums: value = sum - comp.
        a = self.cum_sum
        b = other.cum_sum
        t = a + b
        err = np.where(np.abs(a) >= np.abs(b), (a - t) + b, (b - t) + a)
        self.cum_comp = self.cum_comp + other.cum_comp - err
        self.cum_sum = t
        self.n += other.n
        self.blocks = (*self.blocks, *other.blocks)


def _merge_moments(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]) -> None:
    """Merge moments ``b`` (count, mean, M2 on the last axis) into ``a`` in place (Chan)."""
    na, nb = a[..., 0], b[..., 0]
    n = na + nb
    safe = np.where(n > 0, n, 1.0)
    delta = b[..., 1] - a[..., 1]
    mean = a[..., 1] + delta * (nb / safe)
    m2 = a[..., 2] + b[..., 2] + delta * delta * (na * nb / safe)
    a[..., 0] = n
    a[..., 1] = mean
    a[..., 2] = m2


def _args(prepared: Prepared) -> tuple[KernelModel, int]:
    """Kernel arguments after ``(root, first[, n])``: the named model and the stream count."""
    return (kernel_model(prepared), prepared.n_streams)


def run_block(prepared: Prepared, block: Block, seed: int) -> BlockSummary:
    """Simulate one block and summarise it.

    Parameters
    ----------
    prepared : Prepared
        From :func:`simengine.engine.prepare`.
    block : Block
        Which paths.
    seed : int
        The run's seed (path ``i``'s streams derive from (seed, i, stream id)).

    Returns
    -------
    BlockSummary
    """
    out = BlockSummary.zeros(prepared, block.batches)
    out.n = block.n
    out.blocks = (block.index,)
    block_kernel(
        _rng.root_seed(seed),
        np.int64(block.first),
        np.int64(block.n),
        np.int64(block.n_paths),
        *_args(prepared),
        out.scal_hist,
        out.welford,
        out.hit,
        out.within,
        out.ttt_hist,
        out.cum_hist,
        out.cum_sum,
        out.cum_comp,
        out.wcov_hist,
        out.batch_hist,
        out.batch_welford,
        out.batch_hit,
        out.batch_ttt_hist,
    )
    return out


def merge_summaries(summaries: Sequence[BlockSummary]) -> BlockSummary:
    """Merge block summaries in the given order (pass them in block order).

    The first summary is copied, never modified.
    """
    if not summaries:
        raise ValueError("nothing to merge")
    first = summaries[0]
    out = BlockSummary(
        n=first.n,
        blocks=first.blocks,
        **{f: getattr(first, f).copy() for f in SUMMARY_ARRAYS},
    )
    for s in summaries[1:]:
        out.merge_into(s)
    return out


@dataclass(frozen=True)
class PathMetrics:
    """Per-path metrics of paths ``first .. first + n - 1`` (tests, diagnostics).

    Attributes
    ----------
    scalars : ndarray, (path, g, k)
        The metrics of :func:`scalar_names` (revenue, attainment, coverage,
        won_deals, entered per stage, revenue by source).
    time_to_target : ndarray, (path, g)
        Days from the start until the target is reached; ``inf`` if never.
    cum_revenue : ndarray, (path, g, i)
    week_coverage : ndarray, (path, g, w)
    """

    scalars: npt.NDArray[np.float64]
    time_to_target: npt.NDArray[np.float64]
    cum_revenue: npt.NDArray[np.float64]
    week_coverage: npt.NDArray[np.float64]


def run_paths(
    prepared: Prepared, first: int, n: int, seed: int, *, total: int | None = None
) -> PathMetrics:
    """Simulate paths ``first .. first + n - 1`` of a run of ``total`` and return their metrics.

    The same paths as in :func:`run_block` (same streams, and the same
    posterior draws when ``total`` is the run's path count: path ``i`` uses
    draw ``floor(i n_draws / total)``). ``total`` may be left out only when
    ``first`` is 0 (``run_paths(p, 0, n, seed)`` is the run of ``n``
    paths), so a part of a run cannot silently map to other draws. Memory
    grows with ``n``, so this is for tests and diagnostics, not production
    runs.
    """
    if total is None and first != 0:
        raise ValueError("run_paths: pass total (the run's path count) when first > 0")
    n_paths = first + n if total is None else total
    if n_paths < first + n:
        raise ValueError(f"total ({n_paths}) is smaller than first + n ({first + n})")
    g1 = prepared.n_segments + 1
    k = n_scalars(prepared.n_stages)
    scal = np.zeros((n, g1, k))
    ttt = np.zeros((n, g1), np.int64)
    cum = np.zeros((n, g1, prepared.n_dates))
    wcov = np.zeros((n, g1, prepared.week_days.shape[0]))
    paths_kernel(
        _rng.root_seed(seed),
        np.int64(first),
        np.int64(n_paths),
        *_args(prepared),
        scal,
        ttt,
        cum,
        wcov,
    )
    return PathMetrics(scal, np.where(ttt >= 0, ttt.astype(np.float64), np.inf), cum, wcov)
