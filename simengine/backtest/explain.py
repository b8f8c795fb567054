"""Where a one-step forecast's revenue comes from, per cell, against what happened.

A backtest says *whether* a forecast missed; this table says *where*: for a
one-step funnel (entry stage -> won, e.g. the CRM export's opportunity ->
won) and an origin's posterior, the expected number of new units, of wins
among them and among the units open at the origin, the mean deal size and
the revenue, per cell, beside the same numbers realised in the full file.

Expectations are posterior means over draws of closed forms of the model the
engine simulates (not a simulation), with time continuous in days from the
as-of date and the period ``(0, H]``, ``H = period_days``:

* new units arrive at rate ``r / 7 * exp(b t / 7)`` per day (``r`` =
  ``arrival_rate``, ``b`` = ``arrival_trend``); one arriving at ``t`` is won
  in the period with probability ``p F(H - t)`` (``F`` = lognormal delay);
* a unit open at age ``a`` converts with ``pc(a)`` (the engine's law:
  ``p S_F(a) / (p S_F(a) + (1 - p) ((1 - q) S_G(a) + q))`` with the fitted
  time to loss ``G`` and dormant share ``q`` (0 if absent), else
  ``p S_F(a) / (1 - p F(a))``) and is then won in the period
  with probability ``(F(a + H) - F(a)) / S_F(a)``;
* a won unit's amount has mean ``exp(mu + sigma^2 / 2)`` (lognormal), or its
  known amount for open units that carry one.

The engine's day flooring and the period's first day are ignored (an error
of about a day in ninety), and so is the drift ahead (its steps have mean 0
on the logit and log scales, so they move these means only through the
curvature of the links).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from scipy.special import ndtr

from simengine.config.spec import FunnelSpec
from simengine.fitting.data import cell_labels

__all__ = ["explain_origin"]

_N_T = 182
"""Midpoint-rule nodes over the period for the new units' integral."""


def _sf_log(x: np.ndarray, mu: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """Lognormal survival at ``x`` (``x <= 0`` gives 1)."""
    with np.errstate(divide="ignore"):
        z = (np.log(np.maximum(x, 0.0)) - mu) / sigma
    return np.asarray(ndtr(-z))


def explain_origin(
    full: pd.DataFrame,
    spec: FunnelSpec,
    posterior: Path,
    period_days: int = 91,
) -> pd.DataFrame:
    """Return expected vs realised new units, wins, deal size and revenue per cell.

    Parameters
    ----------
    full : pandas.DataFrame
        Canonical records of the whole file (the realised side).
    spec : FunnelSpec
        The funnel; must have exactly two stages (one step).
    posterior : Path
        The origin's posterior file (its ``simengine_as_of`` is the origin).
    period_days : int
        The period ``as_of + 1 .. as_of + period_days``.

    Returns
    -------
    pandas.DataFrame
        One row per cell of the posterior and a ``total`` row: ``cell``,
        ``arrivals_model``, ``arrivals_real``, ``wins_new_model``,
        ``wins_new_real``, ``open_units``, ``wins_open_model``,
        ``wins_open_real``, ``deal_model``, ``deal_real`` (mean per won
        unit), ``revenue_model``, ``revenue_real``.

    Raises
    ------
    ValueError
        If the spec has more than one step.
    """
    if len(spec.stages) != 2:
        raise ValueError("explain_origin covers one-step funnels (two stages)")
    with xr.open_dataset(posterior, group="posterior", engine="h5netcdf") as ds:
        post = ds.load()
    with xr.open_dataset(posterior, group="constant_data", engine="h5netcdf") as ds:
        const = ds.load()
    as_of = dt.date.fromisoformat(post.attrs["simengine_as_of"])
    stages = json.loads(post.attrs["simengine_stages"])
    entry, last = stages[0], stages[1]

    def draws(name: str) -> np.ndarray:
        """(..., draw) array of a posterior variable, chains flattened."""
        return np.asarray(post[name].stack(s=("chain", "draw")).values)

    cells = [str(c) for c in post["cell"].values]
    p = draws("conversion")[:, 0]
    dmu, dsg = draws("delay_mu")[:, 0], draws("delay_sigma")[:, 0]
    es = [str(e) for e in post["entry_stage"].values]
    k = es.index(entry) if entry in es else None
    n_s = p.shape[-1]
    rate = draws("arrival_rate")[:, k] if k is not None else np.zeros((len(cells), n_s))
    trend = (
        draws("arrival_trend")[:, k]
        if (k is not None and "arrival_trend" in post)
        else np.zeros_like(rate)
    )
    has_loss = "loss_mu" in post and "loss_sigma" in post
    lmu = draws("loss_mu")[:, 0] if has_loss else None
    lsg = draws("loss_sigma")[:, 0] if has_loss else None
    dorm = draws("dormant")[:, 0] if (has_loss and "dormant" in post) else None
    deal = np.exp(draws("deal_size_mu") + 0.5 * draws("deal_size_sigma") ** 2)

    h = float(period_days)
    t = (np.arange(_N_T) + 0.5) * h / _N_T  # midpoints over (0, H]
    dt_ = h / _N_T

    o = pd.Timestamp(as_of)
    e = o + pd.Timedelta(days=period_days)
    lab = cell_labels(full, spec)
    won_at, entered = full[f"{last}_at"], full[f"{entry}_at"]
    won_in = (won_at > o) & (won_at <= e)
    old = entered <= o
    rows = []
    for i, c in enumerate(cells):
        # new units: integral over arrival times of rate(t) * p * F(H - t)
        lam = rate[i][None, :] / 7.0 * np.exp(trend[i][None, :] * t[:, None] / 7.0)
        f_left = 1.0 - _sf_log(h - t[:, None], dmu[i][None, :], dsg[i][None, :])
        arr = (lam * dt_).sum(axis=0)
        wins_new = (lam * p[i][None, :] * f_left * dt_).sum(axis=0)
        # open units at the origin
        sel = (const["open_cell"].values == c) & (const["open_stage"].values == entry)
        a = np.maximum(const["open_age_days"].values[sel].astype(np.float64), 0.5)[:, None]
        amt = const["open_amount"].values[sel].astype(np.float64)
        sf_a = _sf_log(a, dmu[i][None, :], dsg[i][None, :])
        sf_ah = _sf_log(a + h, dmu[i][None, :], dsg[i][None, :])
        if lmu is not None and lsg is not None:
            sg_a = _sf_log(a, lmu[i][None, :], lsg[i][None, :])
            q = dorm[i] if dorm is not None else np.zeros_like(p[i])
            pc = p[i] * sf_a / (p[i] * sf_a + (1.0 - p[i]) * ((1.0 - q) * sg_a + q))
        else:
            pc = p[i] * sf_a / (1.0 - p[i] * (1.0 - sf_a))
        w_open = pc * np.where(sf_a > 0, (sf_a - sf_ah) / np.where(sf_a > 0, sf_a, 1.0), 0.0)
        unit_amt = np.where(np.isfinite(amt)[:, None], amt[:, None], deal[i][None, :])
        rev = wins_new * deal[i] + (w_open * unit_amt).sum(axis=0)
        in_cell = lab == c
        w = won_in & in_cell
        rows.append(
            {
                "cell": c,
                "arrivals_model": float(arr.mean()),
                "arrivals_real": int(((entered > o) & (entered <= e) & in_cell).sum()),
                "wins_new_model": float(wins_new.mean()),
                "wins_new_real": int((w & ~old).sum()),
                "open_units": int(sel.sum()),
                "wins_open_model": float(w_open.sum(axis=0).mean()),
                "wins_open_real": int((w & old).sum()),
                "deal_model": float(deal[i].mean()),
                "deal_real": float(full.loc[w, "amount"].mean()) if w.any() else np.nan,
                "revenue_model": float(rev.mean()),
                "revenue_real": float(full.loc[w, "amount"].sum()),
            }
        )
    out = pd.DataFrame(rows)
    tot = out.drop(columns=["cell", "deal_model", "deal_real"]).sum()
    total = {"cell": "total", **tot.to_dict()}
    wins_m = total["wins_new_model"] + total["wins_open_model"]
    wins_r = total["wins_new_real"] + total["wins_open_real"]
    total["deal_model"] = total["revenue_model"] / wins_m if wins_m > 0 else np.nan
    total["deal_real"] = total["revenue_real"] / wins_r if wins_r > 0 else np.nan
    return pd.concat([out, pd.DataFrame([total])], ignore_index=True)
