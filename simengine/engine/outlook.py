"""Per-deal outlook of the open pipeline: the engine's law for each open unit, in closed form.

For every unit open at the as-of date the simulation draws, per parameter
draw, whether and when it takes its next step, then chains the later steps
(see ARCHITECTURE.md, "The path model (engine)"). That law is simple enough
to evaluate without simulating, so this module computes, for each open unit,
its probability to be won, lost or still open at the period's end, its
expected revenue in the period and the median day it closes given a win,
averaged over the parameter draws exactly as the engine's paths cycle
through them.

The law, per draw, for a unit of cell ``c`` aged ``a`` in stage ``s``
(``F`` the step's delay law, ``p`` its conversion, ``L`` the leaving law:
the fitted time to loss ``G`` when the parameters carry it, else ``F``, as in
:mod:`simengine.engine._prepare`):

* it takes step ``s`` with ``p S_F(a) / (p S_F(a) + (1 - p) S_G(a))`` (with
  a time to loss) or ``p S_F(a) / (1 - p F(a))`` (without), after ``X - a``,
  ``X ~ F | X > a``; otherwise it leaves after ``X - a``, ``X ~ L | X > a``;
* every later step ``j`` is taken with ``conversion[j]`` after a
  lognormal ``delay_mu/sigma[j]`` delay, else the unit leaves after a
  lognormal ``L[j]`` time;
* a win on day ``floor(T)`` counts as period revenue when that day is in
  ``start_offset .. end_offset``; its amount is the unit's own, else the
  cell's mean won deal ``exp(mu + sigma^2 / 2)`` (the engine draws it from
  that lognormal, independently of the timing).

The first step's time is exact (tail masses of the truncated lognormal on
a grid of :data:`GRID_STEP` days); later steps are chained by convolving
grid masses, treating mass as uniform within a grid cell, which is exact
for a one-step unit and leaves an error of order ``GRID_STEP^2`` times the
density's curvature for the others. Nothing here draws a random number.

Outcomes are read at the end of the period's last day (day ``end_offset``):
``p_won_in_period`` and ``p_lost_in_period`` count wins and losses from the
as-of date to that day, and ``p_open_at_period_end`` is the rest (they sum
to 1); when the as-of date is the period start (the usual case) that window
is the period. ``expected_revenue_in_period`` counts wins in the period
itself, as the forecast's revenue does.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy.signal import fftconvolve
from scipy.special import ndtr

from simengine.config.plan import Plan
from simengine.params import FunnelParameters

__all__ = ["COLUMNS", "GRID_STEP", "deal_outlook"]

FloatArray = npt.NDArray[np.float64]

#: Width (days) of the time grid later steps are chained on; divides a day.
GRID_STEP = 0.25

#: Columns of ``deals.csv`` / the ``deals`` export table, in order.
COLUMNS = (
    "id",
    "segment",
    "cell",
    "stage",
    "age_days",
    "amount",
    "amount_known",
    "p_won_in_period",
    "p_lost_in_period",
    "p_open_at_period_end",
    "expected_revenue_in_period",
    "close_date_p50",
)


def _survival(x: FloatArray, mu: FloatArray, sigma: FloatArray) -> FloatArray:
    """``P(X > x)`` of a lognormal, broadcasting; the engine's ``_tail`` convention.

    1 at ``x <= 0``; a step at ``exp(mu)`` when ``sigma`` is 0.
    """
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (np.log(np.where(x > 0, x, 1.0)) - mu) / np.where(sigma > 0, sigma, 1.0)
        smooth = ndtr(-z)
    step = np.where(x >= np.exp(mu), 0.0, 1.0)
    out = np.where(sigma > 0, smooth, step)
    return np.where(x <= 0, 1.0, out)


def _bin_masses(mu: FloatArray, sigma: FloatArray, n: int, h: float) -> FloatArray:
    """Masses of a lognormal delay on bins ``[k h, (k + 1) h)``, shape (draw, n)."""
    edges = h * np.arange(n + 1, dtype=np.float64)
    s = _survival(edges[None, :], mu[:, None], sigma[:, None])
    return np.clip(s[:, :-1] - s[:, 1:], 0.0, None)


def _chain(a: FloatArray, d: FloatArray) -> FloatArray:
    """Bin masses of ``A + D`` from those of ``A`` and ``D``, both uniform within bins.

    A pair of bins ``i, j`` puts a triangular law on ``[(i + j) h, (i + j + 2) h)``:
    half of its mass in bin ``i + j``, half in ``i + j + 1``. Truncated at the grid.
    """
    n = a.shape[1]
    r = np.clip(fftconvolve(a, d, axes=1)[:, :n], 0.0, None)
    out = 0.5 * r
    out[:, 1:] += 0.5 * r[:, :-1]
    return out


def deal_outlook(
    params: FunnelParameters,
    plan: Plan,
    ids: Sequence[str] | None = None,
    *,
    grid_step: float = GRID_STEP,
) -> pd.DataFrame:
    """Compute the outlook of every unit open at the as-of date (one row each).

    Parameters
    ----------
    params : FunnelParameters
        Parameter draws and the open units (the engine's input).
    plan : Plan
        Period and horizon (day 0 = ``params.as_of``).
    ids : sequence of str, optional
        One label per open unit, in ``params.open_units`` order (record ids);
        default ``unit-<index>``.
    grid_step : float
        Grid width in days for chaining later steps (must divide a day).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`COLUMNS`, in open-unit order. ``amount`` is the unit's
        own amount (``amount_known``) or its cell's posterior-mean won deal;
        ``close_date_p50`` is the median close date given a win within the
        horizon (``NaT`` if no draw wins within it).

    Raises
    ------
    ValueError
        If ``ids`` does not have one label per open unit, or ``grid_step``
        does not divide a day.
    """
    ou = params.open_units
    n_units = len(ou)
    if ids is None:
        ids = [f"unit-{k}" for k in range(n_units)]
    if len(ids) != n_units:
        raise ValueError(f"{len(ids)} ids for {n_units} open units")
    per_day = round(1.0 / grid_step)
    if per_day < 1 or abs(per_day * grid_step - 1.0) > 1e-12:
        raise ValueError("grid_step must divide a day (1, 0.5, 0.25, ...)")
    h = 1.0 / per_day
    sim_days = plan.sim_days
    start_off, end_off = plan.start_offset, plan.end_offset
    n = sim_days * per_day  # bins up to the horizon
    lo_bin, hi_bin = start_off * per_day, (end_off + 1) * per_day
    S = len(params.stages) - 1
    conv, dmu, dsig = params.conversion, params.delay_mu, params.delay_sigma
    has_loss = params.loss_mu is not None
    lmu = params.loss_mu if params.loss_mu is not None else dmu
    lsig = params.loss_sigma if params.loss_sigma is not None else dsig
    deal_mean = np.exp(params.deal_size_mu + 0.5 * params.deal_size_sigma**2)  # (draw, cell)
    mids = h * (np.arange(n, dtype=np.float64) + 0.5)
    e_time = float(end_off + 1)  # outcomes read at the end of day end_off

    step_masses: dict[tuple[int, int], FloatArray] = {}

    def masses(c: int, j: int) -> FloatArray:
        if (c, j) not in step_masses:
            step_masses[(c, j)] = _bin_masses(dmu[:, c, j], dsig[:, c, j], n, h)
        return step_masses[(c, j)]

    won_p = np.zeros(n_units)
    lost_p = np.zeros(n_units)
    won_period = np.zeros(n_units)
    revenue = np.zeros(n_units)
    amount_shown = np.zeros(n_units)
    close_day = np.full(n_units, -1, dtype=np.int64)
    keys = np.stack([ou.cell.astype(np.float64), ou.stage.astype(np.float64), ou.age_days], 1)
    _, first, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    inverse = np.asarray(inverse).reshape(-1)
    for k, u0 in enumerate(first):
        c, s0, a = int(ou.cell[u0]), int(ou.stage[u0]), float(ou.age_days[u0])
        p = conv[:, c, s0]
        mu, sg = dmu[:, c, s0], dsig[:, c, s0]
        sf = _survival(np.array(a), mu, sg)
        if has_loss:
            sl = _survival(np.array(a), lmu[:, c, s0], lsig[:, c, s0])
            den = p * sf + (1.0 - p) * sl
            pc = np.where(den > 0, p * sf / np.where(den > 0, den, 1.0), p)
        else:
            den = 1.0 - p * (1.0 - sf)
            pc = np.where(den > 0, p * sf / np.where(den > 0, den, 1.0), 1.0)
        # non-converters of the first step leave after X - a, X ~ L | X > a
        sl_a = _survival(np.array(a), lmu[:, c, s0], lsig[:, c, s0])
        sl_e = _survival(np.array(a + e_time), lmu[:, c, s0], lsig[:, c, s0])
        left = np.where(sl_a > 0, (sl_a - sl_e) / np.where(sl_a > 0, sl_a, 1.0), 1.0)
        lost = (1.0 - pc) * left
        # the first step's time: X - a, X ~ F | X > a, as bin masses
        edges = a + h * np.arange(n + 1, dtype=np.float64)
        s_edges = _survival(edges[None, :], mu[:, None], sg[:, None])
        safe = np.where(sf > 0, sf, 1.0)[:, None]
        reach = np.clip(s_edges[:, :-1] - s_edges[:, 1:], 0.0, None) / safe
        # beyond the lognormal's tail (or a point mass passed) the step is at once
        reach[:, 0] = np.where(sf > 0, reach[:, 0], 1.0)
        reach *= pc[:, None]
        for j in range(s0 + 1, S):
            q = conv[:, c, j]
            ok = mids < e_time
            f_leave = 1.0 - _survival(e_time - mids[None, ok], lmu[:, c, j, None],
                                      lsig[:, c, j, None])
            lost = lost + (1.0 - q) * (reach[:, ok] * f_leave).sum(axis=1)
            reach = q[:, None] * _chain(reach, masses(c, j))
        by_end = reach[:, :hi_bin].sum(axis=1)
        in_period = reach[:, lo_bin:hi_bin].sum(axis=1)
        cum = np.cumsum(reach.mean(axis=0))  # mixture over draws
        daily = cum[per_day - 1 :: per_day]  # P(win, T < day + 1), day 0 .. sim_days-1
        day50 = -1
        if daily.size and daily[-1] > 0:
            day50 = int(np.searchsorted(daily, 0.5 * daily[-1], side="left"))
        for u in np.flatnonzero(inverse == k):
            amt = float(ou.amount[u])
            amt_d = deal_mean[:, c] if np.isnan(amt) else np.full(len(p), amt)
            won_p[u] = float(by_end.mean())
            lost_p[u] = float(lost.mean())
            won_period[u] = float(in_period.mean())
            revenue[u] = float((in_period * amt_d).mean())
            amount_shown[u] = float(amt_d.mean())
            close_day[u] = day50
    won_p = np.clip(won_p, 0.0, 1.0)
    lost_p = np.clip(lost_p, 0.0, 1.0 - won_p)
    open_p = np.clip(1.0 - won_p - lost_p, 0.0, 1.0)
    as_of = params.as_of
    close = [
        pd.Timestamp(as_of + dt.timedelta(days=int(d))) if d >= 0 else pd.NaT for d in close_day
    ]
    cells = np.asarray(params.cells, dtype=object)
    segs = np.asarray(params.segments, dtype=object)
    stages = np.asarray(params.stages, dtype=object)
    return pd.DataFrame(
        {
            "id": [str(i) for i in ids],
            "segment": segs[params.cell_segment[ou.cell]] if n_units else [],
            "cell": cells[ou.cell] if n_units else [],
            "stage": stages[ou.stage] if n_units else [],
            "age_days": ou.age_days.astype(np.float64),
            "amount": amount_shown,
            "amount_known": ~np.isnan(ou.amount),
            "p_won_in_period": won_p,
            "p_lost_in_period": lost_p,
            "p_open_at_period_end": open_p,
            "expected_revenue_in_period": revenue,
            "close_date_p50": pd.to_datetime(pd.Series(close, dtype="datetime64[ns]")),
        },
        columns=list(COLUMNS),
    )
