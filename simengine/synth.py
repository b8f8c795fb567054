"""A synthetic CRM with known truth: the demo's data and the models' test bed.

:func:`generate` draws two years (by default) of funnel history for the spec
``models/demo.toml`` (stages ``mql → sql → opportunity → won``, cells
``segment/channel``) from a fully stated generative process, and returns the
canonical records as they were known on the as-of date, a plan for the
quarter that follows, and every true parameter (JSON-serialisable).
:func:`write` stores them as ``records.csv``, ``plan.toml`` and
``truth.json`` (atomically).

Generative process (all defaults in :class:`SynthConfig`):

* **Time.** Day 0 is the as-of date (a fixed anchor, a Monday, so outputs do
  not depend on today's date). History covers weeks ``j = -weeks .. -1``;
  week ``j`` holds days ``7j .. 7j+6``. Nothing in the records is dated on or
  after the as-of date: events at continuous time ``t >= 0`` are censored.
* **Arrivals.** Per cell and entry stage (``mql``: marketing-sourced,
  ``opportunity``: sales-sourced, entering directly with no mql/sql dates),
  the count in week ``j`` is negative binomial with mean
  ``m · exp(g · (j + 0.5))`` (``m``: mean per week at the as-of date, ``g``:
  weekly log growth, evaluated at the week's midpoint as the arrival model
  does) and variance ``mean + alpha · mean²`` (gamma-Poisson mixture;
  ``alpha = 0`` is Poisson). Each unit's day within its week is drawn from
  ``weekday_weights`` (history weeks start on a Monday), its time within the
  day uniformly.
* **Steps.** A unit at stage ``s-1`` converts to ``s`` with probability
  ``p[cell, step, period]`` after a lognormal delay
  ``exp(N(delay_mu, delay_sigma))`` days, else it is lost after a lognormal
  "decision" delay (``lost_at``). ``period`` is the drift period (of
  ``drift_period_days``, counted back from the as-of date) in which the unit
  entered stage ``s-1``: period ``k`` holds days ``[-(k+1)·P, -k·P)``, so
  period 0 is the last one before the as-of date, and its rate is the one
  that applies from the as-of date on (the *current* rate). Earlier periods
  follow a random walk on the logit scale backwards from the current rate
  (innovation sd ``drift_sd``).
* **Regime shifts** (optional, off by default). A level jump in arrivals:
  from week ``arrival_jump_week`` on (relative to the as-of date: negative
  in the history, 0 the plan period's first week) every arrival mean is
  multiplied by ``arrival_jump_factor``. A step change in a conversion rate:
  units that enter the from-stage of step ``conversion_step_stage`` (named
  by its to-stage) from week ``conversion_step_week`` on convert with the
  rate multiplied by ``conversion_step_factor``. Both apply to the history
  and to the plan period's expected figures, and are recorded in
  ``truth.json`` (``regime_shifts``); the other truth tables stay the
  baseline, before any shift. They draw no random numbers, so a shift
  changes the data but not the stream of draws.
* **Deal size.** Won units carry ``amount ~ lognormal(deal_size_mu,
  deal_size_sigma)`` per cell, rounded to cents; open and lost units have no
  amount.
* **Dates.** An event at continuous time ``t`` is dated ``as_of + floor(t)``.

The expected figures of the plan's period (used to set its targets) are
computed from the same truth by Monte Carlo: each open unit is continued
``expectation_reps`` times from the conditional law given that it is still
open at the as-of date (truncated lognormal delays, cure probability
``p S_c(a) / (p S_c(a) + (1-p) S_l(a))`` at age ``a``), and each cell and
entry stage's arrivals in the period by ``expectation_paths`` weighted paths.
Expected revenue is expected wins times the mean deal size
``exp(mu + sigma²/2)``.

One ``numpy.random.default_rng(seed)`` draws everything in a fixed order, so
the same seed and config give the same bytes.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy.special import expit, logit, ndtr, ndtri

from simengine.config.spec import cell_label

__all__ = [
    "ENTRY_STAGES",
    "SEGMENT_BY",
    "STAGES",
    "SynthConfig",
    "SynthResult",
    "generate",
    "write",
]

STAGES: tuple[str, ...] = ("mql", "sql", "opportunity", "won")
"""Stages of ``models/demo.toml``, in order."""

SEGMENT_BY: tuple[str, ...] = ("segment", "channel")
"""Cell columns of ``models/demo.toml``; the first is the reporting segment."""

ENTRY_STAGES: tuple[str, ...] = ("mql", "opportunity")
"""Stages where units enter: marketing-sourced (``mql``) and sales-sourced."""

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

_N_STAGES = len(STAGES)
_N_STEPS = _N_STAGES - 1
_ENTRY_IDX = np.array([STAGES.index(s) for s in ENTRY_STAGES], dtype=np.int64)


@dataclass(frozen=True)
class SynthConfig:
    """Every true parameter of the synthetic CRM (defaults are the demo's).

    Tables indexed ``[segment]`` follow ``segments``, ``[channel]`` follow
    ``channels`` and ``[step]`` the steps ``sql, opportunity, won``.

    Parameters
    ----------
    as_of : datetime.date
        The as-of date (day 0): the day after the last day of history, and the
        plan's start. Default 2027-01-04, a Monday.
    segments : tuple of str
        Reporting segments. Default ``("smb", "mid", "ent")``.
    channels : tuple of str
        Channels (second cell column). Default ``("inbound", "outbound")``.
    mql_per_week : tuple of tuple of float
        Mean new MQLs per week at the as-of date, ``[segment][channel]``.
        Default ``((150, 90), (90, 60), (40, 30))``: 460 a week in total, so
        about 6,000 in a 13-week quarter.
    opportunity_per_week : tuple of tuple of float
        Mean sales-sourced units entering directly at ``opportunity`` per week
        at the as-of date, ``[segment][channel]``. Default
        ``((1, 3), (1, 2), (0.5, 1.5))``: 4 / 3 / 2 a week per segment.
    mql_alpha : float
        Negative-binomial dispersion of weekly MQL counts (variance
        ``m + alpha m²``). Default 0.02 (sd 24.5 instead of 12.2 at m = 150).
    opportunity_alpha : float
        Dispersion of weekly sales-sourced counts. Default 0.25.
    mql_trend_per_week : tuple of float
        Weekly log growth of MQL arrivals, ``[channel]``. Default
        ``(0.003, 0.0015)`` (about +17 % / +8 % a year).
    opportunity_trend_per_week : float
        Weekly log growth of sales-sourced arrivals. Default 0.002.
    weekday_weights : tuple of float
        Relative arrival intensity Monday..Sunday. Default weekdays 1,
        weekend days 0.15.
    conversion : tuple of float
        Current step conversion rates before cell shifts, ``[step]``.
        Default ``(0.30, 0.65, 0.22)``.
    segment_logit_shift : tuple of tuple of float
        Logit shift of the current conversion, ``[segment][step]``. Default
        ``((0, 0, 0.05), (0, 0, 0), (-0.10, 0.10, -0.20))``.
    channel_logit_shift : tuple of tuple of float
        Logit shift of the current conversion, ``[channel][step]``. Default
        ``((0.05, 0.05, 0), (-0.15, -0.05, -0.10))``. With the defaults, the
        current rates run 25–31 % / 64–68 % / 17–23 % and a quarter brings
        about 255–270 wins.
    drift_sd : float
        Sd of the quarterly random walk of logit conversion (per cell and
        step, independent). Default 0.08; 0 switches drift off.
    drift_period_days : int
        Drift period length. Default 91 (as ``models/demo.toml``).
    delay_median_days : tuple of float
        Median step delay in days for segment factor 1, ``[step]``. Default
        ``(7, 14, 45)``.
    delay_sigma : tuple of float
        Log-sd of the step delays, ``[step]``. Default ``(0.5, 0.55, 0.6)``.
    segment_delay_factor : tuple of float
        Multiplier of the median delays per segment. Default
        ``(0.8, 1.0, 1.4)``.
    loss_median_days : tuple of float
        Median days from entering a stage to being lost there, for stages
        ``mql, sql, opportunity``. Default ``(21, 30, 60)``.
    loss_sigma : tuple of float
        Log-sd of those loss delays. Default ``(0.7, 0.7, 0.6)``.
    deal_median : tuple of float
        Median won amount per segment (inbound channel). Default
        ``(10_000, 30_000, 250_000)``.
    deal_sigma : tuple of float
        Log-sd of won amounts per segment. Default ``(0.45, 0.5, 0.6)``.
    channel_deal_shift : tuple of float
        Log shift of deal size per channel. Default ``(0.0, 0.1)``.
    period_weeks : int
        Length of the plan's period in weeks. Default 13 (a quarter).
    horizon_days : int
        The plan's ``horizon_days``. Default 180.
    target_factor : float
        Targets are expected period revenue times this, rounded to $1,000.
        Default 1.05.
    expectation_paths : int
        Weighted paths per cell and entry stage for the expected arrivals'
        contribution to period revenue. Default 20,000.
    expectation_reps : int
        Conditional continuations per open unit for the expected figures.
        Default 20.
    arrival_jump_week : int or None
        First week (relative to the as-of date; negative: in the history) of
        a level jump in every arrival mean. Default None: no jump.
    arrival_jump_factor : float
        The jump's multiplier of the arrival means. Default 1.
    conversion_step_week : int or None
        First week of a step change in one step's conversion rate, by the
        week a unit entered the step's from-stage. Default None: none.
    conversion_step_stage : str
        The step, named by its to-stage (``sql``, ``opportunity``, ``won``).
        Default ``"won"``.
    conversion_step_factor : float
        Multiplier of that step's rate from the week on; the shifted rate
        must stay below 1 in every cell and drift period. Default 1.
    """

    as_of: dt.date = dt.date(2027, 1, 4)
    segments: tuple[str, ...] = ("smb", "mid", "ent")
    channels: tuple[str, ...] = ("inbound", "outbound")
    mql_per_week: tuple[tuple[float, ...], ...] = ((150.0, 90.0), (90.0, 60.0), (40.0, 30.0))
    opportunity_per_week: tuple[tuple[float, ...], ...] = ((1.0, 3.0), (1.0, 2.0), (0.5, 1.5))
    mql_alpha: float = 0.02
    opportunity_alpha: float = 0.25
    mql_trend_per_week: tuple[float, ...] = (0.003, 0.0015)
    opportunity_trend_per_week: float = 0.002
    weekday_weights: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0, 1.0, 0.15, 0.15)
    conversion: tuple[float, ...] = (0.30, 0.65, 0.22)
    segment_logit_shift: tuple[tuple[float, ...], ...] = (
        (0.0, 0.0, 0.05),
        (0.0, 0.0, 0.0),
        (-0.10, 0.10, -0.20),
    )
    channel_logit_shift: tuple[tuple[float, ...], ...] = (
        (0.05, 0.05, 0.0),
        (-0.15, -0.05, -0.10),
    )
    drift_sd: float = 0.08
    drift_period_days: int = 91
    delay_median_days: tuple[float, ...] = (7.0, 14.0, 45.0)
    delay_sigma: tuple[float, ...] = (0.5, 0.55, 0.6)
    segment_delay_factor: tuple[float, ...] = (0.8, 1.0, 1.4)
    loss_median_days: tuple[float, ...] = (21.0, 30.0, 60.0)
    loss_sigma: tuple[float, ...] = (0.7, 0.7, 0.6)
    deal_median: tuple[float, ...] = (10_000.0, 30_000.0, 250_000.0)
    deal_sigma: tuple[float, ...] = (0.45, 0.5, 0.6)
    channel_deal_shift: tuple[float, ...] = (0.0, 0.1)
    period_weeks: int = 13
    horizon_days: int = 180
    target_factor: float = 1.05
    expectation_paths: int = 20_000
    expectation_reps: int = 20
    arrival_jump_week: int | None = None
    arrival_jump_factor: float = 1.0
    conversion_step_week: int | None = None
    conversion_step_stage: str = "won"
    conversion_step_factor: float = 1.0

    def __post_init__(self) -> None:
        n_seg, n_ch = len(self.segments), len(self.channels)
        shapes: dict[str, tuple[int, ...]] = {
            "mql_per_week": (n_seg, n_ch),
            "opportunity_per_week": (n_seg, n_ch),
            "mql_trend_per_week": (n_ch,),
            "weekday_weights": (7,),
            "conversion": (_N_STEPS,),
            "segment_logit_shift": (n_seg, _N_STEPS),
            "channel_logit_shift": (n_ch, _N_STEPS),
            "delay_median_days": (_N_STEPS,),
            "delay_sigma": (_N_STEPS,),
            "segment_delay_factor": (n_seg,),
            "loss_median_days": (_N_STEPS,),
            "loss_sigma": (_N_STEPS,),
            "deal_median": (n_seg,),
            "deal_sigma": (n_seg,),
            "channel_deal_shift": (n_ch,),
        }
        for name, shape in shapes.items():
            arr = np.asarray(getattr(self, name), dtype=np.float64)
            if arr.shape != shape:
                raise ValueError(f"SynthConfig.{name} must have shape {shape}, got {arr.shape}")
            if not np.all(np.isfinite(arr)):
                raise ValueError(f"SynthConfig.{name} must be finite")
        positive = (
            "delay_median_days",
            "delay_sigma",
            "segment_delay_factor",
            "loss_median_days",
            "loss_sigma",
            "deal_median",
            "deal_sigma",
        )
        for name in positive:
            if np.any(np.asarray(getattr(self, name)) <= 0):
                raise ValueError(f"SynthConfig.{name} must be positive")
        for name in ("mql_per_week", "opportunity_per_week", "weekday_weights"):
            if np.any(np.asarray(getattr(self, name)) < 0):
                raise ValueError(f"SynthConfig.{name} must be non-negative")
        if sum(self.weekday_weights) <= 0:
            raise ValueError("SynthConfig.weekday_weights must not all be 0")
        if not all(0 < p < 1 for p in self.conversion):
            raise ValueError("SynthConfig.conversion must be in (0, 1)")
        if self.mql_alpha < 0 or self.opportunity_alpha < 0 or self.drift_sd < 0:
            raise ValueError("SynthConfig dispersions and drift_sd must be >= 0")
        for name in ("drift_period_days", "period_weeks", "horizon_days"):
            if getattr(self, name) < 1:
                raise ValueError(f"SynthConfig.{name} must be >= 1")
        if self.expectation_paths < 1 or self.expectation_reps < 1:
            raise ValueError("SynthConfig expectation sizes must be >= 1")
        if self.target_factor <= 0:
            raise ValueError("SynthConfig.target_factor must be positive")
        if not (self.arrival_jump_factor > 0 and self.conversion_step_factor > 0):
            raise ValueError("SynthConfig regime-shift factors must be positive")
        if self.conversion_step_stage not in STAGES[1:]:
            raise ValueError(
                f"SynthConfig.conversion_step_stage must be one of {list(STAGES[1:])}, "
                f"got {self.conversion_step_stage!r}"
            )
        names = [*self.segments, *self.channels]
        if any(not n or "/" in n or n != n.strip() for n in names):
            raise ValueError("segment and channel names must be non-blank and contain no '/'")


@dataclass(frozen=True)
class SynthResult:
    """What :func:`generate` returns.

    Parameters
    ----------
    records : DataFrame
        Canonical records for ``models/demo.toml`` as known on the as-of date.
    plan : str
        Plan TOML text for the period starting on the as-of date.
    truth : dict
        Every true parameter and the expected period figures (JSON-ready).
    """

    records: pd.DataFrame
    plan: str
    truth: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class _Truth:
    """True parameters as arrays (cells in ``segment``-major order)."""

    cells: tuple[str, ...]
    cell_segment: IntArray  # (cell,)
    arrival_mean: FloatArray  # (cell, entry), per week at the as-of date
    arrival_alpha: FloatArray  # (cell, entry)
    arrival_trend: FloatArray  # (cell, entry), weekly log growth
    logit_by_period: FloatArray  # (cell, step, period), period 0 = current
    delay_mu: FloatArray  # (cell, step)
    delay_sigma: FloatArray  # (cell, step)
    loss_mu: FloatArray  # (step,) by from-stage
    loss_sigma: FloatArray  # (step,)
    deal_mu: FloatArray  # (cell,)
    deal_sigma: FloatArray  # (cell,)
    period_days: int
    step_shift: tuple[int, float, float] | None = None  # (step, from day, rate factor)
    arrival_jump: tuple[int, float] | None = None  # (from week, mean factor)

    def conversion_at(self, cell: IntArray, step: int | IntArray, t: FloatArray) -> FloatArray:
        """Conversion probability of ``step`` for units entering its from-stage at ``t``."""
        p = np.asarray(expit(self.logit_by_period[cell, step, self.period_of(t)]))
        if self.step_shift is not None:
            k, day, factor = self.step_shift
            p = p * np.where((np.asarray(step) == k) & (np.asarray(t) >= day), factor, 1.0)
        return p

    def arrival_factor(self, week: FloatArray) -> FloatArray:
        """Multiplier of the arrival means in weeks ``week`` (the level jump)."""
        w = np.asarray(week, dtype=np.float64)
        if self.arrival_jump is None:
            return np.ones_like(w)
        return np.where(w >= self.arrival_jump[0], self.arrival_jump[1], 1.0)

    def period_of(self, t: FloatArray) -> IntArray:
        """Drift period (0 = current) of continuous times ``t`` (days from as-of)."""
        day = np.floor(t)
        k = np.ceil(-day / self.period_days) - 1
        n = self.logit_by_period.shape[2]
        return np.clip(k, 0, n - 1).astype(np.int64)


def _build_truth(cfg: SynthConfig, rng: np.random.Generator, weeks: int) -> _Truth:
    n_seg, n_ch = len(cfg.segments), len(cfg.channels)
    cells = tuple(cell_label((s, c)) for s in cfg.segments for c in cfg.channels)
    seg_of = np.repeat(np.arange(n_seg, dtype=np.int64), n_ch)
    ch_of = np.tile(np.arange(n_ch, dtype=np.int64), n_seg)
    mean = np.stack(
        [
            np.asarray(cfg.mql_per_week, dtype=np.float64).ravel(),
            np.asarray(cfg.opportunity_per_week, dtype=np.float64).ravel(),
        ],
        axis=1,
    )
    alpha = np.empty_like(mean)
    alpha[:, 0] = cfg.mql_alpha
    alpha[:, 1] = cfg.opportunity_alpha
    trend = np.empty_like(mean)
    trend[:, 0] = np.asarray(cfg.mql_trend_per_week)[ch_of]
    trend[:, 1] = cfg.opportunity_trend_per_week
    current = (
        logit(np.asarray(cfg.conversion))[None, :]
        + np.asarray(cfg.segment_logit_shift)[seg_of]
        + np.asarray(cfg.channel_logit_shift)[ch_of]
    )
    n_periods = max(1, math.ceil(7 * weeks / cfg.drift_period_days))
    # Random walk backwards from the current (period 0) rate: draw 1 of the rng.
    z = rng.standard_normal((len(cells), _N_STEPS, n_periods - 1))
    walk = np.concatenate(
        [np.zeros((len(cells), _N_STEPS, 1)), np.cumsum(cfg.drift_sd * z, axis=2)], axis=2
    )
    log_factor = np.log(np.asarray(cfg.segment_delay_factor))[seg_of]
    delay_mu = np.log(np.asarray(cfg.delay_median_days))[None, :] + log_factor[:, None]
    delay_sigma = np.broadcast_to(np.asarray(cfg.delay_sigma), delay_mu.shape).copy()
    deal_mu = (
        np.log(np.asarray(cfg.deal_median))[seg_of] + np.asarray(cfg.channel_deal_shift)[ch_of]
    )
    deal_sigma = np.asarray(cfg.deal_sigma, dtype=np.float64)[seg_of]
    step_shift = None
    if cfg.conversion_step_week is not None:
        k = STAGES.index(cfg.conversion_step_stage) - 1
        top = float(np.max(expit(current[:, k, None] + walk[:, k, :])))
        if top * cfg.conversion_step_factor >= 1.0:
            raise ValueError(
                f"SynthConfig.conversion_step_factor {cfg.conversion_step_factor:g} takes the "
                f"{cfg.conversion_step_stage} rate {top:.3f} to 1 or above"
            )
        step_shift = (k, 7.0 * cfg.conversion_step_week, float(cfg.conversion_step_factor))
    jump = None
    if cfg.arrival_jump_week is not None:
        jump = (int(cfg.arrival_jump_week), float(cfg.arrival_jump_factor))
    return _Truth(
        cells=cells,
        cell_segment=seg_of,
        arrival_mean=mean,
        arrival_alpha=alpha,
        arrival_trend=trend,
        logit_by_period=current[:, :, None] + walk,
        delay_mu=delay_mu,
        delay_sigma=delay_sigma,
        loss_mu=np.log(np.asarray(cfg.loss_median_days, dtype=np.float64)),
        loss_sigma=np.asarray(cfg.loss_sigma, dtype=np.float64),
        deal_mu=deal_mu,
        deal_sigma=deal_sigma,
        period_days=cfg.drift_period_days,
        step_shift=step_shift,
        arrival_jump=jump,
    )


def _arrival_times(rng: np.random.Generator, week: IntArray, weekday_p: FloatArray) -> FloatArray:
    """Continuous arrival times (days from as-of) of units arriving in weeks ``week``."""
    day = rng.choice(7, size=week.size, p=weekday_p)
    return 7.0 * week + day + rng.random(week.size)


def _forward(
    rng: np.random.Generator, tr: _Truth, cell: IntArray, stage0: IntArray, t0: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Run units forward from stage ``stage0`` entered at ``t0`` to won or lost.

    Returns the continuous time each stage was entered (NaN if never), shape
    (unit, stage), and the time lost (NaN if not lost). Draws a fixed number of
    variates per step whatever the outcomes.
    """
    n = cell.size
    times = np.full((n, _N_STAGES), np.nan)
    times[np.arange(n), stage0] = t0
    lost = np.full(n, np.nan)
    cur = t0.astype(np.float64).copy()
    alive = np.ones(n, dtype=np.bool_)
    for k in range(_N_STEPS):
        u = rng.random(n)
        z = rng.standard_normal(n)
        at = alive & (stage0 <= k)
        conv = u < tr.conversion_at(cell, k, cur)
        log_d = np.where(
            conv,
            tr.delay_mu[cell, k] + tr.delay_sigma[cell, k] * z,
            tr.loss_mu[k] + tr.loss_sigma[k] * z,
        )
        new = cur + np.exp(log_d)
        up = at & conv
        down = at & ~conv
        times[up, k + 1] = new[up]
        lost[down] = new[down]
        cur = np.where(up, new, cur)
        alive &= ~down
    return times, lost


def _continue_open(
    rng: np.random.Generator, tr: _Truth, cell: IntArray, stage: IntArray, t_stage: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Continue units open at the as-of date (time 0) from their conditional law.

    A unit at ``stage`` since ``t_stage < 0`` has age ``a = -t_stage``; it
    converts with probability ``p S_c(a) / (p S_c(a) + (1 - p) S_l(a))`` after
    a delay drawn from the conversion lognormal truncated to ``> a`` (else is
    lost after the loss lognormal truncated to ``> a``), then runs forward.
    """
    n = cell.size
    u = rng.random(n)
    v = rng.random(n)
    step = np.minimum(stage, _N_STEPS - 1)  # stage < last for open units
    p = tr.conversion_at(cell, step, t_stage)
    log_a = np.log(np.maximum(-t_stage, 1e-9))
    mu_c, s_c = tr.delay_mu[cell, step], tr.delay_sigma[cell, step]
    mu_l, s_l = tr.loss_mu[step], tr.loss_sigma[step]
    f_c = ndtr((log_a - mu_c) / s_c)
    f_l = ndtr((log_a - mu_l) / s_l)
    num = p * (1.0 - f_c)
    den = num + (1.0 - p) * (1.0 - f_l)
    q = np.divide(num, den, out=np.zeros(n), where=den > 0)
    conv = u < q
    lo = np.where(conv, f_c, f_l)
    w = np.minimum(lo + (1.0 - lo) * v, 1.0 - 1e-15)
    log_d = np.where(conv, mu_c + s_c * ndtri(w), mu_l + s_l * ndtri(w))
    t_next = t_stage + np.exp(log_d)
    nxt = np.minimum(stage + 1, _N_STAGES - 1)
    times, _ = _forward(rng, tr, cell, nxt, t_next)
    times[~conv] = np.nan
    lost = np.where(conv, np.nan, t_next)
    return times, lost


def _expected_period(
    rng: np.random.Generator,
    cfg: SynthConfig,
    tr: _Truth,
    open_cell: IntArray,
    open_stage: IntArray,
    open_t: FloatArray,
) -> dict[str, Any]:
    """Return expected new units, wins and revenue in the period, per segment and total."""
    period_days = 7 * cfg.period_weeks
    n_cells = len(tr.cells)
    wins = np.zeros(n_cells)
    # (1) units open at the as-of date, each continued `reps` times.
    reps = cfg.expectation_reps
    if open_cell.size:
        c = np.repeat(open_cell, reps)
        times, _ = _continue_open(rng, tr, c, np.repeat(open_stage, reps), np.repeat(open_t, reps))
        won = times[:, -1]
        hit = (won >= 0) & (won < period_days)
        wins += np.bincount(c[hit], minlength=n_cells) / reps
    # (2) arrivals in the period's weeks, `m` weighted paths per cell and entry stage.
    m = cfg.expectation_paths
    j = np.arange(cfg.period_weeks, dtype=np.float64)
    weekday_p = np.asarray(cfg.weekday_weights) / sum(cfg.weekday_weights)
    new_units = np.zeros((n_cells, len(ENTRY_STAGES)))
    for ci in range(n_cells):
        for e in range(len(ENTRY_STAGES)):
            weekly = (
                tr.arrival_mean[ci, e]
                * np.exp(tr.arrival_trend[ci, e] * (j + 0.5))
                * tr.arrival_factor(j)
            )
            new_units[ci, e] = weekly.sum()
            if new_units[ci, e] == 0:
                continue
            week = rng.choice(cfg.period_weeks, size=m, p=weekly / weekly.sum())
            t0 = _arrival_times(rng, week.astype(np.int64), weekday_p)
            cell = np.full(m, ci, dtype=np.int64)
            stage0 = np.full(m, _ENTRY_IDX[e], dtype=np.int64)
            times, _ = _forward(rng, tr, cell, stage0, t0)
            won = times[:, -1]
            frac = np.count_nonzero((won >= 0) & (won < period_days)) / m
            wins[ci] += frac * new_units[ci, e]
    mean_deal = np.exp(tr.deal_mu + 0.5 * tr.deal_sigma**2)
    revenue = wins * mean_deal
    out: dict[str, Any] = {}
    for si, seg in enumerate(cfg.segments):
        sel = tr.cell_segment == si
        out[seg] = {
            "revenue": float(revenue[sel].sum()),
            "won_deals": float(wins[sel].sum()),
            **{f"new_{s}": float(new_units[sel, e].sum()) for e, s in enumerate(ENTRY_STAGES)},
        }
    out["total"] = {
        "revenue": float(revenue.sum()),
        "won_deals": float(wins.sum()),
        **{f"new_{s}": float(new_units[:, e].sum()) for e, s in enumerate(ENTRY_STAGES)},
    }
    return out


def _dates(as_of: dt.date, t: FloatArray) -> npt.NDArray[np.datetime64]:
    """``as_of + floor(t)`` days as ``datetime64[ns]``; NaT where ``t`` is NaN."""
    missing = np.isnan(t)
    days = np.where(missing, 0.0, np.floor(t)).astype(np.int64)
    out = (np.datetime64(as_of, "D") + days).astype("datetime64[ns]")
    out[missing] = np.datetime64("NaT")
    return out


def _plan_text(cfg: SynthConfig, seed: int, targets: dict[str, float]) -> str:
    end = cfg.as_of + dt.timedelta(days=7 * cfg.period_weeks - 1)
    lines = [
        f"# Plan for the {cfg.period_weeks} weeks after the synthetic history "
        f"(simengine synth, seed {seed}).",
        f"# Targets: the truth's expected period revenue x {cfg.target_factor:g}, "
        "rounded to $1,000 (see truth.json).",
        f'name = "synth-{seed}"',
        f"start = {cfg.as_of.isoformat()}",
        f"end = {end.isoformat()}",
        f"as_of = {cfg.as_of.isoformat()}",
        f"horizon_days = {cfg.horizon_days}",
        "",
        "[targets]",
        *(f"{seg} = {int(v)}" for seg, v in targets.items()),
        "",
    ]
    return "\n".join(lines)


def _cell_table(tr: _Truth, values: FloatArray, labels: tuple[str, ...]) -> dict[str, Any]:
    return {
        cell: {lab: float(values[ci, j]) for j, lab in enumerate(labels)}
        for ci, cell in enumerate(tr.cells)
    }


def _shifts_dict(cfg: SynthConfig) -> dict[str, Any]:
    """Return the regime shifts, with the first day each applies to (``null``: none)."""
    out: dict[str, Any] = {"arrival_jump": None, "conversion_step": None}
    if cfg.arrival_jump_week is not None:
        out["arrival_jump"] = {
            "week": cfg.arrival_jump_week,
            "from": (cfg.as_of + dt.timedelta(days=7 * cfg.arrival_jump_week)).isoformat(),
            "factor": cfg.arrival_jump_factor,
            "applies_to": "every arrival mean (all cells and entry stages) from that week on",
        }
    if cfg.conversion_step_week is not None:
        out["conversion_step"] = {
            "week": cfg.conversion_step_week,
            "from": (cfg.as_of + dt.timedelta(days=7 * cfg.conversion_step_week)).isoformat(),
            "step": cfg.conversion_step_stage,
            "factor": cfg.conversion_step_factor,
            "applies_to": "the step's rate (every cell and drift period) for units entering "
            "its from-stage on or after that day",
        }
    return out


def _truth_dict(
    cfg: SynthConfig,
    tr: _Truth,
    seed: int,
    weeks: int,
    expected: dict[str, Any],
    targets: dict[str, float],
) -> dict[str, Any]:
    steps = STAGES[1:]
    n_periods = tr.logit_by_period.shape[2]
    periods = []
    for k in range(n_periods - 1, -1, -1):  # oldest first
        start = cfg.as_of - dt.timedelta(days=(k + 1) * tr.period_days)
        end = cfg.as_of - dt.timedelta(days=k * tr.period_days + 1)
        periods.append({"start": start.isoformat(), "end": end.isoformat()})
    by_period = expit(tr.logit_by_period[:, :, ::-1])
    config = {
        k: (v.isoformat() if isinstance(v, dt.date) else v)
        for k, v in dataclasses.asdict(cfg).items()
    }
    history_start = cfg.as_of - dt.timedelta(days=7 * weeks)
    return {
        "generator": "simengine.synth",
        "seed": seed,
        "weeks": weeks,
        "as_of": cfg.as_of.isoformat(),
        "history_start": history_start.isoformat(),
        "history_end": (cfg.as_of - dt.timedelta(days=1)).isoformat(),
        "stages": list(STAGES),
        "segment_by": list(SEGMENT_BY),
        "pipeline_stage": "opportunity",
        "segments": list(cfg.segments),
        "channels": list(cfg.channels),
        "cells": list(tr.cells),
        "entry_stages": list(ENTRY_STAGES),
        "conventions": {
            "arrival_rate": "mean new units per week at the as-of date; week j (j = -1 is "
            "the week ending the day before as-of) has mean "
            "arrival_rate * exp(arrival_trend * (j + 0.5))",
            "arrival_dispersion": "negative binomial alpha: var = m + alpha m^2 (0 = Poisson)",
            "arrival_trend": "weekly log growth of the arrival mean",
            "conversion": "rate of the drift period ending the day before as-of, which "
            "applies from the as-of date on; a unit's period is that of the day it entered "
            "the step's from-stage",
            "delay": "log-scale lognormal parameters of each step's delay in days",
            "loss_delay": "log-scale lognormal parameters of days from entering a stage to "
            "being lost there, keyed by that stage (same for all cells)",
            "dates": "an event at continuous time t (days from as-of) is dated as_of + floor(t)",
        },
        "arrival_rate": _cell_table(tr, tr.arrival_mean, ENTRY_STAGES),
        "arrival_dispersion": _cell_table(tr, tr.arrival_alpha, ENTRY_STAGES),
        "arrival_trend": _cell_table(tr, tr.arrival_trend, ENTRY_STAGES),
        "conversion": _cell_table(tr, expit(tr.logit_by_period[:, :, 0]), steps),
        "drift_sd": cfg.drift_sd,
        "drift_period_days": tr.period_days,
        "drift_periods": periods,
        "conversion_by_period": {
            cell: {s: [float(x) for x in by_period[ci, j]] for j, s in enumerate(steps)}
            for ci, cell in enumerate(tr.cells)
        },
        "delay_mu": _cell_table(tr, tr.delay_mu, steps),
        "delay_sigma": _cell_table(tr, tr.delay_sigma, steps),
        "loss_delay_mu": {s: float(tr.loss_mu[k]) for k, s in enumerate(STAGES[:-1])},
        "loss_delay_sigma": {s: float(tr.loss_sigma[k]) for k, s in enumerate(STAGES[:-1])},
        "deal_size_mu": {c: float(tr.deal_mu[ci]) for ci, c in enumerate(tr.cells)},
        "deal_size_sigma": {c: float(tr.deal_sigma[ci]) for ci, c in enumerate(tr.cells)},
        "regime_shifts": _shifts_dict(cfg),
        "period": {
            "start": cfg.as_of.isoformat(),
            "end": (cfg.as_of + dt.timedelta(days=7 * cfg.period_weeks - 1)).isoformat(),
            "horizon_days": cfg.horizon_days,
            "expected": expected,
            "target_factor": cfg.target_factor,
            "targets": targets,
        },
        "config": config,
    }


def generate(seed: int, weeks: int = 104, config: SynthConfig | None = None) -> SynthResult:
    """Draw a synthetic CRM history with known truth.

    Parameters
    ----------
    seed : int
        Seed of the one ``numpy.random.default_rng`` that draws everything.
    weeks : int
        Weeks of history before the as-of date.
    config : SynthConfig, optional
        True parameters; defaults to ``SynthConfig()``.

    Returns
    -------
    SynthResult
        Records (canonical, as known on the as-of date), plan TOML text and
        truth.

    Raises
    ------
    ValueError
        If ``weeks < 1`` or ``seed`` is negative.
    """
    cfg = config if config is not None else SynthConfig()
    if weeks < 1:
        raise ValueError("weeks must be >= 1")
    if seed < 0:
        raise ValueError("seed must be >= 0")
    rng = np.random.default_rng(seed)
    tr = _build_truth(cfg, rng, weeks)

    # Weekly arrival counts, (week, cell, entry): gamma-Poisson negative binomial.
    j = np.arange(-weeks, 0, dtype=np.float64)
    mean = tr.arrival_mean[None] * np.exp(tr.arrival_trend[None] * (j[:, None, None] + 0.5))
    mean = mean * tr.arrival_factor(j)[:, None, None]
    a = np.broadcast_to(tr.arrival_alpha, mean.shape)
    pos = a > 0
    g = rng.gamma(np.where(pos, 1.0 / np.where(pos, a, 1.0), 1.0), np.where(pos, a, 1.0))
    counts = rng.poisson(np.where(pos, mean * g, mean))

    flat = counts.ravel()
    idx = np.repeat(np.arange(flat.size, dtype=np.int64), flat)
    week_i, cell, entry = np.unravel_index(idx, counts.shape)
    weekday_p = np.asarray(cfg.weekday_weights) / sum(cfg.weekday_weights)
    t0 = _arrival_times(rng, (week_i - weeks).astype(np.int64), weekday_p)
    cell = cell.astype(np.int64)
    stage0 = _ENTRY_IDX[entry]
    times, lost = _forward(rng, tr, cell, stage0, t0)
    amount_all = np.round(
        np.exp(tr.deal_mu[cell] + tr.deal_sigma[cell] * rng.standard_normal(cell.size)), 2
    )

    # Censor at the as-of date (time 0): nothing on or after it is known.
    times_k = np.where(times < 0, times, np.nan)
    lost_k = np.where(lost < 0, lost, np.nan)
    won_k = ~np.isnan(times_k[:, -1])
    amount = np.where(won_k, amount_all, np.nan)

    # Open at as-of: last reached stage (known) is not the last, not lost by then.
    reached = np.where(~np.isnan(times_k), np.arange(_N_STAGES)[None, :], -1).max(axis=1)
    is_open = ~won_k & np.isnan(lost_k)
    o_stage = reached[is_open]
    o_t = times_k[is_open][np.arange(o_stage.size), o_stage]
    expected = _expected_period(rng, cfg, tr, cell[is_open], o_stage, o_t)
    targets = {
        seg: float(max(1000, round(expected[seg]["revenue"] * cfg.target_factor / 1000) * 1000))
        for seg in cfg.segments
    }

    order = np.lexsort((t0, entry, cell, np.floor(t0)))
    width = max(6, len(str(cell.size)))
    seg_names = np.array(cfg.segments, dtype=object)
    ch_names = np.array(cfg.channels, dtype=object)
    n_ch = len(cfg.channels)
    cols: dict[str, Any] = {
        "id": [f"U{i:0{width}d}" for i in range(1, cell.size + 1)],
        "segment": seg_names[cell[order] // n_ch],
        "channel": ch_names[cell[order] % n_ch],
    }
    for k, s in enumerate(STAGES):
        cols[f"{s}_at"] = _dates(cfg.as_of, times_k[order, k])
    cols["lost_at"] = _dates(cfg.as_of, lost_k[order])
    cols["amount"] = amount[order].astype(np.float64)
    records = pd.DataFrame(cols)
    for c in ("id", *SEGMENT_BY):
        records[c] = records[c].astype(str)
    truth = _truth_dict(cfg, tr, seed, weeks, expected, targets)
    return SynthResult(records=records, plan=_plan_text(cfg, seed, targets), truth=truth)


def write(out_dir: str | Path, result: SynthResult, force: bool = False) -> Path:
    """Write ``records.csv``, ``plan.toml`` and ``truth.json`` atomically.

    Parameters
    ----------
    out_dir : str or Path
        Output directory; replaced as a whole (only with ``force``).
    result : SynthResult
        What :func:`generate` returned.
    force : bool
        Replace an existing ``out_dir``.

    Returns
    -------
    Path
        ``out_dir``.

    Raises
    ------
    InputError
        If ``out_dir`` exists and not ``force``.
    """
    from simengine.io.atomic import atomic_dir

    out = Path(out_dir)
    with atomic_dir(out, force=force) as tmp:
        result.records.to_csv(
            tmp / "records.csv",
            index=False,
            float_format="%.2f",
            date_format="%Y-%m-%d",
            lineterminator="\n",
        )
        (tmp / "plan.toml").write_text(result.plan, encoding="utf-8", newline="\n")
        (tmp / "truth.json").write_text(
            json.dumps(result.truth, indent=2, allow_nan=False) + "\n",
            encoding="utf-8",
            newline="\n",
        )
    return out
