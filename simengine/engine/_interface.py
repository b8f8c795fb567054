"""The named structures the Numba kernels read and write.

:class:`KernelModel` is everything a path depends on besides its seed: the
parameter arrays of :class:`~simengine.params.FunnelParameters` after the
plan's adjustments, the open units and the day layout, one field per
quantity, named as in ARCHITECTURE.md ("Kernel interface"). Numba compiles
a ``typing.NamedTuple`` of arrays and integers into a plain struct, so the
kernels read ``model.deal_size_mu[d, c]`` at the cost of a positional tuple
and a new parameter is one more field (add it here, fill it in
:func:`kernel_model`, read it in the kernels).

:class:`PathScratch` holds one thread's working arrays, reused from path to
path (built by :func:`simengine.engine._kernels._scratch`).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from simengine.engine._prepare import Prepared

__all__ = ["KernelModel", "PathScratch", "kernel_model"]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


class KernelModel(NamedTuple):
    """The kernels' inputs (shapes as in :class:`~simengine.params.FunnelParameters`).

    Axes: ``draw``, ``cell``, ``step`` (``stages[1:]``), ``entry_stage``,
    ``unit`` (open units, sorted by (cell, stage, age)), ``week`` (week ends
    in the period). Flags are 0/1 integers.
    """

    conversion: F64
    """(draw, cell, step) probability of taking the step."""
    delay_mu: F64
    """(draw, cell, step) log-scale mean of the step's delay (days)."""
    delay_sigma: F64
    """(draw, cell, step) log-scale sd of the step's delay."""
    arrival_rate: F64
    """(draw, cell, entry_stage) new units per week (after the plan's ``new_units``)."""
    arrival_dispersion: F64
    """(draw, cell, entry_stage) negative binomial dispersion of a week's arrivals."""
    arrival_trend: F64
    """(draw, cell, entry_stage) weekly log-growth of the arrival mean."""
    deal_size_mu: F64
    """(draw, cell) log-scale mean of a deal's amount."""
    deal_size_sigma: F64
    """(draw, cell) log-scale sd of a deal's amount."""
    has_loss: int
    """1 when ``leave_mu``/``leave_sigma`` are the fitted time to loss, else 0."""
    leave_mu: F64
    """(draw, cell, step) log-scale mean of the time to leave the pipeline."""
    leave_sigma: F64
    """(draw, cell, step) log-scale sd of the time to leave the pipeline."""
    cell_segment: I64
    """(cell,) reporting segment of each cell."""
    entry_active: I64
    """(cell, entry_stage) 1 when any draw has a positive arrival rate."""
    open_cell: I64
    """(unit,) cell of each open unit."""
    open_stage: I64
    """(unit,) stage index of each open unit at day 0."""
    open_age: F64
    """(unit,) days since the open unit entered its stage."""
    open_amount: F64
    """(unit,) known amount, NaN when unknown."""
    open_group: I64
    """Start of each run of equal (cell, stage, age) in the open units, then their count."""
    pipeline_stage: int
    """Index of the stage from which a unit counts in the pipeline."""
    sim_days: int
    """Days simulated, ``0 .. sim_days - 1`` (day 0 = the as-of date)."""
    start_offset: int
    """Day index of the period's first day."""
    end_offset: int
    """Day index of the period's last day."""
    week_days: I64
    """(week,) day index of each week end in the period."""
    targets: F64
    """(segment + 1,) revenue target per segment, then the total."""
    dormant: F64
    """(draw, cell, step) share of the step's non-converters that stay open for good."""
    has_dormant: int
    """1 when any ``dormant`` share is positive (with a time to loss)."""
    conversion_drift_sd: F64
    """(draw,) sd of the logit conversion walk per drift period ahead."""
    conversion_cohort_sd: F64
    """(draw,) sd of a drift period's cohort effect on the logit conversion (per step,
    shared by the cells, fresh for each period ahead)."""
    has_drift: int
    """1 when any ``conversion_drift_sd`` or ``conversion_cohort_sd`` is positive."""
    drift_days: int
    """Days per drift period."""
    n_drift: int
    """Drift periods ahead that units entering before the horizon can reach."""
    arrival_level_sd: F64
    """(draw, entry_stage) sd of the weekly log arrival level walk."""
    has_level: int
    """1 when any ``arrival_level_sd`` is positive."""
    level_walk_on: I64
    """(cell, entry_stage) 1 where the level walk applies (0 where the plan fixes the level)."""
    thinned: int
    """1 for the thinned path model (new units drawn by outcome class), 0 for the per-unit one."""
    grouped_draws: int
    """1: path ``i`` of ``n`` uses draw ``floor(i D / n)`` (paths grouped by draw, the
    default); 0: draw ``i mod D`` (the interleaved mapping, kept for benchmarks)."""


class PathScratch(NamedTuple):
    """One thread's working arrays for one path at a time (row ``G`` = total)."""

    states: npt.NDArray[np.uint64]
    """(stream, 4) random stream states."""
    revenue: F64
    """(segment + 1, day) revenue won per day."""
    pipeline_value: F64
    """(segment + 1, day + 1) pipeline value changes, index ``day + 1``."""
    pipeline_count: F64
    """(segment + 1, day + 1) pipeline unit count changes, index ``day + 1``."""
    entered: I64
    """(segment + 1, stage) units entering each stage in the period."""
    source_revenue: F64
    """(segment + 1, 1 + entry_stage) revenue won in the period by source: column 0 from
    the open units, column ``1 + e`` from new units entering at entry stage ``e``."""
    cohort: I64
    """(stage,) a week's cohort counts per stage."""
    tails: F64
    """(draw, run, 2) tail masses of the open units' runs (shape (0, 0, 2) without a cache)."""
    tails_done: npt.NDArray[np.uint8]
    """(draw,) which draws' tails are filled."""
    conversion_walk: F64
    """(cell + 1, step, drift period) the path's conversion rates ahead (row ``cell`` =
    C: the path's cohort effects, scratch of the walk)."""
    level_walk: F64
    """(entry_stage, week) the path's arrival level factors ahead."""
    grid: F64
    """(cell, 2, day) one draw's survival of the last step's delay (0) and leaving (1)
    laws at integer days (the open units' day grids; shape (0, 2, 0) when not built)."""
    grid_draw: I64
    """(1,) the draw ``grid`` holds, -1 before the first."""


def kernel_model(prepared: Prepared) -> KernelModel:
    """Return the kernels' named inputs for ``prepared`` (arrays shared, not copied).

    Parameters
    ----------
    prepared : Prepared
        From :func:`simengine.engine.prepare`.

    Returns
    -------
    KernelModel
    """
    p = prepared
    return KernelModel(
        conversion=p.conversion,
        delay_mu=p.delay_mu,
        delay_sigma=p.delay_sigma,
        arrival_rate=p.arrival_rate,
        arrival_dispersion=p.arrival_dispersion,
        arrival_trend=p.arrival_trend,
        deal_size_mu=p.deal_size_mu,
        deal_size_sigma=p.deal_size_sigma,
        has_loss=p.has_loss,
        leave_mu=p.leave_mu,
        leave_sigma=p.leave_sigma,
        cell_segment=p.cell_segment,
        entry_active=p.entry_active,
        open_cell=p.open_cell,
        open_stage=p.open_stage,
        open_age=p.open_age,
        open_amount=p.open_amount,
        open_group=p.open_group,
        pipeline_stage=p.pipeline_stage,
        sim_days=p.sim_days,
        start_offset=p.start_off,
        end_offset=p.end_off,
        week_days=p.week_days,
        targets=p.targets,
        dormant=p.dormant,
        has_dormant=p.has_dormant,
        conversion_drift_sd=p.conv_drift_sd,
        conversion_cohort_sd=p.conv_cohort_sd,
        has_drift=p.has_drift,
        drift_days=p.drift_days,
        n_drift=p.n_drift,
        arrival_level_sd=p.level_sd,
        has_level=p.has_level,
        level_walk_on=p.level_on,
        thinned=p.thinned,
        grouped_draws=p.grouped_draws,
    )
