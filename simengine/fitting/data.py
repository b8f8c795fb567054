"""Canonical records at an as-of date → the funnel models' sufficient statistics.

Everything the three models need is reduced here to small arrays, so the
PyMC models never loop over units:

* **conversion + delay (cure model)**, per cell, step and drift period (the
  period in which the unit entered the step's *from* stage): the count of
  units that converted, the count that were lost before converting, and the
  lognormal sufficient statistics per cell and step (``n``, ``Σ log d``,
  ``Σ (log d)²``) of the converted delays and of the times to loss. Units
  still open at the as-of date are grouped by (cell, step, period, age in
  days) with a count, so the censored term is evaluated once per group.
* **arrivals**: new units per complete week (7-day windows ending the day
  before the as-of date) per cell and entry stage.
* **deal size**: lognormal sufficient statistics of won amounts per cell.
* **the last quarter** (:data:`RECENT_DAYS` before the as-of date), for the
  fit's posterior predictive check (:mod:`simengine.fitting.ppc`): the units
  that entered each step's from-stage in it, grouped by (cell, step, drift
  period, age) with the number converted by the as-of date, and the count
  and sum of log amounts of the deals won in it.

Conventions (documented contract of the fit):

* Only what was known on the as-of date is used: stage and lost dates after
  it are blanked, units that entered after it are dropped, and an amount is
  dropped for units that closed (won or lost) after it. Passing records
  already reduced by ``records.as_of_view`` gives the same result.
* Delays and ages are datetime differences in days (fractional if the data
  carry times), floored at :data:`MIN_DELAY_DAYS` (half a day) so that
  same-day transitions have a finite log.
* Drift periods are counted back from the as-of date: period ``P-1`` holds
  entries within ``drift_period_days`` before it, and so on; entries older
  than ``max_periods`` periods are pooled into period 0.
* Left-truncated exports (``observed_from``): an export that holds only the
  units still open on some date ``T0`` (or entered later) shows no exit
  before ``T0``; its units that entered a stage before ``T0`` are the
  survivors of their cohorts (their delays and times to loss are longer than
  a cohort's, and their losses before ``T0`` are missing), and its weekly
  entries before ``T0`` are a partial count. With ``observed_from = T0`` a
  unit that entered the step's from-stage before ``T0`` and had not left the
  step by ``T0`` counts with delayed entry: its exit (or censoring) enters
  the statistics as any unit's, and its age at ``T0`` enters the
  ``trunc_*`` groups, whose survival the conversion model divides out
  (the likelihood of a survivor given that it survived to ``T0``). Without
  those units the statistics see only ``as_of - T0`` days of follow-up, too
  short to tell slow wins from slow losses. The arrival window starts on or
  after ``T0``. The open-unit
  snapshot (the engine's pipeline) and the deal sizes keep every unit.
  :func:`first_exit` gives the first exit date recorded by the as-of date,
  the natural ``T0`` of such an export, and :func:`detect_left_truncation`
  decides from the records whether an export is left-truncated there.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import stats

from simengine.config.spec import CELL_SEP, FunnelSpec

__all__ = [
    "COHORT_ALPHA",
    "DORMANT_ALPHA",
    "MAX_DRIFT_PERIODS",
    "MIN_COHORT_DOF",
    "MIN_DELAY_DAYS",
    "RECENT_DAYS",
    "TRUNCATION_ALPHA",
    "FunnelData",
    "build_data",
    "cell_labels",
    "cohort_days",
    "cohort_log_sd",
    "detect_left_truncation",
    "first_exit",
    "known_at",
    "never_leaving_share",
    "relative_days",
]

MIN_DELAY_DAYS = 0.5
"""Floor (days) applied to step delays and open ages before taking logs."""

MAX_DRIFT_PERIODS = 12
"""At most this many drift periods; older entries share the first period."""

RECENT_DAYS = 91
"""The last quarter before the as-of date, checked by the posterior predictive check."""

TRUNCATION_ALPHA = 1e-3
"""Level of :func:`detect_left_truncation`'s test of a complete export."""

DORMANT_ALPHA = 1e-3
"""Level of :func:`never_leaving_share`'s test that the follow-up shows a plateau."""

COHORT_ALPHA = 1e-3
"""Level of :func:`cohort_log_sd`'s test that the cohorts differ beyond binomial noise."""

MIN_COHORT_DOF = 1
""":func:`cohort_log_sd` needs cohorts to compare: at least this many degrees of freedom."""

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def _empty_int() -> IntArray:
    return np.zeros(0, np.int64)


def _empty_float() -> FloatArray:
    return np.zeros(0, np.float64)


@dataclass(frozen=True)
class FunnelData:
    """Sufficient statistics of the funnel at an as-of date.

    Parameters
    ----------
    stages : tuple of str
        Ordered stages.
    cells : tuple of str
        Cell labels, sorted.
    segments : tuple of str
        Reporting segments, sorted.
    cell_segment : ndarray of int64, shape (cell,)
        Segment index of each cell.
    as_of : datetime.date
        The as-of date.
    period_days : int
        Drift period length in days.
    n_periods : int
        Number of drift periods (1 when drift is off).
    n_converted, n_lost : ndarray of int64, shape (cell, step, period)
        Units that entered the step's from-stage in that period and then
        converted / were lost before converting (by the as-of date).
    delay_n, delay_sum_log, delay_sum_log2 : ndarray of float64, shape (cell, step)
        Count, sum of log delays and sum of squared log delays of conversions.
    loss_n, loss_sum_log, loss_sum_log2 : ndarray of float64, shape (cell, step)
        The same for the time from entering the from-stage to being lost.
    open_cell, open_step, open_period : ndarray of int64, shape (group,)
        Index triple of each open-unit group (step index into ``stages[1:]``).
    open_age : ndarray of float64, shape (group,)
        Age in days (floored at :data:`MIN_DELAY_DAYS`) of the group.
    open_count : ndarray of float64, shape (group,)
        Number of open units in the group.
    entry_stages : tuple of str
        Stages where units enter in the arrival window (subset of ``stages[:-1]``).
    arrival_counts : ndarray of int64, shape (cell, entry_stage, week)
        New units per complete week; week ``W-1`` ends the day before as-of.
    arrival_active : ndarray of bool, shape (cell, entry_stage)
        Pairs with at least one arrival in the window (the others get rate 0).
    deal_n, deal_sum_log, deal_sum_log2 : ndarray of float64, shape (cell,)
        Lognormal sufficient statistics of amounts won by the as-of date.
    snapshot : pandas.DataFrame
        One row per unit open at the as-of date: ``id``, ``cell``, ``stage``,
        ``age_days``, ``amount`` (NaN where unknown).
    recent_cell, recent_step, recent_period : ndarray of int64, shape (rgroup,)
        Groups of the units that entered a step's from-stage in the last
        :data:`RECENT_DAYS` days (left truncation applied as above).
    recent_age : ndarray of float64, shape (rgroup,)
        Their age at the as-of date (days, floored at :data:`MIN_DELAY_DAYS`).
    recent_count, recent_converted : ndarray of float64, shape (rgroup,)
        Units in the group, and how many of them converted by the as-of date.
    trunc_cell, trunc_step, trunc_period : ndarray of int64, shape (tgroup,)
        Index triple of each group of left-truncated units (entered the
        step's from-stage before ``observed_from``, still in it then).
    trunc_age : ndarray of float64, shape (tgroup,)
        Their age at ``observed_from`` (days, floored at :data:`MIN_DELAY_DAYS`).
    trunc_count : ndarray of float64, shape (tgroup,)
        Units per group.
    recent_deal_n, recent_deal_sum_log : ndarray of float64, shape (cell,)
        Count and sum of log amounts of the deals won in the last
        :data:`RECENT_DAYS` days.
    never_leaving : ndarray of float64, shape (step,)
        Share of the units entering each step's from-stage that never leave
        it (:func:`never_leaving_share`, the step's cells pooled; 0 where
        the follow-up shows no plateau). Default: zeros.
    cohort_sd : ndarray of float64, shape (step,)
        Sd of the log share of a cohort of :func:`cohort_days` days that
        takes the step within that many days, between the cohorts of a
        drift period, beyond binomial noise (:func:`cohort_log_sd`, the
        step's cells pooled; 0 where the cohorts do not differ detectably,
        or without drift).
        Default: zeros.
    """

    stages: tuple[str, ...]
    cells: tuple[str, ...]
    segments: tuple[str, ...]
    cell_segment: IntArray
    as_of: dt.date
    period_days: int
    n_periods: int
    n_converted: IntArray
    n_lost: IntArray
    delay_n: FloatArray
    delay_sum_log: FloatArray
    delay_sum_log2: FloatArray
    loss_n: FloatArray
    loss_sum_log: FloatArray
    loss_sum_log2: FloatArray
    open_cell: IntArray
    open_step: IntArray
    open_period: IntArray
    open_age: FloatArray
    open_count: FloatArray
    entry_stages: tuple[str, ...]
    arrival_counts: IntArray
    arrival_active: npt.NDArray[np.bool_]
    deal_n: FloatArray
    deal_sum_log: FloatArray
    deal_sum_log2: FloatArray
    snapshot: pd.DataFrame
    recent_cell: IntArray = field(default_factory=_empty_int)
    recent_step: IntArray = field(default_factory=_empty_int)
    recent_period: IntArray = field(default_factory=_empty_int)
    recent_age: FloatArray = field(default_factory=_empty_float)
    recent_count: FloatArray = field(default_factory=_empty_float)
    recent_converted: FloatArray = field(default_factory=_empty_float)
    recent_deal_n: FloatArray = field(default_factory=_empty_float)
    recent_deal_sum_log: FloatArray = field(default_factory=_empty_float)
    trunc_cell: IntArray = field(default_factory=_empty_int)
    trunc_step: IntArray = field(default_factory=_empty_int)
    trunc_period: IntArray = field(default_factory=_empty_int)
    trunc_age: FloatArray = field(default_factory=_empty_float)
    trunc_count: FloatArray = field(default_factory=_empty_float)
    never_leaving: FloatArray = field(default_factory=_empty_float)
    cohort_sd: FloatArray = field(default_factory=_empty_float)

    @property
    def steps(self) -> tuple[str, ...]:
        """Step labels (``stages[1:]``)."""
        return self.stages[1:]

    @property
    def n_weeks(self) -> int:
        """Number of complete weeks in the arrival window."""
        return int(self.arrival_counts.shape[2])


def relative_days(col: pd.Series, as_of: dt.date) -> FloatArray:
    """Days from ``as_of`` to each date (negative before it; NaN where NaT)."""
    ts = pd.to_datetime(col)
    delta = (ts - pd.Timestamp(as_of)).dt.total_seconds() / 86400.0
    return delta.to_numpy(dtype=np.float64, na_value=np.nan)


def known_at(records: pd.DataFrame, spec: FunnelSpec, as_of: dt.date) -> pd.DataFrame:
    """Return the records as known on ``as_of`` (see module docstring).

    The input is not modified.
    """
    df = records.copy()
    cols = list(spec.stage_columns)
    cutoff = pd.Timestamp(as_of)
    first = df[cols].bfill(axis=1).iloc[:, 0]
    df = df.loc[first.notna() & (first <= cutoff)].copy()
    closed_later = pd.Series(False, index=df.index)
    for c in (cols[-1], "lost_at"):
        closed_later |= df[c].notna() & (df[c] > cutoff)
    for c in [*cols, "lost_at"]:
        df.loc[df[c] > cutoff, c] = pd.NaT
    df.loc[closed_later, "amount"] = np.nan
    return df.reset_index(drop=True)


def first_exit(records: pd.DataFrame, spec: FunnelSpec, as_of: dt.date) -> dt.date | None:
    """Return the first date on which any unit left a stage, as known on ``as_of``.

    An exit is a step taken (a unit entering a stage after the one it entered
    first) or a loss. ``None`` if no exit is recorded by ``as_of``.

    Parameters
    ----------
    records : pandas.DataFrame
        Canonical records (not modified).
    spec : FunnelSpec
        The funnel.
    as_of : datetime.date
        Data cut-off.

    Returns
    -------
    datetime.date or None
    """
    df = known_at(records, spec, as_of)
    cols = list(spec.stage_columns)
    dates = df[cols].to_numpy("datetime64[ns]")
    reached = ~np.isnat(dates)
    if not len(df):
        return None
    entry = np.argmax(reached, axis=1)
    later = reached & (np.arange(len(cols))[None, :] > entry[:, None])
    cands = [dates[later], df["lost_at"].dropna().to_numpy("datetime64[ns]")]
    allx = np.concatenate(cands)
    if allx.size == 0:
        return None
    return pd.Timestamp(allx.min()).date()


def detect_left_truncation(
    records: pd.DataFrame,
    spec: FunnelSpec,
    as_of: dt.date,
    *,
    alpha: float = TRUNCATION_ALPHA,
) -> dt.date | None:
    """Return the first recorded exit if the export is left-truncated there, else ``None``.

    In a complete export the units that entered before the first recorded
    exit ``X0`` had the same chance to leave early as later units; a file
    that holds only the units still open on ``X0`` shows none of their
    exits. The test: from the units that entered on or after ``X0``, the
    share ``H(t)`` that left (took a step or were lost) within ``t`` days,
    among those followed for at least ``t`` days by ``as_of``; the expected
    number of exits before ``X0`` of the ``n`` earlier units, entered ``t_i``
    days before it, is ``m = sum_i H(t_i)`` (ages with no unit followed that
    long count 0, which only makes the test more cautious). No such exit is
    recorded (``X0`` is the first), which has probability ``exp(-m)`` under
    a Poisson count of a complete export: the export is called truncated
    when ``exp(-m) < alpha``.

    Parameters
    ----------
    records : pandas.DataFrame
        Canonical records (not modified).
    spec : FunnelSpec
        The funnel.
    as_of : datetime.date
        Data cut-off.
    alpha : float
        Level of the test (:data:`TRUNCATION_ALPHA`).

    Returns
    -------
    datetime.date or None
        ``X0`` (:func:`first_exit`) when the export is left-truncated there.
    """
    x0 = first_exit(records, spec, as_of)
    if x0 is None:
        return None
    df = known_at(records, spec, as_of)
    rel = np.column_stack([relative_days(df[c], as_of) for c in spec.stage_columns])
    reached = ~np.isnan(rel)
    n = len(df)
    entry = np.argmax(reached, axis=1)
    entry_rel = rel[np.arange(n), entry]
    later = reached & (np.arange(rel.shape[1])[None, :] > entry[:, None])
    step_rel = np.where(later, rel, np.inf).min(axis=1)
    lost = relative_days(df["lost_at"], as_of)
    exit_rel = np.fmin(step_rel, np.where(np.isnan(lost), np.inf, lost))
    t0 = float(relative_days(pd.Series([pd.Timestamp(x0)]), as_of)[0])
    before = entry_rel < t0
    if not before.any():
        return None
    after = ~before
    follow = -entry_rel[after]  # days followed by as-of
    took = exit_rel[after] - entry_rel[after]  # inf if no exit yet
    gaps = t0 - entry_rel[before]  # days from entry to X0
    # H(t) per distinct gap: exited within t among units followed >= t days
    order = np.argsort(follow)
    follow_s, took_s = follow[order], took[order]
    m = 0.0
    uniq, counts = np.unique(np.floor(gaps), return_counts=True)
    for g, k in zip(uniq, counts, strict=True):
        lo = np.searchsorted(follow_s, g, side="left")
        if lo >= follow_s.size:
            continue
        m += k * float(np.mean(took_s[lo:] <= g))
    return x0 if np.exp(-m) < alpha else None


def cohort_days(period_days: int) -> int:
    """Length of the cohorts :func:`cohort_log_sd` compares: a third of a drift period (>= 7)."""
    return max(7, int(period_days) // 3)


def cohort_log_sd(
    entry_days: FloatArray,
    taken_after: FloatArray,
    days: int,
    period_days: int,
    *,
    alpha: float = COHORT_ALPHA,
) -> float:
    """Within-period sd between cohorts of the log share that takes a step within ``days`` days.

    The cohorts of a CRM differ by more than binomial noise: how a month's
    deals are worked moves the share of them won, and how fast. The fit's
    conversion drifts as a random walk from one drift period to the next;
    what moves from one cohort to the next *within* a period is left out of
    the fit and of the forecast, whose new units then all share one rate.
    This measures it without a model: the units of each drift period
    (``period_days`` days, counted back from the as-of date, as the fit's)
    are split by entry date into cohorts of ``days`` days (the last one
    takes the period's remaining days), a cohort younger than ``days`` days
    is left out (so every cohort is followed at least that long), and each
    cohort's share ``w / n`` that took the step within ``days`` days of
    entering is compared on the log scale (``log((w + 0.5) / (n + 0.5))``,
    binomial variance ``1/(w + 0.5) - 1/(n + 0.5)``; a cohort whose every
    unit took the step has ``n + 1`` in place of ``n + 0.5``, half a unit in
    its empty failure count, so its variance is not 0) with the other cohorts
    of its period only, so the walk's moves between periods do not count.
    Cochran's ``Q`` summed over periods (``K_p - 1`` degrees of freedom each)
    gives the DerSimonian-Laird moment estimate of the between-cohort
    variance; it is kept only where ``Q`` rejects equal shares within periods
    at level ``alpha`` (chi-square), else 0: a funnel whose cohorts do not
    differ detectably gets no cohort term.

    Parameters
    ----------
    entry_days : ndarray of float64
        Per unit: days between entering the step's from-stage and the as-of
        date (>= 0; units of a left-truncated export entered before its
        start left out by the caller).
    taken_after : ndarray of float64
        Per unit: days from entering to taking the step, NaN where it had
        not by the as-of date.
    days : int
        Cohort length and follow-up (:func:`cohort_days`).
    period_days : int
        Drift period length.
    alpha : float
        Level of the homogeneity test (:data:`COHORT_ALPHA`).

    Returns
    -------
    float
        The sd (log scale, per cohort of ``days`` days), ``>= 0``.
    """
    entry_days = np.asarray(entry_days, np.float64)
    took = np.asarray(taken_after, np.float64) <= days  # NaN compares False
    per = np.floor(entry_days / period_days)
    n_in = max(1, int(period_days) // int(days))
    sub = np.minimum(np.floor((entry_days - per * period_days) / days), n_in - 1)
    ok = (entry_days >= days) & np.isfinite(per)
    if not ok.any():
        return 0.0
    key = (per[ok] * n_in + sub[ok]).astype(np.int64)
    n = np.bincount(key).astype(np.float64)
    w = np.bincount(key, weights=took[ok].astype(np.float64))
    has = n > 0
    group = np.flatnonzero(has) // n_in
    n, w = n[has], w[has]
    # Haldane-Anscombe: half a unit in the successes, and in the failures only
    # where there are none (a cohort all of whose units took the step), whose
    # binomial variance would otherwise be 0 and its weight infinite.
    wc = w + 0.5
    nc = n + 0.5 + 0.5 * (w == n)
    y = np.log(wc / nc)
    wt = 1.0 / (1.0 / wc - 1.0 / nc)
    q, dof, c = 0.0, 0, 0.0
    for g in np.unique(group):
        m = group == g
        if m.sum() < 2:
            continue
        yw, ww = y[m], wt[m]
        q += float(np.sum(ww * (yw - np.sum(ww * yw) / ww.sum()) ** 2))
        dof += int(m.sum()) - 1
        c += float(ww.sum() - np.sum(ww**2) / ww.sum())
    if dof < MIN_COHORT_DOF or stats.chi2.sf(q, dof) >= alpha:
        return 0.0
    return float(np.sqrt(max((q - dof) / c, 0.0)))


def never_leaving_share(
    age: FloatArray,
    closed: npt.NDArray[np.bool_],
    entry_age: FloatArray,
    *,
    alpha: float = DORMANT_ALPHA,
    t_max: float | None = None,
) -> float:
    """Share of units that never leave a step, from the product-limit estimate of its plateau.

    A CRM often keeps deals open for good (nobody closes them). A smooth
    delay law cannot tell those from slow closers: a lognormal fitted to
    delays spread over two orders of magnitude has a tail that explains any
    old open unit as a late win or loss. This estimate does not depend on
    a law's tail. The all-cause Kaplan-Meier survival of the time to leave
    (delayed entry: a unit seen from age ``entry_age`` on is at risk from
    then) is read at the largest recorded leaving age ``t``: its value there
    is the nonparametric estimate of the never-leaving share (Maller and
    Zhou's cure fraction). It is kept only where the follow-up past ``t``
    shows a plateau: with the hazard of leaving over ``(t/2, t]`` (leavers
    per unit-day at risk) the units still at risk after ``t`` would be
    expected to leave ``m`` times in their exposure after ``t``, and none
    did, which a law without a plateau shows with Poisson probability
    ``exp(-m)``; below ``alpha`` the plateau is taken, else the share is 0
    (follow-up too short to tell).

    Parameters
    ----------
    age : ndarray of float64
        Per unit: age at leaving (closed) or at the as-of date (open), days.
    closed : ndarray of bool
        Whether the unit left (converted or lost) by the as-of date.
    entry_age : ndarray of float64
        Age from which the unit is seen (0, or its age at the start of a
        left-truncated export).
    alpha : float
        Level of the plateau test (:data:`DORMANT_ALPHA`).
    t_max : float, optional
        The age ``t`` to read the survival at (default: the largest
        leaving age among these units). A larger one reads a subset of
        units (a drift period's) at the whole step's ``t``, so a subset
        whose units are all younger shows no plateau.

    Returns
    -------
    float
        The share, in ``[0, 1)``.
    """
    age = np.asarray(age, np.float64)
    closed = np.asarray(closed, bool)
    a0 = np.minimum(np.asarray(entry_age, np.float64), age)
    if not closed.any():
        return 0.0
    times, d = np.unique(age[closed], return_counts=True)
    if t_max is None:
        t_max = float(times[-1])
    # at risk at t: seen from before t (a0 < t) and still in the step (age >= t)
    at_risk = np.searchsorted(np.sort(a0), times, side="left") - np.searchsorted(
        np.sort(age), times, side="left"
    )
    surv = float(np.prod(1.0 - d / np.maximum(at_risk, 1)))
    lo = 0.5 * t_max
    exposure = np.clip(np.minimum(age, t_max) - np.maximum(a0, lo), 0.0, None).sum()
    n_tail = float(np.sum(closed & (age > lo)))
    if exposure <= 0.0 or n_tail == 0.0:
        return 0.0
    beyond = np.clip(age - np.maximum(a0, t_max), 0.0, None).sum()
    m = n_tail / exposure * beyond
    return min(surv, 1.0 - 1e-9) if np.exp(-m) < alpha else 0.0


_GROUP_KEYS = ["cell", "step", "period", "age"]


def _group_arrays(
    frames: list[pd.DataFrame], prefix: str, values: dict[object, str]
) -> dict[str, np.ndarray]:
    """Concatenate per-step unit groups, sort them by (cell, step, period, age), as arrays.

    Returns ``{prefix}_cell``, ``_step``, ``_period`` (int64), ``_age`` and
    one float64 array ``{prefix}_{name}`` per ``values`` column (empty
    arrays when there are no groups).
    """
    if not frames:
        ints = {f"{prefix}_{k}": np.zeros(0, np.int64) for k in _GROUP_KEYS[:3]}
        floats = {f"{prefix}_{n}": np.zeros(0) for n in ["age", *values.values()]}
        return ints | floats
    g = pd.concat(frames, ignore_index=True).sort_values(_GROUP_KEYS, kind="stable")
    out = {f"{prefix}_{k}": g[k].to_numpy(np.int64) for k in _GROUP_KEYS[:3]}
    out[f"{prefix}_age"] = g["age"].to_numpy(np.float64)
    for col, name in values.items():
        out[f"{prefix}_{name}"] = g[col].to_numpy(np.float64)
    return out


def cell_labels(df: pd.DataFrame, spec: FunnelSpec) -> pd.Series:
    """Return each record's cell label (``segment_by`` values joined by ``/``)."""
    parts = [df[c].astype(str) for c in spec.segment_by]
    out = parts[0]
    for p in parts[1:]:
        out = out + CELL_SEP + p
    return out


def build_data(
    records: pd.DataFrame,
    spec: FunnelSpec,
    as_of: dt.date,
    *,
    drift: bool | None = None,
    period_days: int | None = None,
    history_weeks: int | None = None,
    cells: tuple[str, ...] | None = None,
    observed_from: dt.date | None = None,
) -> FunnelData:
    """Reduce canonical records at ``as_of`` to the models' sufficient statistics.

    Parameters
    ----------
    records : pandas.DataFrame
        Canonical records (see ARCHITECTURE.md); not modified.
    spec : FunnelSpec
        The funnel.
    as_of : datetime.date
        Data cut-off.
    drift, period_days, history_weeks : optional
        Override ``spec.options.drift``, ``drift_period_days`` and
        ``arrival_history_weeks``.
    cells : tuple of str, optional
        Cell labels to use (default: every cell present, sorted).
    observed_from : datetime.date, optional
        Start of a left-truncated export (see the module docstring): units
        that entered a step's from-stage before it are left out of that
        step's statistics, and the arrival window starts on or after it.
        Default: no truncation (every unit counts).

    Returns
    -------
    FunnelData
    """
    opts = spec.options
    drift = opts.drift if drift is None else drift
    period_days = opts.drift_period_days if period_days is None else period_days
    history_weeks = opts.arrival_history_weeks if history_weeks is None else history_weeks
    df = known_at(records, spec, as_of)
    n_units = len(df)
    k_stages = len(spec.stages)
    label = cell_labels(df, spec) if n_units else pd.Series([], dtype=str)
    if cells is None:
        cells = tuple(sorted(set(label)))
    segments = tuple(sorted({c.split(CELL_SEP)[0] for c in cells}))
    cell_segment = np.array([segments.index(c.split(CELL_SEP)[0]) for c in cells], np.int64)
    cell_index = {c: i for i, c in enumerate(cells)}
    ci = np.array([cell_index.get(x, -1) for x in label], np.int64)
    keep = ci >= 0
    rel = np.column_stack([relative_days(df[c], as_of) for c in spec.stage_columns])
    if n_units == 0:
        rel = np.zeros((0, k_stages))
    lost = relative_days(df["lost_at"], as_of) if n_units else np.zeros(0)
    is_lost = ~np.isnan(lost)
    reached = ~np.isnan(rel)
    entry = np.argmax(reached, axis=1) if n_units else np.zeros(0, np.int64)
    last = k_stages - 1 - np.argmax(reached[:, ::-1], axis=1) if n_units else entry
    entry_rel = rel[np.arange(n_units), entry] if n_units else np.zeros(0)
    # left truncation: from-stage entries before t0 (days rel. to as-of) do not count
    t0 = (
        -np.inf
        if observed_from is None
        else float(relative_days(pd.Series([pd.Timestamp(observed_from)]), as_of)[0])
    )
    observed = keep & (entry_rel >= t0)

    # Drift periods, counted back from as-of by the from-stage entry date.
    if drift and n_units:
        span = float(-np.nanmin(entry_rel[observed])) if observed.any() else 0.0
        n_periods = int(min(MAX_DRIFT_PERIODS, max(1, np.floor(span / period_days) + 1)))
    else:
        n_periods = 1
    n_cells, n_steps = len(cells), k_stages - 1
    n_conv = np.zeros((n_cells, n_steps, n_periods), np.int64)
    n_lost = np.zeros((n_cells, n_steps, n_periods), np.int64)
    d_n = np.zeros((n_cells, n_steps))
    d_s1 = np.zeros((n_cells, n_steps))
    d_s2 = np.zeros((n_cells, n_steps))
    l_n = np.zeros((n_cells, n_steps))
    l_s1 = np.zeros((n_cells, n_steps))
    l_s2 = np.zeros((n_cells, n_steps))
    groups: list[pd.DataFrame] = []
    recent: list[pd.DataFrame] = []
    tgroups: list[pd.DataFrame] = []
    never_leaving = np.zeros(n_steps)
    cohort_sd = np.zeros(n_steps)
    for j in range(1, k_stages):
        frm = reached[:, j - 1] & keep
        if observed_from is not None:
            # delayed entry: a unit in the step at t0 counts from t0 on; one
            # that had left the step before t0 (an inconsistent record in a
            # left-truncated export) is left out
            exit_j = np.fmin(rel[:, j], np.where(is_lost, lost, np.nan))
            frm &= (rel[:, j - 1] >= t0) | ~(exit_j < t0)
        if not frm.any():
            continue
        t_from = rel[frm, j - 1]
        trunc = t_from < t0
        if n_periods > 1:
            back = np.floor(-t_from / period_days).astype(np.int64)
            per = np.clip(n_periods - 1 - back, 0, n_periods - 1)
        else:
            per = np.zeros(t_from.shape[0], np.int64)
        c = ci[frm]
        conv = reached[frm, j]
        lst = ~conv & is_lost[frm]
        opn = ~conv & ~lst
        np.add.at(n_conv[:, j - 1, :], (c[conv], per[conv]), 1)
        np.add.at(n_lost[:, j - 1, :], (c[lst], per[lst]), 1)
        logd = np.log(np.maximum(rel[frm, j][conv] - t_from[conv], MIN_DELAY_DAYS))
        np.add.at(d_n[:, j - 1], c[conv], 1.0)
        np.add.at(d_s1[:, j - 1], c[conv], logd)
        np.add.at(d_s2[:, j - 1], c[conv], logd**2)
        logl = np.log(np.maximum(lost[frm][lst] - t_from[lst], MIN_DELAY_DAYS))
        np.add.at(l_n[:, j - 1], c[lst], 1.0)
        np.add.at(l_s1[:, j - 1], c[lst], logl)
        np.add.at(l_s2[:, j - 1], c[lst], logl**2)
        # the step's never-leaving share (cells pooled), from each unit's age at
        # leaving or at as-of and the age it is seen from (delayed entry)
        exit_at = np.where(conv, rel[frm, j], np.where(lst, lost[frm], 0.0))
        never_leaving[j - 1] = never_leaving_share(
            np.maximum(exit_at - t_from, MIN_DELAY_DAYS),
            conv | lst,
            np.where(trunc, t0 - t_from, 0.0),
        )
        if drift:
            # between-cohort spread of the step's early take-up (cells pooled),
            # from the units seen since they entered
            seen = ~trunc
            cohort_sd[j - 1] = cohort_log_sd(
                -t_from[seen],
                np.where(conv, rel[frm, j] - t_from, np.nan)[seen],
                cohort_days(period_days),
                period_days,
            )
        if trunc.any():
            g = pd.DataFrame(
                {
                    "cell": c[trunc],
                    "step": j - 1,
                    "period": per[trunc],
                    "age": np.maximum(t0 - t_from[trunc], MIN_DELAY_DAYS),
                }
            )
            tgroups.append(g.groupby(["cell", "step", "period", "age"]).size().reset_index())
        rec = (t_from >= -RECENT_DAYS) & ~trunc
        if rec.any():
            r = pd.DataFrame(
                {
                    "cell": c[rec],
                    "step": j - 1,
                    "period": per[rec],
                    "age": np.maximum(-t_from[rec], MIN_DELAY_DAYS),
                    "conv": conv[rec].astype(np.float64),
                }
            )
            agg = r.groupby(["cell", "step", "period", "age"]).agg(
                count=("conv", "size"), converted=("conv", "sum")
            )
            recent.append(agg.reset_index())
        if opn.any():
            age = np.maximum(-t_from[opn], MIN_DELAY_DAYS)
            g = pd.DataFrame({"cell": c[opn], "step": j - 1, "period": per[opn], "age": age})
            groups.append(g.groupby(["cell", "step", "period", "age"]).size().reset_index())
    open_arrays = _group_arrays(groups, "open", {0: "count"})
    trunc_arrays = _group_arrays(tgroups, "trunc", {0: "count"}) if tgroups else {}
    rec_arrays = (
        _group_arrays(recent, "recent", {"count": "count", "converted": "converted"})
        if recent
        else {}
    )

    # Arrivals: complete 7-day weeks ending the day before as-of, within the data.
    weeks = 0
    if observed.any():
        weeks = int(min(history_weeks, np.floor(-np.min(entry_rel[observed]) / 7.0)))
    counts_full = np.zeros((n_cells, k_stages - 1, max(weeks, 0)), np.int64)
    if weeks > 0:
        wk = np.floor((entry_rel + 7.0 * weeks) / 7.0)
        inwin = keep & (wk >= 0) & (entry_rel < 0) & (entry < k_stages - 1)
        np.add.at(counts_full, (ci[inwin], entry[inwin], wk[inwin].astype(np.int64)), 1)
    totals = counts_full.sum(axis=2)
    entry_idx = [e for e in range(k_stages - 1) if totals[:, e].sum() > 0]
    entry_stages = tuple(spec.stages[e] for e in entry_idx)
    arrival_counts = counts_full[:, entry_idx, :]
    arrival_active = totals[:, entry_idx] > 0

    # Deal sizes: amounts of units won by as-of.
    won = keep & reached[:, -1] if n_units else np.zeros(0, bool)
    amt = df["amount"].to_numpy(np.float64, na_value=np.nan) if n_units else np.zeros(0)
    ok = won & np.isfinite(amt) & (amt > 0)
    la = np.log(amt[ok])
    deal_n = np.bincount(ci[ok], minlength=n_cells).astype(np.float64)
    deal_s1 = np.bincount(ci[ok], weights=la, minlength=n_cells).astype(np.float64)
    deal_s2 = np.bincount(ci[ok], weights=la**2, minlength=n_cells).astype(np.float64)
    won_at = rel[:, -1] if n_units else np.zeros(0)
    ok_recent = ok & (won_at >= -RECENT_DAYS)
    la_recent = np.log(amt[ok_recent])
    recent_deal_n = np.bincount(ci[ok_recent], minlength=n_cells).astype(np.float64)
    recent_deal_s1 = np.bincount(ci[ok_recent], weights=la_recent, minlength=n_cells).astype(
        np.float64
    )

    # Snapshot of open units.
    is_open = keep & ~reached[:, -1] & ~is_lost if n_units else np.zeros(0, bool)
    idx = np.flatnonzero(is_open)
    snap = pd.DataFrame(
        {
            "id": df["id"].astype(str).to_numpy()[idx] if n_units else np.zeros(0, str),
            "cell": np.array(cells, dtype=object)[ci[idx]] if n_units else np.zeros(0, str),
            "stage": np.array(spec.stages, dtype=object)[last[idx]],
            "age_days": np.maximum(-rel[idx, last[idx]], 0.0),
            "amount": amt[idx],
        }
    )
    return FunnelData(
        stages=tuple(spec.stages),
        cells=tuple(cells),
        segments=segments,
        cell_segment=cell_segment,
        as_of=as_of,
        period_days=int(period_days),
        n_periods=n_periods,
        n_converted=n_conv,
        n_lost=n_lost,
        delay_n=d_n,
        delay_sum_log=d_s1,
        delay_sum_log2=d_s2,
        loss_n=l_n,
        loss_sum_log=l_s1,
        loss_sum_log2=l_s2,
        **open_arrays,
        entry_stages=entry_stages,
        arrival_counts=arrival_counts,
        arrival_active=arrival_active,
        deal_n=deal_n,
        deal_sum_log=deal_s1,
        deal_sum_log2=deal_s2,
        snapshot=snap,
        recent_deal_n=recent_deal_n,
        recent_deal_sum_log=recent_deal_s1,
        never_leaving=never_leaving,
        cohort_sd=cohort_sd,
        **rec_arrays,
        **trunc_arrays,
    )
