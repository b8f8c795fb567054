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

* it takes step ``s`` with ``p S_F(a) / (p S_F(a) + (1 - p) ((1 - q) S_G(a)
  + q))`` (with a time to loss; ``q`` the step's ``dormant`` share, 0 when
  the parameters carry none) or ``p S_F(a) / (1 - p F(a))`` (without), after
  ``X - a``, ``X ~ F | X > a``; otherwise it is dormant (stays open) with
  ``q / ((1 - q) S_G(a) + q)`` and else leaves after ``X - a``,
  ``X ~ L | X > a``;
* every later step ``j`` is taken with ``conversion[j]`` after a
  lognormal ``delay_mu/sigma[j]`` delay, else the unit stays open with
  ``dormant[j]`` and otherwise leaves after a lognormal ``L[j]`` time;
* a win on day ``floor(T)`` counts as period revenue when that day is in
  ``start_offset .. end_offset``; its amount is the unit's own, else the
  cell's mean won deal ``exp(mu + sigma^2 / 2)`` (the engine draws it from
  that lognormal, independently of the timing).

The first step's time is exact (tail masses of the truncated lognormal on
a grid of :data:`GRID_STEP` days); later steps are chained by convolving
grid masses, treating mass as uniform within a grid cell, which is exact
for a one-step unit and leaves an error of order ``GRID_STEP^2`` times the
density's curvature for the others. The probabilities are linear in the
first step's masses, so the chain is applied once per (cell, stage) and
draw, backwards (its adjoint), and each unit costs one dot product per
draw. The median close date mixes the win-time laws of at most
:data:`MEDIAN_DRAWS` evenly spaced draws. Nothing here draws a random
number.

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
from pandas._libs.tslibs.nattype import NaTType
from scipy.signal import fftconvolve
from scipy.special import ndtr

from simengine.config.plan import Plan
from simengine.params import FunnelParameters

__all__ = ["COLUMNS", "GRID_STEP", "MEDIAN_DRAWS", "deal_outlook"]

FloatArray = npt.NDArray[np.float64]

#: Width (days) of the time grid later steps are chained on; divides a day.
GRID_STEP = 0.25

#: Draws (evenly spaced) whose win-time laws the median close date mixes.
MEDIAN_DRAWS = 128

#: Draws processed at once (bounds the memory of the survival grids).
_CHUNK = 1024

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


def _chain_adjoint(w: FloatArray, d: FloatArray) -> FloatArray:
    """Weights ``v`` with ``<a, v> = <_chain(a, d), w>`` for every ``a`` (same grid)."""
    n = w.shape[1]
    rt = 0.5 * w
    rt[:, :-1] += 0.5 * w[:, 1:]
    return fftconvolve(rt, d[:, ::-1], axes=1)[:, n - 1 : 2 * n - 1]


class _Survival:
    """``S_F`` of one step for a chunk of draws on an absolute grid ``m h``, or pointwise."""

    def __init__(self, mu: FloatArray, sigma: FloatArray, h: float, length: int | None) -> None:
        self.mu, self.sigma, self.h = mu[:, None], sigma[:, None], h
        self.grid = None
        if length is not None:
            self.grid = _survival(
                h * np.arange(length, dtype=np.float64)[None, :], self.mu, self.sigma
            )

    def at(self, a: float, n: int) -> FloatArray:
        """``S_F(a + k h)`` for ``k = 0 .. n``, shape (draw, n + 1)."""
        m = a / self.h
        if self.grid is not None and m == round(m):
            k = round(m)
            return self.grid[:, k : k + n + 1]
        return _survival(
            a + self.h * np.arange(n + 1, dtype=np.float64)[None, :], self.mu, self.sigma
        )


def _first_step(s_grid: FloatArray) -> FloatArray:
    """Bin masses of ``X - a``, ``X ~ F | X > a``, from ``S_F(a + k h)`` (first column = S_F(a)).

    Past the law's reach (``S_F(a) = 0``: a point mass passed, or the far tail)
    the step is taken at once, as the engine's truncated draw does.
    """
    sf = s_grid[:, :1]
    masses = np.clip(s_grid[:, :-1] - s_grid[:, 1:], 0.0, None) / np.where(sf > 0, sf, 1.0)
    masses[:, 0] = np.where(sf[:, 0] > 0, masses[:, 0], 1.0)
    return masses


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
        default the open units' own ids (``params.open_units.ids``), else
        ``unit-<index>``.
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
        ids = ou.ids if ou.ids is not None else [f"unit-{k}" for k in range(n_units)]
    if len(ids) != n_units:
        raise ValueError(f"{len(ids)} ids for {n_units} open units")
    per_day = round(1.0 / grid_step)
    if per_day < 1 or abs(per_day * grid_step - 1.0) > 1e-12:
        raise ValueError("grid_step must divide a day (1, 0.5, 0.25, ...)")
    h = 1.0 / per_day
    sim_days = plan.sim_days
    start_off, end_off = plan.start_offset, plan.end_offset
    n_full = sim_days * per_day  # bins up to the horizon
    n_e = (end_off + 1) * per_day  # bins up to the end of the period's last day
    lo_bin = start_off * per_day
    e_time = float(end_off + 1)
    S = len(params.stages) - 1
    n_draws = params.n_draws
    conv, dmu, dsig = params.conversion, params.delay_mu, params.delay_sigma
    has_loss = params.loss_mu is not None
    lmu = params.loss_mu if params.loss_mu is not None else dmu
    lsig = params.loss_sigma if params.loss_sigma is not None else dsig
    dorm = params.dormant if params.dormant is not None else np.zeros_like(conv)
    deal_mean = np.exp(params.deal_size_mu + 0.5 * params.deal_size_sigma**2)  # (draw, cell)
    mids = h * (np.arange(n_e, dtype=np.float64) + 0.5)
    med_draws = np.unique(np.linspace(0, n_draws - 1, min(n_draws, MEDIAN_DRAWS)).round()).astype(
        np.int64
    )

    # sums over draws, per unit
    won_sum = np.zeros(n_units)
    lost_sum = np.zeros(n_units)
    rev_sum = np.zeros(n_units)
    won_period_sum = np.zeros(n_units)
    amt_sum = np.zeros(n_units)
    daily_mix = np.zeros((n_units, sim_days))  # P(win on a day < k + 1), summed over med draws
    amounts = ou.amount.astype(np.float64)
    groups: dict[tuple[int, int], list[int]] = {}
    for u in range(n_units):
        groups.setdefault((int(ou.cell[u]), int(ou.stage[u])), []).append(u)
    passes = [(np.arange(d0, min(d0 + _CHUNK, n_draws)), False) for d0 in range(0, n_draws, _CHUNK)]
    passes.append((med_draws, True))  # the median's draws, over the whole horizon
    for dr, median in passes:
        n_grid = n_full if median else n_e
        for (c, s0), members in groups.items():
            units = np.asarray(members, dtype=np.int64)
            ages = ou.age_days[units]
            uniq, inverse = np.unique(ages, return_inverse=True)
            inverse = np.asarray(inverse).reshape(-1)
            later = list(range(s0 + 1, S))
            # adjoint weights of the later steps on the first step's bins (bins < n_e)
            w_won = np.ones((len(dr), n_e))
            w_in = np.zeros((len(dr), n_e))
            w_in[:, lo_bin:] = 1.0
            w_lost = np.zeros((len(dr), n_e))
            step_masses = {}
            for j in reversed(later):
                dm = _bin_masses(dmu[dr, c, j], dsig[dr, c, j], n_grid, h)
                step_masses[j] = dm
                if median:
                    continue
                q = conv[dr, c, j][:, None]
                g = 1.0 - _survival(
                    e_time - mids[None, :], lmu[dr, c, j, None], lsig[dr, c, j, None]
                )
                w_won = q * _chain_adjoint(w_won, dm)
                w_in = q * _chain_adjoint(w_in, dm)
                stay = dorm[dr, c, j][:, None]
                w_lost = q * _chain_adjoint(w_lost, dm) + (1.0 - q) * (1.0 - stay) * g
            p = conv[dr, c, s0]
            integral = bool(np.all(uniq * per_day == np.round(uniq * per_day)))
            length = round(float(uniq.max()) * per_day) + n_grid + 1 if integral else None
            surv_f = _Survival(dmu[dr, c, s0], dsig[dr, c, s0], h, length)
            # per draw and age: P(convert), and P(a non-converter has left by the end)
            lm, ls = lmu[dr, c, s0, None], lsig[dr, c, s0, None]
            sf_all = _survival(uniq[None, :], dmu[dr, c, s0, None], dsig[dr, c, s0, None])
            sl_a = _survival(uniq[None, :], lm, ls)
            sl_e = _survival(uniq[None, :] + e_time, lm, ls)
            pk = p[:, None]
            qk = dorm[dr, c, s0, None]
            if has_loss:
                # non-converters: dormant (q) or lost later ((1 - q) S_G(a))
                rest = (1.0 - qk) * sl_a + qk
                den = pk * sf_all + (1.0 - pk) * rest
                pc_all = np.where(den > 0, pk * sf_all / np.where(den > 0, den, 1.0), pk)
                # P(a non-converter leaves by the end): not dormant, and G ends by then
                left_all = np.where(
                    rest > 0, (1.0 - qk) * (sl_a - sl_e) / np.where(rest > 0, rest, 1.0), 1.0
                )
            else:
                den = 1.0 - pk * (1.0 - sf_all)
                pc_all = np.where(den > 0, pk * sf_all / np.where(den > 0, den, 1.0), 1.0)
                left_all = np.where(sl_a > 0, (sl_a - sl_e) / np.where(sl_a > 0, sl_a, 1.0), 1.0)
            for k, a in enumerate(uniq):
                s_grid = surv_f.at(float(a), n_grid)
                pc, left = pc_all[:, k], left_all[:, k]
                t1 = _first_step(s_grid)  # (draw, n_grid)
                if median:
                    reach = pc[:, None] * t1
                    for j in later:
                        reach = conv[dr, c, j][:, None] * _chain(reach, step_masses[j])
                    day_mix = np.cumsum(reach.sum(axis=0))[per_day - 1 :: per_day]
                    for u in units[inverse == k]:
                        daily_mix[u] += day_mix
                    continue
                won = pc * np.einsum("dt,dt->d", t1, w_won)
                in_period = pc * np.einsum("dt,dt->d", t1, w_in)
                lost = (1.0 - pc) * left + pc * np.einsum("dt,dt->d", t1, w_lost)
                for u in units[inverse == k]:
                    amt = amounts[u]
                    amt_d = deal_mean[dr, c] if np.isnan(amt) else np.full(len(dr), amt)
                    won_sum[u] += won.sum()
                    lost_sum[u] += lost.sum()
                    won_period_sum[u] += in_period.sum()
                    rev_sum[u] += (in_period * amt_d).sum()
                    amt_sum[u] += amt_d.sum()
    won_p = np.clip(won_sum / n_draws, 0.0, 1.0)
    lost_p = np.clip(lost_sum / n_draws, 0.0, 1.0 - won_p)
    open_p = np.clip(1.0 - won_p - lost_p, 0.0, 1.0)
    close: list[pd.Timestamp | NaTType] = []
    for u in range(n_units):
        mix = daily_mix[u]
        if mix.size and mix[-1] > 0:
            day = int(np.searchsorted(mix, 0.5 * mix[-1], side="left"))
            close.append(pd.Timestamp(params.as_of + dt.timedelta(days=day)))
        else:
            close.append(pd.NaT)
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
            "amount": amt_sum / n_draws,
            "amount_known": ~np.isnan(amounts),
            "p_won_in_period": won_p,
            "p_lost_in_period": lost_p,
            "p_open_at_period_end": open_p,
            "expected_revenue_in_period": rev_sum / n_draws,
            "close_date_p50": pd.to_datetime(pd.Series(close, dtype="datetime64[ns]")),
        },
        columns=list(COLUMNS),
    )
