"""Arrivals: new units per week per cell and entry stage, a local-level negative binomial.

For each (cell, entry stage) pair with at least one arrival in the window of
complete weeks before the as-of date (``FunnelData.arrival_counts``)::

    count[week] ~ NegBin(mean = exp(log_rate + level[e, week] + trend * x_week),
                         var = m + d m²)

* ``level[e, week]`` is a Gaussian random walk per entry stage, shared by its
  cells (lead flow moves in persistent shifts that hit every cell), with
  weekly innovation sd ``arrival_level_sd``. It is parameterised from the
  last week backwards (``level[e, last] = 0``, earlier weeks are offsets), so
  ``exp(log_rate)`` is the level of the last week before the as-of date,
  ``arrival_rate``, and the engine carries the walk on into the forecast
  with the same sd (:mod:`simengine.params`). A single shift in the window
  then moves the as-of level instead of being averaged in, and the band ahead
  widens with the horizon.
* ``x_week`` is the week's midpoint in weeks relative to the as-of date (the
  last week is ``x = -0.5``) and ``trend`` the weekly log growth on top of the
  walk (``arrival_trend``; fixed at 0 when the spec's ``arrival_trend`` is
  off).
* Log rates and trends are pooled across cells around an entry-stage level.
  The log rates' pooling law is a Student-t with :data:`POOL_NU` degrees of
  freedom: cells of one funnel can differ by 20x in volume (a niche product
  next to a best seller), and a normal hierarchy shrinks such an outlier
  towards the others by several of its own standard errors (on the CRM
  export it put 39 GTK 500 deals in a quarter that saw 6); the t's tails let
  a cell's own counts decide.
* ``sqrt(d)`` has a half-normal prior. PyMC's ``NegativeBinomial(mu,
  alpha)`` has ``var = mu + mu²/alpha``, so the contract's
  ``arrival_dispersion`` ``d`` is passed as ``alpha = 1/d``.

Pairs without arrivals in the window get rate, dispersion and trend 0.
The counts are a ``pm.Data`` container (``arrival_counts``), so a compiled
model refits new counts of the same pairs and weeks.
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from simengine.fitting._pooling import pooled
from simengine.fitting.data import FunnelData
from simengine.fitting.priors import DEFAULT_PRIORS, Priors, scale_prior

__all__ = ["CENTRED_MIN_ARRIVALS", "OUTPUT_VARS", "POOL_NU", "build_model", "week_offsets"]

OUTPUT_VARS = ("arrival_rate", "arrival_dispersion", "arrival_trend", "arrival_level_sd")
"""Posterior variables of this model that go into the posterior file."""


CENTRED_MIN_ARRIVALS = 20
"""Cell log rates are sampled centred when every pair has at least this many arrivals.

With ``n`` arrivals in the window the log rate's standard error is about
``1/sqrt(n)`` (0.22 at 20), well below the prior mean of the cell spread
(``arrival_cell_sd`` = 1): the data pin the level, so the centred form has no
funnel while the non-centred one ties ``sd`` and ``z`` into a banana (demo
data: bulk ESS 359 non-centred).
"""


POOL_NU = 3.0
"""Degrees of freedom of the Student-t pooling of the cells' log arrival rates."""


def week_offsets(n_weeks: int) -> np.ndarray:
    """Midpoints of the window's weeks, in weeks relative to the as-of date."""
    return np.arange(n_weeks, dtype=np.float64) - n_weeks + 0.5


def build_model(
    data: FunnelData, priors: Priors = DEFAULT_PRIORS, *, trend: bool = True
) -> pm.Model:
    """Build the arrivals model.

    Parameters
    ----------
    data : FunnelData
        Weekly counts and active (cell, entry stage) pairs.
    priors : Priors
        Prior scales.
    trend : bool
        Fit the log-linear trend (else it is 0).

    Returns
    -------
    pymc.Model
        With deterministics ``arrival_rate``, ``arrival_dispersion``,
        ``arrival_trend`` (dims ``cell, entry_stage``), ``arrival_level_sd``
        (dims ``entry_stage``; 0 for stages no unit enters at) and observed
        ``arrivals``.
    """
    pc, pe = np.nonzero(data.arrival_active)
    n_pairs = pc.size
    n_cells, n_entry = data.arrival_active.shape
    if n_pairs == 0 or data.n_weeks == 0:
        raise ValueError("no arrivals in the history window: cannot fit the arrival model")
    x = week_offsets(data.n_weeks)
    counts = data.arrival_counts[pc, pe, :]
    coords = {
        "cell": list(data.cells),
        "entry_stage": list(data.entry_stages),
        "pair": list(range(n_pairs)),
        "week": list(range(data.n_weeks)),
    }
    with pm.Model(coords=coords) as model:
        a = pm.Normal(
            "arrival_log_rate_global",
            priors.arrival_log_rate_loc,
            priors.arrival_log_rate_sd,
            dims="entry_stage",
        )
        sd = scale_prior("arrival_cell_sd", priors.arrival_cell_sd)
        n_obs = counts.sum(axis=1)
        # per-pair centring by data size (see CENTRED_MIN_ARRIVALS), t-distributed offsets
        centred = n_obs >= CENTRED_MIN_ARRIVALS
        raw = pm.StudentT(
            "arrival_log_rate_cell_raw",
            nu=POOL_NU,
            mu=pt.where(centred, a[pe], 0.0),
            sigma=pt.where(centred, sd, 1.0),
            dims="pair",
        )
        log_rate = pt.where(centred, raw, a[pe] + sd * raw)
        # local level: a random walk per entry stage, anchored at the last week
        n_w = data.n_weeks
        entry_used = np.unique(pe)
        level_sd = scale_prior("arrival_level_sd_raw", priors.arrival_level_sd, dims="entry_stage")
        if n_w > 1:
            z = pm.Normal("arrival_level_z", 0.0, 1.0, shape=(n_entry, n_w - 1))
            back = pt.cumsum(z[:, ::-1], axis=1)[:, ::-1]
            walk = pt.concatenate([-level_sd[:, None] * back, pt.zeros((n_entry, 1))], axis=1)
        else:
            walk = pt.zeros((n_entry, 1))
        used = np.zeros(n_entry)
        used[entry_used] = 1.0
        pm.Deterministic("arrival_level_sd", level_sd * used, dims="entry_stage")
        if trend:
            b = pm.Normal("arrival_trend_global", 0.0, priors.arrival_trend_sd, dims="entry_stage")
            bsd = scale_prior("arrival_trend_cell_sd", priors.arrival_trend_cell_sd)
            slope = pooled("arrival_trend_cell", b[pe], bsd, n_obs, "pair")
        else:
            slope = pt.zeros(n_pairs)
        root_d = pm.HalfNormal("arrival_dispersion_root", priors.arrival_dispersion_sd, dims="pair")
        disp = root_d**2
        mean = pt.exp(log_rate[:, None] + walk[pe, :] + slope[:, None] * x[None, :])
        # observed counts as a data container: a compiled model refits new counts
        # of the same pairs and weeks
        obs = pm.Data("arrival_counts", counts.astype(np.int64), dims=("pair", "week"))
        pm.NegativeBinomial(
            "arrivals", mu=mean, alpha=1.0 / disp[:, None], observed=obs, dims=("pair", "week")
        )
        zeros = pt.zeros((n_cells, n_entry))
        dims = ("cell", "entry_stage")
        pm.Deterministic(
            "arrival_rate", pt.set_subtensor(zeros[pc, pe], pt.exp(log_rate)), dims=dims
        )
        pm.Deterministic("arrival_dispersion", pt.set_subtensor(zeros[pc, pe], disp), dims=dims)
        pm.Deterministic("arrival_trend", pt.set_subtensor(zeros[pc, pe], slope), dims=dims)
    return model
