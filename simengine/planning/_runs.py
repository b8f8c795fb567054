"""Engine runs kept in batches, and paired differences with Monte Carlo errors.

A planning run is an ordinary engine run
(:func:`simengine.engine.simulate.run_blocks`, blocks of ``paths /
batches`` paths, so its summary is bitwise that of :func:`simulate` with
that block size) that also keeps, per Monte Carlo batch, the few statistics
of :data:`KEYS` (``BlockSummary.batch_*``): memory stays at a couple of
block summaries whatever the number of runs. The blocks run wherever the
``block_map`` says (this process's threads, or Dask tasks): same blocks,
same merge order, same bytes.

Monte Carlo standard errors come from batch means: the batches are
independent sets of paths, so the spread of a statistic across batches
estimates its sampling variance. A batch is not a block: paths are grouped
by posterior draw (path ``i`` of ``n`` uses draw ``floor(i D / n)``), so a
block covers a contiguous range of draws and the spread of block means
would also hold the spread between draws, which the run's estimate (every
draw in equal share) does not have. Path ``i`` goes to batch ``i mod
batches`` instead, so every batch holds every draw's paths in the same
proportion (to one path) and the batch means estimate the error given the
draws, which is what a rerun with another seed changes. For two runs on the
same seed (common random numbers), batch ``b`` of both holds the same paths
with the same random streams, so the per-batch differences give the
standard error of the difference (:func:`paired`); the marginal batch
variances of each run give what the standard error would be with
independent streams (the variance of a difference of independent estimates
is the sum of their variances).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from simengine.config.plan import Plan
from simengine.engine import BlockSummary, Forecast, prepare
from simengine.engine._sketch import bin_values, hist_quantiles
from simengine.io.provenance import package_versions
from simengine.params import FunnelParameters

if TYPE_CHECKING:
    from simengine.engine.simulate import BlockMap

__all__ = ["KEYS", "Paired", "Run", "batch_se", "batch_stats", "paired", "run", "runner"]

KEYS: tuple[tuple[str, str], ...] = (
    ("attainment", "prob_hit"),
    ("revenue", "mean"),
    ("revenue", "p10"),
    ("revenue", "p50"),
    ("revenue", "p90"),
    ("time_to_target_days", "p50"),
)
"""(metric, stat) pairs kept per batch for batch-means errors."""


@dataclass(frozen=True)
class Run:
    """One run: the merged summary plus per-block statistics.

    Attributes
    ----------
    summary : pandas.DataFrame
        ``segment, metric, stat, value`` of all paths, as ``simulate`` gives.
    segments : tuple of str
        Segments then ``"total"`` (rows of ``batches``).
    batches : ndarray, shape (batch, segment, key)
        Each batch's value of each :data:`KEYS` statistic.
    weights : ndarray, shape (batch,)
        Paths per batch.
    paths, seed : int
    """

    summary: pd.DataFrame
    segments: tuple[str, ...]
    batches: npt.NDArray[np.float64]
    weights: npt.NDArray[np.float64]
    paths: int
    seed: int

    def value(self, segment: str, metric: str, stat: str) -> float:
        """One number of the merged summary."""
        s = self.summary
        sel = s[(s["segment"] == segment) & (s["metric"] == metric) & (s["stat"] == stat)]
        if len(sel) != 1:
            raise KeyError((segment, metric, stat))
        return float(sel["value"].iloc[0])

    def batch(self, segment: str, metric: str, stat: str) -> npt.NDArray[np.float64]:
        """Per-batch values of a :data:`KEYS` statistic."""
        return self.batches[:, self.segments.index(segment), KEYS.index((metric, stat))]


def batch_stats(summary: BlockSummary) -> npt.NDArray[np.float64]:
    """Return the :data:`KEYS` statistics of each batch kept in ``summary``.

    Computed as :class:`~simengine.engine.forecast.Forecast` computes them
    for the whole run (P(hit) from the count, the mean from the moments,
    quantiles from the sketches).

    Returns
    -------
    ndarray, shape (batch, segment, key)
    """
    counts = summary.batch_welford[..., 0]
    nd = summary.batch_ttt_hist.shape[-1] - 1
    rev_q = hist_quantiles(summary.batch_hist, bin_values(), [0.1, 0.5, 0.9])
    tv = np.append(np.arange(nd, dtype=np.float64), np.inf)
    ttt_p50 = hist_quantiles(summary.batch_ttt_hist, tv, [0.5])[..., 0]
    with np.errstate(invalid="ignore", divide="ignore"):
        columns = {
            ("attainment", "prob_hit"): summary.batch_hit / counts,
            ("revenue", "mean"): summary.batch_welford[..., 1],
            ("revenue", "p10"): rev_q[..., 0],
            ("revenue", "p50"): rev_q[..., 1],
            ("revenue", "p90"): rev_q[..., 2],
            ("time_to_target_days", "p50"): ttt_p50,
        }
    return np.stack([columns[key] for key in KEYS], axis=-1)


def run(
    params: FunnelParameters,
    plan: Plan,
    *,
    paths: int,
    seed: int,
    batches: int = 20,
    threads: int | None = None,
    block_map: BlockMap | None = None,
) -> Run:
    """Simulate and keep per-block statistics for Monte Carlo errors.

    Parameters
    ----------
    params : FunnelParameters
    plan : Plan
    paths : int
        Paths (>= ``batches``).
    seed : int
        Root seed; the same seed in two runs gives common random numbers.
    batches : int
        Monte Carlo batches (>= 2): path ``i`` is in batch ``i mod
        batches``; the blocks hold ``ceil(paths / batches)`` paths each.
    threads : int, optional
        Worker threads (default: the engine's default; in-process only).
    block_map : BlockMap, optional
        Where the blocks run (default: this process's threads), e.g. the
        Dask map of :func:`simengine.engine.distributed.cluster_block_map`. The
        blocks, their order and so the run are the same wherever they run.

    Returns
    -------
    Run
    """
    from simengine.engine.simulate import default_threads, run_blocks

    if batches < 2 or paths < batches:
        raise ValueError("need batches >= 2 and paths >= batches")
    prepared = prepare(params, plan)
    block_size = math.ceil(paths / batches)
    n_threads = max(1, threads if threads is not None else default_threads())
    merged = run_blocks(
        prepared, paths, seed, block_size, n_threads, block_map=block_map, batches=batches
    )
    meta: dict[str, Any] = {"seed": seed, "block_size": block_size, "versions": package_versions()}
    summary = Forecast.from_summary(merged, params, plan, meta).summary
    return Run(
        summary=summary,
        segments=(*params.segments, "total"),
        batches=batch_stats(merged),
        weights=merged.batch_welford[:, 0, 0].copy(),
        paths=paths,
        seed=seed,
    )


def runner(
    *,
    paths: int,
    seed: int,
    batches: int,
    threads: int | None = None,
    block_map: BlockMap | None = None,
) -> Callable[[FunnelParameters, Plan], Run]:
    """Return ``run`` with these options bound: every run of a study on the same blocks."""
    return functools.partial(
        run, paths=paths, seed=seed, batches=batches, threads=threads, block_map=block_map
    )


def batch_se(x: npt.NDArray[np.float64], w: npt.NDArray[np.float64]) -> float:
    """Batch-means standard error of the weighted mean of ``x``.

    ``sqrt(B / (B - 1) * sum(w_b^2 (x_b - xbar)^2)) / sum(w)``; for equal
    weights this is the usual ``sd(x) / sqrt(B)``. NaN if any ``x`` is not
    finite (e.g. a time to target never reached).
    """
    if not np.all(np.isfinite(x)):
        return float("nan")
    b = x.shape[0]
    xbar = float(np.sum(w * x) / np.sum(w))
    return float(math.sqrt(b / (b - 1) * float(np.sum(w**2 * (x - xbar) ** 2))) / np.sum(w))


@dataclass(frozen=True)
class Paired:
    """A difference between two runs and its Monte Carlo errors.

    Attributes
    ----------
    value, baseline, delta : float
        The statistic in each run and their difference.
    value_se : float
        Batch-means standard error of ``value``.
    se : float
        Standard error of ``delta`` on common random numbers (paired blocks).
    se_independent : float
        Its standard error had the runs used independent streams.
    """

    value: float
    baseline: float
    delta: float
    se: float
    se_independent: float
    value_se: float = float("nan")

    @property
    def variance_reduction(self) -> float:
        """``se_independent**2 / se**2`` (how many times fewer paths CRN needs)."""
        if not (self.se > 0 and math.isfinite(self.se_independent)):
            return float("nan")
        return self.se_independent**2 / self.se**2


def paired(a: Run, b: Run, segment: str, metric: str, stat: str) -> Paired:
    """Difference ``a - b`` of one statistic, with its errors (see module doc)."""
    va, vb = a.value(segment, metric, stat), b.value(segment, metric, stat)
    xa, xb = a.batch(segment, metric, stat), b.batch(segment, metric, stat)
    if xa.shape != xb.shape or not np.array_equal(a.weights, b.weights):
        raise ValueError("paired runs need the same paths and batches")
    with np.errstate(invalid="ignore"):
        delta = va - vb if math.isfinite(va) and math.isfinite(vb) else float("nan")
        se = batch_se(xa - xb, a.weights) if a.seed == b.seed else float("nan")
    se_a = batch_se(xa, a.weights)
    se_ind = math.sqrt(se_a**2 + batch_se(xb, b.weights) ** 2)
    if a.seed != b.seed:
        se = se_ind
    return Paired(va, vb, delta, se, se_ind, se_a)
