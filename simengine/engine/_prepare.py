"""Turn ``FunnelParameters`` + ``Plan`` into the flat arrays the kernels read.

Validation and every plan adjustment happen here, once, in Python; the
kernels only read the result.

Plan ``new_units`` (units in the period per segment and entry stage) replace
the arrival mean of that segment and stage for the whole simulation: the
weekly rate is ``units / (period_days / 7)``, split across the segment's cells
in proportion to each draw's own rates (equally if they are all zero), and
the arrival trend of those cells and stage is set to 0 (the plan gives the
level).

Drift ahead (see :mod:`simengine.params`): ``conv_drift_sd`` (draw,) and
``level_sd`` (draw, entry_stage) are the innovation sds and
``conv_cohort_sd`` (draw,) the sd of a future drift period's cohort effect
(zeros when the parameters have none; ``has_drift`` says whether either
conversion sd is positive, ``has_level`` whether any level sd is, and
without them the kernels draw nothing more, so their streams stay bitwise
those of a posterior without scales). ``n_drift`` is the number of drift
periods ahead that units entering before the horizon can reach.
Planned ``new_units`` fix the level of their cells and stage, so the level
walk is off there (``level_on`` = 0).

Dormant units: ``dormant`` (draw, cell, step), zeros without it
(``has_dormant`` = 0).

Time to loss: when the parameters carry ``loss_mu``/``loss_sigma`` (the
fitted competing risk), ``has_loss`` is 1 and ``leave_mu``/``leave_sigma`` are
those arrays: a unit that does not take a step is lost after a draw from
them. Without them ``has_loss`` is 0 and ``leave_mu``/``leave_sigma`` are the
step delay arrays (the documented assumption of an assumptions file: a
non-converter leaves the pipeline after a draw from the step's delay law).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from simengine.config.plan import Plan
from simengine.params import FunnelParameters

__all__ = ["PATH_MODELS", "Prepared", "prepare"]

PATH_MODELS = ("per_unit", "thinned")
"""The path models (same law, other random numbers): ``per_unit`` thins a week's
cohort with one binomial per step; ``thinned`` draws its outcome classes as
independent Poisson counts (see :mod:`simengine.engine.thinned`)."""

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Prepared:
    """Contiguous arrays and day offsets for one (parameters, plan) pair.

    Attributes hold the parameter arrays (C-contiguous float64, shapes as in
    :class:`~simengine.params.FunnelParameters`), the open units, and the day
    layout: ``sim_days``, ``start_off``, ``end_off``, ``week_days`` (day index of
    each week end in the period), ``targets`` (one per segment, then total).
    ``has_loss`` (0/1) says whether ``leave_mu``/``leave_sigma`` (shape (draw,
    cell, step)) are the fitted time to loss or the step delays. The open
    units are sorted by (cell, stage, age), stably; ``open_group`` holds the
    index of the first unit of each run of equal (cell, stage, age), then
    the number of units (the kernels compute a run's conditional law once).
    ``thinned`` (0/1) selects the path model (:data:`PATH_MODELS`).
    ``grouped_draws`` (0/1) selects how paths map to posterior draws: 1
    (default) path ``i`` of a run of ``n`` uses draw ``floor(i D / n)``,
    consecutive paths sharing a draw; 0 draw ``i mod D`` (the interleaved
    mapping before issue 17, kept so benchmarks can measure against it).
    """

    params: FunnelParameters
    plan: Plan
    conversion: FloatArray
    delay_mu: FloatArray
    delay_sigma: FloatArray
    arrival_rate: FloatArray
    arrival_dispersion: FloatArray
    arrival_trend: FloatArray
    deal_size_mu: FloatArray
    deal_size_sigma: FloatArray
    has_loss: int
    leave_mu: FloatArray
    leave_sigma: FloatArray
    cell_segment: IntArray
    entry_active: IntArray
    open_cell: IntArray
    open_stage: IntArray
    open_age: FloatArray
    open_amount: FloatArray
    pipeline_stage: int
    sim_days: int
    start_off: int
    end_off: int
    week_days: IntArray
    targets: FloatArray
    open_group: IntArray
    dormant: FloatArray
    has_dormant: int
    conv_drift_sd: FloatArray
    conv_cohort_sd: FloatArray
    has_drift: int
    drift_days: int
    n_drift: int
    level_sd: FloatArray
    has_level: int
    level_on: IntArray
    thinned: int = 0
    grouped_draws: int = 1

    @property
    def n_segments(self) -> int:
        """Reporting segments (without ``total``)."""
        return len(self.params.segments)

    @property
    def n_stages(self) -> int:
        """Funnel stages."""
        return len(self.params.stages)

    @property
    def n_dates(self) -> int:
        """Days from the period start to the horizon end."""
        return self.sim_days - self.start_off

    @property
    def n_streams(self) -> int:
        """Random streams per path (see ``_kernels``)."""
        c = len(self.params.cells)
        e = self.n_stages - 1
        return c * e * (3 * e + 2) + c + c * e + e + e


def _c(a: npt.ArrayLike, dtype: type = np.float64) -> npt.NDArray[Any]:
    return np.ascontiguousarray(np.asarray(a, dtype=dtype))


def prepare(params: FunnelParameters, plan: Plan, path_model: str = "per_unit") -> Prepared:
    """Check the plan against the parameters and flatten both for the kernels.

    Parameters
    ----------
    params : FunnelParameters
        Parameter draws and open units (day 0 = ``params.as_of``).
    plan : Plan
        Period, targets and planned new units.
    path_model : str
        One of :data:`PATH_MODELS` (default ``per_unit``).

    Returns
    -------
    Prepared

    Raises
    ------
    InputError
        Targets or planned units for segments or stages the parameters lack,
        or a plan whose as-of date differs from the parameters'.
    """
    from simengine.errors import InputError

    if path_model not in PATH_MODELS:
        raise ValueError(f"path_model must be one of {PATH_MODELS}, not {path_model!r}")
    plan.check_segments(params.segments, params.entry_stages)
    if plan.as_of != params.as_of:
        raise InputError.single(
            plan.path or "<plan>",
            f"the plan's as-of date must equal the parameters' as-of date {params.as_of}",
            column="as_of",
            value=plan.as_of.isoformat(),
        )
    loss_mu, loss_sigma = params.loss_mu, params.loss_sigma
    has_loss = loss_mu is not None and loss_sigma is not None
    for name in (
        "conversion",
        "delay_mu",
        "delay_sigma",
        "arrival_rate",
        "arrival_dispersion",
        "arrival_trend",
        "deal_size_mu",
        "deal_size_sigma",
        *(("loss_mu", "loss_sigma") if has_loss else ()),
    ):
        if not np.all(np.isfinite(getattr(params, name))):
            raise ValueError(f"FunnelParameters.{name} has non-finite values")
    ou = params.open_units
    if len(ou) and (not np.all(np.isfinite(ou.age_days)) or np.any(np.isinf(ou.amount))):
        raise ValueError("open units need finite ages and finite (or NaN = unknown) amounts")
    n_cells, n_steps = len(params.cells), len(params.stages) - 1
    if len(ou) and (
        ou.cell.min() < 0
        or ou.cell.max() >= n_cells
        or ou.stage.min() < 0
        or ou.stage.max() >= n_steps
        or not np.all(ou.age_days >= 0)
    ):
        raise ValueError(
            "open units must have a cell index in [0, n_cells), a stage index before the "
            "last stage and an age >= 0"
        )
    rate = np.array(params.arrival_rate, dtype=np.float64, copy=True)
    trend = np.array(params.arrival_trend, dtype=np.float64, copy=True)
    weeks_in_period = plan.period_days / 7.0
    level_on = np.ones((n_cells, n_steps), np.int64)
    for seg, per_stage in plan.new_units.items():
        g = params.segments.index(seg)
        cells = np.flatnonzero(params.cell_segment == g)
        for stage, units in per_stage.items():
            e = params.entry_stages.index(stage)
            weekly = units / weeks_in_period
            own = rate[:, cells, e]
            tot = own.sum(axis=1, keepdims=True)
            share = np.where(tot > 0, own / np.where(tot > 0, tot, 1.0), 1.0 / cells.size)
            rate[:, cells, e] = weekly * share
            trend[:, cells, e] = 0.0
            level_on[cells, e] = 0
    entry_active = (rate.max(axis=0) > 0).astype(np.int64)  # (cell, entry_stage)
    targets = np.array(
        [plan.targets[s] for s in params.segments] + [plan.total_target], dtype=np.float64
    )
    start_off, end_off = plan.start_offset, plan.end_offset
    order, open_group = _open_groups(ou.cell, ou.stage, ou.age_days)
    week_days = np.arange(start_off + 6, end_off + 1, 7, dtype=np.int64)
    n_draws = params.n_draws
    dormant = np.zeros((n_draws, n_cells, n_steps)) if params.dormant is None else params.dormant
    drift_sd = (
        np.zeros(n_draws) if params.conversion_drift_sd is None else params.conversion_drift_sd
    )
    cohort_sd = (
        np.zeros(n_draws) if params.conversion_cohort_sd is None else params.conversion_cohort_sd
    )
    level_sd = (
        np.zeros((n_draws, n_steps)) if params.arrival_level_sd is None else params.arrival_level_sd
    )
    for name, arr in (
        ("dormant", dormant),
        ("conversion_drift_sd", drift_sd),
        ("conversion_cohort_sd", cohort_sd),
        ("arrival_level_sd", level_sd),
    ):
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"FunnelParameters.{name} has non-finite values")
    drift_days = int(params.drift_period_days)
    return Prepared(
        params=params,
        plan=plan,
        conversion=_c(params.conversion),
        delay_mu=_c(params.delay_mu),
        delay_sigma=_c(params.delay_sigma),
        arrival_rate=_c(rate),
        arrival_dispersion=_c(params.arrival_dispersion),
        arrival_trend=_c(trend),
        deal_size_mu=_c(params.deal_size_mu),
        deal_size_sigma=_c(params.deal_size_sigma),
        has_loss=int(has_loss),
        leave_mu=_c(loss_mu if loss_mu is not None else params.delay_mu),
        leave_sigma=_c(loss_sigma if loss_sigma is not None else params.delay_sigma),
        cell_segment=_c(params.cell_segment, np.int64),
        entry_active=_c(entry_active, np.int64),
        open_cell=_c(np.asarray(ou.cell)[order], np.int64),
        open_stage=_c(np.asarray(ou.stage)[order], np.int64),
        open_age=_c(np.asarray(ou.age_days)[order]),
        open_amount=_c(np.asarray(ou.amount)[order]),
        pipeline_stage=int(params.pipeline_stage),
        sim_days=plan.sim_days,
        start_off=start_off,
        end_off=end_off,
        week_days=week_days,
        targets=targets,
        open_group=open_group,
        dormant=_c(dormant),
        has_dormant=int(has_loss and bool(np.any(dormant > 0))),
        conv_drift_sd=_c(drift_sd),
        conv_cohort_sd=_c(cohort_sd),
        has_drift=int(bool(np.any(drift_sd > 0) or np.any(cohort_sd > 0))),
        drift_days=drift_days,
        n_drift=max(1, (plan.sim_days - 1) // drift_days + 1),
        level_sd=_c(level_sd),
        has_level=int(bool(np.any(level_sd > 0))),
        level_on=_c(level_on, np.int64),
        thinned=int(path_model == "thinned"),
    )


def _open_groups(
    cell: npt.ArrayLike, stage: npt.ArrayLike, age: npt.ArrayLike
) -> tuple[IntArray, IntArray]:
    """Stable sort order by (cell, stage, age) and the start of each run of equal keys.

    Returns ``(order, starts)``; ``starts`` ends with the number of units, so
    run ``k`` is ``order[starts[k]:starts[k + 1]]`` (``starts == [0]`` when
    there are none).
    """
    c = np.asarray(cell, np.int64)
    s = np.asarray(stage, np.int64)
    a = np.asarray(age, np.float64)
    order = np.lexsort((a, s, c)).astype(np.int64)
    if order.size == 0:
        return order, np.zeros(1, np.int64)
    c, s, a = c[order], s[order], a[order]
    new = np.ones(order.size, bool)
    new[1:] = (c[1:] != c[:-1]) | (s[1:] != s[:-1]) | (a[1:] != a[:-1])
    starts = np.append(np.flatnonzero(new), order.size).astype(np.int64)
    return order, starts
