"""The one structure the simulation engine reads: parameter draws and open units.

Both sources of parameters, a fitted posterior file and a planner's
assumptions file, are turned into a :class:`FunnelParameters`; the engine
never sees where they came from. Arrays are plain NumPy, indexed by position;
the label tuples give the canonical names (see ARCHITECTURE.md):

=======================  ==========================  =====================================
array                    shape                       meaning
=======================  ==========================  =====================================
``conversion``           (draw, cell, step)          P(a unit that entered stage s-1 ever
                                                     enters stage s)
``delay_mu``             (draw, cell, step)          log-scale mean of the step delay (days)
``delay_sigma``          (draw, cell, step)          log-scale sd of the step delay
``arrival_rate``         (draw, cell, entry_stage)   mean new units per week
``arrival_dispersion``   (draw, cell, entry_stage)   NB overdispersion alpha (var = m + a m²);
                                                     0 = Poisson
``arrival_trend``        (draw, cell, entry_stage)   weekly log growth of the rate from the
                                                     as-of date (0 = flat)
``deal_size_mu``         (draw, cell)                log-scale mean of a won deal's amount
``deal_size_sigma``      (draw, cell)                log-scale sd of a won deal's amount
``loss_mu``              (draw, cell, step)          optional: log-scale mean of the time
                                                     to loss of a unit that does not take
                                                     the step (days); None = never lost
``loss_sigma``           (draw, cell, step)          optional: its log-scale sd
``dormant``              (draw, cell, step)          optional (with ``loss_*``): share of the
                                                     units that do not take the step which
                                                     stay open for good (never lost); None = 0
``conversion_drift_sd``  (draw,)                     optional: sd of the logit conversion
                                                     random walk per drift period; the
                                                     forecast steps it ahead; None = 0
``conversion_cohort_sd`` (draw,)                     optional: sd of a drift period's cohort
                                                     effect on the logit conversion (one per
                                                     step, shared by the cells); each future
                                                     drift period draws its own; None = 0
``arrival_level_sd``     (draw, entry_stage)         optional: sd of the weekly random walk
                                                     of the log arrival level, one walk per
                                                     entry stage shared by its cells; the
                                                     forecast steps it ahead; None = 0
=======================  ==========================  =====================================

Uncertainty about the period ahead: the fitted conversion is the last drift
period's (the one running at the as-of date) and the arrival rate the level
of the last week before it. Both move on as random walks after the as-of
date: a unit entering on day ``t`` (from the as-of date) lives
``t // drift_period_days + 1`` drift periods after the last fitted one, so
its logit rate is the fitted one plus that many Normal(0,
``conversion_drift_sd``) steps, plus that drift period's cohort effect
(Normal(0, ``conversion_cohort_sd``), one per step, shared by every cell
and new for each period ahead); week ``w`` of arrivals has its level moved by
``w + 1`` Normal(0, ``arrival_level_sd``) steps. The steps are drawn per path
(:mod:`simengine.engine`); without the scales there is no drift ahead.

``entry_stage`` always spans every stage but the last (``stages[:-1]``), with
rate 0 where units do not enter.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace

import numpy as np
import numpy.typing as npt

__all__ = ["FunnelParameters", "OpenUnits"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class OpenUnits:
    """Units open at the as-of date: the pipeline the simulation starts from.

    Parameters
    ----------
    cell : ndarray of int64, shape (unit,)
        Cell index of each unit.
    stage : ndarray of int64, shape (unit,)
        Index of the last stage the unit has entered (never the last stage).
    age_days : ndarray of float64, shape (unit,)
        Days since it entered that stage, at the as-of date (>= 0).
    amount : ndarray of float64, shape (unit,)
        Its own deal value where known, else NaN.
    ids : tuple of str, optional
        The records' ids of the units, in the same order (the per-deal
        outlook labels its rows with them); None when unknown.
    """

    cell: IntArray
    stage: IntArray
    age_days: FloatArray
    amount: FloatArray
    ids: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.ids is not None and len(self.ids) != self.cell.shape[0]:
            raise ValueError(f"{len(self.ids)} ids for {self.cell.shape[0]} open units")

    @classmethod
    def empty(cls) -> OpenUnits:
        """No open units."""
        return cls(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0), np.zeros(0))

    def __len__(self) -> int:
        return int(self.cell.shape[0])


@dataclass(frozen=True)
class FunnelParameters:
    """Parameter draws for every cell and step, plus the open pipeline.

    Parameters
    ----------
    stages : tuple of str
        Ordered stages; ``stages[-1]`` is closed-won.
    cells : tuple of str
        Cell labels (``segment_by`` values joined with ``/``).
    segments : tuple of str
        Reporting segments, in report order.
    cell_segment : ndarray of int64, shape (cell,)
        Segment index of each cell.
    pipeline_stage : int
        Index of the first stage counted as pipeline.
    as_of : datetime.date
        The date the open units were taken (day 0 of a simulation).
    conversion, delay_mu, delay_sigma : ndarray, shape (draw, cell, step)
    arrival_rate, arrival_dispersion, arrival_trend : ndarray, shape (draw, cell, entry_stage)
    deal_size_mu, deal_size_sigma : ndarray, shape (draw, cell)
    loss_mu, loss_sigma : ndarray, shape (draw, cell, step), or None
        Time to loss of a unit that does not take a step (log-scale, days):
        the competing risk of the fitted cure model. Both or neither; None
        means a non-converter is never lost (it stays open), so an open unit
        aged ``a`` converts with ``p (1 - F(a)) / (1 - p F(a))``; with them,
        ``p (1 - F(a)) / (p (1 - F(a)) + (1 - p) (1 - G(a)))``.
    dormant : ndarray, shape (draw, cell, step), or None
        Share ``q`` of the non-converters of a step that never leave (stay
        open for good: the stale deals of a CRM); needs ``loss_*``. An open
        unit aged ``a`` then converts with ``p S_F(a) / (p S_F(a) + (1 - p)
        ((1 - q) S_G(a) + q))``. None means 0.
    conversion_drift_sd : ndarray, shape (draw,), or None
        Innovation sd of the logit conversion random walk per drift period
        (None = no drift ahead).
    conversion_cohort_sd : ndarray, shape (draw,), or None
        Sd of the logit offset shared by the units of one step that enter in
        one drift period (a cohort), drawn afresh for each period ahead
        (None = 0).
    drift_period_days : int
        Length of a drift period (days).
    arrival_level_sd : ndarray, shape (draw, entry_stage), or None
        Weekly innovation sd of the log arrival level (None = no drift ahead).
    open_units : OpenUnits
    source : str
        ``"posterior"`` or ``"assumptions"``.
    attrs : dict
        Provenance (hashes, versions, convergence flags).
    """

    stages: tuple[str, ...]
    cells: tuple[str, ...]
    segments: tuple[str, ...]
    cell_segment: IntArray
    pipeline_stage: int
    as_of: dt.date
    conversion: FloatArray
    delay_mu: FloatArray
    delay_sigma: FloatArray
    arrival_rate: FloatArray
    arrival_dispersion: FloatArray
    arrival_trend: FloatArray
    deal_size_mu: FloatArray
    deal_size_sigma: FloatArray
    loss_mu: FloatArray | None = None
    loss_sigma: FloatArray | None = None
    dormant: FloatArray | None = None
    conversion_drift_sd: FloatArray | None = None
    conversion_cohort_sd: FloatArray | None = None
    drift_period_days: int = 91
    arrival_level_sd: FloatArray | None = None
    open_units: OpenUnits = field(default_factory=OpenUnits.empty)
    source: str = "assumptions"
    attrs: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        d = self.n_draws
        c, s, e = len(self.cells), len(self.stages) - 1, len(self.stages) - 1
        expect = {
            "conversion": (d, c, s),
            "delay_mu": (d, c, s),
            "delay_sigma": (d, c, s),
            "arrival_rate": (d, c, e),
            "arrival_dispersion": (d, c, e),
            "arrival_trend": (d, c, e),
            "deal_size_mu": (d, c),
            "deal_size_sigma": (d, c),
        }
        if (self.loss_mu is None) != (self.loss_sigma is None):
            raise ValueError("loss_mu and loss_sigma go together: give both or neither")
        if self.loss_sigma is not None:
            expect |= {"loss_mu": (d, c, s), "loss_sigma": (d, c, s)}
        if self.dormant is not None:
            if self.loss_sigma is None:
                raise ValueError("dormant needs loss_mu and loss_sigma (the time to loss)")
            expect["dormant"] = (d, c, s)
        if self.conversion_drift_sd is not None:
            expect["conversion_drift_sd"] = (d,)
        if self.conversion_cohort_sd is not None:
            expect["conversion_cohort_sd"] = (d,)
        if self.arrival_level_sd is not None:
            expect["arrival_level_sd"] = (d, e)
        for name, shape in expect.items():
            got = getattr(self, name).shape
            if got != shape:
                raise ValueError(f"FunnelParameters.{name} has shape {got}, expected {shape}")
        if self.loss_sigma is not None and np.any(self.loss_sigma < 0):
            raise ValueError("log-scale sds must be >= 0")
        if self.dormant is not None and np.any((self.dormant < 0) | (self.dormant > 1)):
            raise ValueError("dormant shares must lie in [0, 1]")
        for name in ("conversion_drift_sd", "conversion_cohort_sd", "arrival_level_sd"):
            v = getattr(self, name)
            if v is not None and np.any(v < 0):
                raise ValueError(f"{name} must be >= 0")
        if self.drift_period_days < 1:
            raise ValueError("drift_period_days must be >= 1")
        if self.cell_segment.shape != (c,):
            raise ValueError("cell_segment must have one entry per cell")
        if np.any((self.conversion < 0) | (self.conversion > 1)):
            raise ValueError("conversion rates must lie in [0, 1]")
        if np.any(self.delay_sigma < 0) or np.any(self.deal_size_sigma < 0):
            raise ValueError("log-scale sds must be >= 0")
        if np.any(self.arrival_rate < 0) or np.any(self.arrival_dispersion < 0):
            raise ValueError("arrival rates and dispersions must be >= 0")

    @property
    def n_draws(self) -> int:
        """Number of parameter draws (paths cycle through them)."""
        return int(self.conversion.shape[0])

    @property
    def steps(self) -> tuple[str, ...]:
        """Step labels (the stage each step leads to)."""
        return self.stages[1:]

    @property
    def entry_stages(self) -> tuple[str, ...]:
        """Labels of the ``entry_stage`` axis: every stage but the last."""
        return self.stages[:-1]

    def with_arrays(self, **arrays: FloatArray) -> FunnelParameters:
        """Return a copy with some arrays replaced (used by scenarios)."""
        return replace(self, **arrays)  # type: ignore[arg-type]
