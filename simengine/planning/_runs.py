"""Engine runs kept in batches, and paired differences with Monte Carlo errors.

A planning run is an ordinary engine run
(:func:`simengine.engine.simulate.run_blocks`) whose paths are cut into
``batches`` equal blocks (the engine's results do not depend on the block
layout: path ``i``'s randomness derives only from ``(seed, i, stream)``).
Each block's summary is reduced at once to a few statistics (:data:`KEYS`)
and merged, so memory stays at a couple of block summaries whatever the
number of runs. The blocks run wherever the ``block_map`` says (this
process's threads, or Dask tasks): same blocks, same merge order, same
bytes.

Monte Carlo standard errors come from batch means: the blocks are independent
sets of paths, so the spread of a statistic across blocks estimates its
sampling variance. For two runs on the same seed (common random numbers),
block ``b`` of both covers the same paths with the same random streams, so
the per-block differences give the standard error of the difference
(:func:`paired`); the marginal batch variances of each run give what the
standard error would be with independent streams (the variance of a
difference of independent estimates is the sum of their variances).
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
from simengine.io.provenance import package_versions
from simengine.params import FunnelParameters

if TYPE_CHECKING:
    from simengine.engine.simulate import BlockMap

__all__ = ["KEYS", "Paired", "Run", "batch_se", "paired", "run", "runner"]

KEYS: tuple[tuple[str, str], ...] = (
    ("attainment", "prob_hit"),
    ("revenue", "mean"),
    ("revenue", "p10"),
    ("revenue", "p50"),
    ("revenue", "p90"),
    ("time_to_target_days", "p50"),
)
"""(metric, stat) pairs kept per block for batch-means errors."""


@dataclass(frozen=True)
class Run:
    """One run: the merged summary plus per-block statistics.

    Attributes
    ----------
    summary : pandas.DataFrame
        ``segment, metric, stat, value`` of all paths, as ``simulate`` gives.
    segments : tuple of str
        Segments then ``"total"`` (rows of ``batches``).
    batches : ndarray, shape (block, segment, key)
        Each block's value of each :data:`KEYS` statistic.
    weights : ndarray, shape (block,)
        Paths per block.
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
        """Per-block values of a :data:`KEYS` statistic."""
        return self.batches[:, self.segments.index(segment), KEYS.index((metric, stat))]


def _block_stats(summary: BlockSummary, params: FunnelParameters, plan: Plan) -> np.ndarray:
    df = Forecast.from_summary(summary, params, plan, {"seed": 0, "block_size": 0}).summary
    idx = df.set_index(["segment", "metric", "stat"])["value"]
    segs = [*params.segments, "total"]
    return np.array([[idx[(g, m, s)] for m, s in KEYS] for g in segs], dtype=np.float64)


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
        Blocks to cut the paths into (>= 2).
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
    stats: list[np.ndarray] = []
    weights: list[float] = []

    def keep(part: BlockSummary) -> None:  # before the merge changes the first block
        stats.append(_block_stats(part, params, plan))
        weights.append(float(part.n))

    merged = run_blocks(
        prepared, paths, seed, block_size, n_threads, block_map=block_map, on_part=keep
    )
    meta: dict[str, Any] = {"seed": seed, "block_size": block_size, "versions": package_versions()}
    summary = Forecast.from_summary(merged, params, plan, meta).summary
    return Run(
        summary=summary,
        segments=(*params.segments, "total"),
        batches=np.stack(stats),
        weights=np.asarray(weights),
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
