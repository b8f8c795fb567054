"""The thinned path model (issue 17): a week's new units drawn by outcome class.

The same law as the per-unit model, other random numbers. Selected with
``prepare(params, plan, path_model="thinned")`` (or ``simulate(...,
path_model="thinned")``); the per-unit model stays the default and the test
oracle. Both share the per-path set-up (:func:`~simengine.engine._kernels._path`:
streams, drift ahead, open units, totals), the play of one unit
(:func:`~simengine.engine._kernels._play_units`) and the metrics; they differ
only in how a week's new units of a (cell, entry stage) are split by outcome
(:func:`~simengine.engine._kernels._arrivals`, its ``thinned`` branch).

Why it is exact. Given its Gamma factor, week ``w``'s arrivals of cell ``c``
at entry stage ``e`` are Poisson(``m_w``), and each unit independently
enters exactly the stages ``e .. r`` with probability ``P_r = p_e ...
p_{r-1} (1 - p_r)`` (``P_S`` = the product of every step's rate; the week's
rates, with the drift ahead). By the thinning (colouring) theorem the class
counts ``N_e .. N_S`` are independent Poisson(``m_w P_r``). The per-unit
model draws the same counts as a chain of binomials; the thinned model draws
each class directly, winners first, and plays each unit of class ``r``
knowing ``r``: its day, its ``r - e`` delays, its amount and its time to
leave, as the per-unit model plays it. Which classes are played is fixed by
what an output reads:

* ``r = S`` (winners): always (revenue, the fan, time to target, sources,
  won deals, entries, pipeline);
* pipeline units (``r >= pipeline stage``) and units stopping after their
  entry stage: in weeks that start by the period's end (entries in the
  period, pipeline value at the period's start and week ends);
* units stopping at their entry stage before the pipeline: counted, not
  played (entries in the period: a binomial over the week's days inside it);
* a week that starts after the period's end: winners only.

So every output of the per-unit model (revenue, attainment, coverage, won
deals, ``entered_<stage>``, the revenue sources, time to target, the
cumulative revenue fan, the weekly coverage) has the same law in both
(``tests/engine/test_thinned.py``; ``benchmarks/thinned_agreement.py`` at
1,000,000 paths each).

Streams: the per-unit model's ids (:mod:`~simengine.engine._kernels`), so a
path's randomness depends only on (seed, path, stream id): bitwise the same
paths for any block layout or thread count, and common random numbers across
cells (the class counts of a (cell, entry stage) come from its own arrival
stream).
"""

from __future__ import annotations

from dataclasses import replace

from simengine.engine._prepare import Prepared
from simengine.engine.blocks import PathMetrics, run_paths

__all__ = ["thinned_paths"]


def thinned_paths(
    prepared: Prepared, first: int, n: int, seed: int, *, total: int | None = None
) -> PathMetrics:
    """Every metric of paths ``first .. first + n - 1`` under the thinned path model.

    Parameters
    ----------
    prepared : Prepared
        From :func:`simengine.engine.prepare` (either path model).
    first, n : int
        Paths.
    seed : int
        The run's seed.
    total : int, optional
        Paths in the whole run (as :func:`simengine.engine.run_paths`).

    Returns
    -------
    PathMetrics
        As :func:`simengine.engine.run_paths`.
    """
    return run_paths(replace(prepared, thinned=1), first, n, seed, total=total)
