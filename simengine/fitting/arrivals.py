"""Arrivals: new units per week per cell and entry stage, a local-level negative binomial.

For each (cell, entry stage) pair with at least one arrival in the window of
complete weeks before the as-of date (``FunnelData.arrival_counts``)::

    count[week] ~ NegBin(mean = exp(log_rate + level[e, week] + trend * x_week),
                         var = m + d m²)

* ``level[e, week]`` is a Gaussian random walk per entry stage, shared by its
  cells (lead flow moves in persistent shifts that hit every cell), with
  weekly innovation sd ``arrival_level_sd``. The contract's
  ``arrival_rate`` is the level at the as-of date (the last week's walk, the
  trend carried to ``x = 0``), and the engine carries the walk on into the
  forecast with the same sd (:mod:`simengine.params`). A single shift in the
  window then moves the as-of level instead of being averaged in, and the
  band ahead widens with the horizon.
* ``x_week`` is the week's midpoint in weeks relative to the as-of date (the
  last week is ``x = -0.5``) and ``trend`` the weekly log growth on top of the
  walk (``arrival_trend``; fixed at 0 when the spec's ``arrival_trend`` is
  off).
* Sampled centred on the window: ``log_rate`` is the log level at the
  window's mean week, the walk is taken relative to its own mean over the
  window and the trend multiplies ``x - mean(x)``. Every week's counts then
  inform ``log_rate`` whatever the walk's sd, and the level and the trend are
  uncorrelated a priori. Anchored at the as-of date instead, the level's
  posterior width would follow the walk's sd (a funnel: wide when the walk is
  free, narrow when it is flat) and the level and trend would trade off
  along a ridge; the two forms are the same model up to the prior location
  of ``log_rate``. The walk itself is sampled non-centred in its
  orthonormal (Karhunen-Loeve) basis (:func:`walk_basis`), where the counts
  inform each standard-normal component separately; increments summed into
  a walk would tie the early increments, which move every later week, to
  each other and to the walk's sd.
* Log rates and trends are pooled across the cells of an entry stage around
  the stage's level, with a *fixed* pooling scale (``arrival_cell_sd``,
  ``arrival_trend_cell_sd``) and the stage's level integrated out
  (:func:`~simengine.fitting._pooling.exchangeable_levels`). Cells of one
  funnel differ by 100x in volume (a niche product next to a best seller, a
  thin cell of 20 units next to one of 2,000), so a pooling scale learned
  from a handful of cells would be set by that spread and mostly by its
  prior, and would make a funnel with the stage's level (the centred form)
  or a banana with each busy cell (the non-centred one). A wide fixed scale
  (a cell sits within ~50x of its stage's level a priori) shrinks no cell
  by more than a few percent of its own log rate, and leaves the sampler a
  Gaussian prior: every cell's level is sampled centred. A cell alone at
  its entry stage (one cell, or the only one with sales-sourced entry) gets
  the sum of the two prior variances.
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

from simengine.fitting._pooling import exchangeable_levels
from simengine.fitting.data import FunnelData
from simengine.fitting.priors import DEFAULT_PRIORS, Priors, scale_prior

__all__ = [
    "OUTPUT_VARS",
    "build_model",
    "walk_basis",
    "week_offsets",
]

OUTPUT_VARS = ("arrival_rate", "arrival_dispersion", "arrival_trend", "arrival_level_sd")
"""Posterior variables of this model that go into the posterior file."""


def walk_basis(n_weeks: int) -> tuple[np.ndarray, np.ndarray]:
    """Orthonormal basis of a weekly random walk taken relative to its mean over the window.

    A walk ``P[t] = z[0] + ... + z[t-1]`` (``P[0] = 0``, ``z`` standard
    normal) minus its mean over ``n`` weeks has covariance ``K = C S C``
    (``S[s, t] = min(s, t)``, ``C`` the centring matrix), of rank ``n - 1``.
    With ``K = U diag(lam) U'``, ``U sqrt(lam) xi`` (``xi`` standard normal)
    has exactly that law: the Karhunen-Loeve form of the walk, slow
    components first (largest ``lam``).

    Returns
    -------
    basis : ndarray, shape (n_weeks, n_weeks - 1)
    lam : ndarray, shape (n_weeks - 1,)
    """
    t = np.arange(n_weeks, dtype=np.float64)
    cov = np.minimum.outer(t, t)
    centre = np.eye(n_weeks) - 1.0 / n_weeks
    lam, vec = np.linalg.eigh(centre @ cov @ centre)
    order = np.argsort(lam)[::-1][: n_weeks - 1]
    basis = vec[:, order]
    # a fixed sign per component (eigenvectors are defined up to sign)
    peak = basis[np.argmax(np.abs(basis), axis=0), np.arange(basis.shape[1])]
    return basis * np.sign(peak), np.maximum(lam[order], 0.0)


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
        log_rate = pt.zeros(n_pairs)
        for e in np.unique(pe):
            sel = np.flatnonzero(pe == e)
            # the stage's level integrated out; a fixed pooling scale (see the
            # module docstring), so every pair is centred
            lv = exchangeable_levels(
                f"arrival_log_rate_{data.entry_stages[e]}",
                priors.arrival_log_rate_loc,
                priors.arrival_log_rate_sd,
                priors.arrival_cell_sd,
                np.ones(sel.size, bool),
            )
            log_rate = pt.set_subtensor(log_rate[sel], lv)
        # local level: a random walk per entry stage, sampled centred on the
        # window's mean (see the module docstring)
        n_w = data.n_weeks
        entry_used = np.unique(pe)
        level_sd = scale_prior("arrival_level_sd_raw", priors.arrival_level_sd, dims="entry_stage")
        if n_w > 1:
            basis, lam = walk_basis(n_w)
            z = pm.Normal("arrival_level_z", 0.0, 1.0, shape=(n_entry, n_w - 1))
            walk = (level_sd[:, None] * np.sqrt(lam)[None, :] * z) @ basis.T
        else:
            walk = pt.zeros((n_entry, 1))
        pm.Deterministic("arrival_level", walk - walk[:, -1:], dims=("entry_stage", "week"))
        used = np.zeros(n_entry)
        used[entry_used] = 1.0
        pm.Deterministic("arrival_level_sd", level_sd * used, dims="entry_stage")
        slope = pt.zeros(n_pairs)
        if trend:
            for e in np.unique(pe):
                sel = np.flatnonzero(pe == e)
                tr = exchangeable_levels(
                    f"arrival_trend_{data.entry_stages[e]}",
                    0.0,
                    priors.arrival_trend_sd,
                    priors.arrival_trend_cell_sd,
                    np.ones(sel.size, bool),
                )
                slope = pt.set_subtensor(slope[sel], tr)
        root_d = pm.HalfNormal("arrival_dispersion_root", priors.arrival_dispersion_sd, dims="pair")
        disp = root_d**2
        xc = x - x.mean()
        mean = pt.exp(log_rate[:, None] + walk[pe, :] + slope[:, None] * xc[None, :])
        # the level at the as-of date (x = 0) without walk beyond the last week
        as_of_rate = pt.exp(log_rate + walk[pe, -1] - slope * x.mean())
        # observed counts as a data container: a compiled model refits new counts
        # of the same pairs and weeks
        obs = pm.Data("arrival_counts", counts.astype(np.int64), dims=("pair", "week"))
        pm.NegativeBinomial(
            "arrivals", mu=mean, alpha=1.0 / disp[:, None], observed=obs, dims=("pair", "week")
        )
        zeros = pt.zeros((n_cells, n_entry))
        dims = ("cell", "entry_stage")
        pm.Deterministic("arrival_rate", pt.set_subtensor(zeros[pc, pe], as_of_rate), dims=dims)
        pm.Deterministic("arrival_dispersion", pt.set_subtensor(zeros[pc, pe], disp), dims=dims)
        pm.Deterministic("arrival_trend", pt.set_subtensor(zeros[pc, pe], slope), dims=dims)
    return model
