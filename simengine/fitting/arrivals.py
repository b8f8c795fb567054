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
  of ``log_rate``.
* Increments summed into a walk would tie the early increments, which move
  every later week, to each other and to the walk's sd; the walk is
  sampled in orthonormal coordinates instead. Its slowest Karhunen-Loeve
  component (:func:`walk_basis`) is almost a straight line (98.6% of its
  square in 52 weeks), so the walk and the trend would both explain a
  straight movement of the window, which the counts see only as a sum: a
  ridge. The coordinates are therefore ``b``, the path along the unit
  trend direction ``xhat``, and ``r``, the walk orthogonal to it in the
  eigenbasis of its covariance there (:func:`path_basis`): ``r ~ Normal(0,
  sd² diag(mu))`` exactly, and ``b | r`` normal with the walk's part along
  ``xhat`` plus the stage's *common* trend (its global trend plus the mean
  of its pairs' offsets, independent of the offsets around that mean)
  times ``|x - mean(x)|``. The common trend is drawn back from its exact
  conditional given ``b`` and ``r`` (standard normal
  ``arrival_trend_common_z``), the pairs' offsets around their mean are a
  zero-sum normal. The same model as the walk and the trends sampled
  apart, without the ridge: the counts see ``b``, and its split into walk
  and trend is the prior's.
* Each coordinate is sampled centred or non-centred from the data
  (:func:`walk_centring`), by the classic rule of
  :mod:`~simengine.fitting._pooling`: centred where the counts' precision
  about it times its prior variance is at least 1. Thick cells pin ``b``
  and the walk's slow components (centred, else the non-centred standard
  normals would tie to the walk's sd in a banana) and leave the fast ones
  to the prior (non-centred, else a funnel). The choice is a data
  container (``arrival_level_centred``), so the compiled model does not
  depend on it.
* Log rates and trends are pooled across the cells of an entry stage around
  the stage's level, with a *fixed* pooling scale (``arrival_cell_sd``,
  ``arrival_trend_cell_sd``); for the log rates the stage's level is
  integrated out (:func:`~simengine.fitting._pooling.exchangeable_levels`),
  for the trends it is part of ``b`` (above). Cells of one
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
from simengine.fitting.priors import DEFAULT_PRIORS, SCALE_PRIOR_SHAPE, Priors, scale_prior

__all__ = [
    "OUTPUT_VARS",
    "WALK_SD_QUANTILE",
    "build_model",
    "path_basis",
    "walk_basis",
    "walk_centring",
    "week_offsets",
]

OUTPUT_VARS = ("arrival_rate", "arrival_dispersion", "arrival_trend", "arrival_level_sd")
"""Posterior variables of this model that go into the posterior file."""


WALK_SD_QUANTILE = 0.1
"""Posterior quantile of the walk's sd at which :func:`walk_centring` applies the centring rule."""


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


def _walk_sd_estimate(comp: np.ndarray, lam: np.ndarray, noise: float, prior_mean: float) -> float:
    """Approximate lower posterior decile of the walk's weekly sd from its projected components.

    ``comp[k] ~ Normal(0, sd² lam[k] + noise)`` (the walk's Karhunen-Loeve
    components observed with the counts' noise), times the sd's gamma prior
    (:func:`~simengine.fitting.priors.scale_prior`), on a grid. The lower
    decile, not a central value: a component sampled centred makes a funnel
    where the sampler visits small sds, so it is centred only where the
    counts pin it across the sd's posterior (when the counts show no walk at
    all the posterior is wide, spread over the prior's low end).
    """
    grid = np.geomspace(1e-4, 2.0, 400)
    var = grid[:, None] ** 2 * lam[None, :] + noise
    loglik = -0.5 * np.sum(np.log(var) + comp[None, :] ** 2 / var, axis=1)
    shape = SCALE_PRIOR_SHAPE
    # the gamma density times d(sd) = sd d(log sd) on the log-spaced grid
    logpost = loglik + shape * np.log(grid) - shape / prior_mean * grid
    w = np.exp(logpost - logpost.max())
    cdf = np.cumsum(w) / w.sum()
    return float(grid[np.searchsorted(cdf, WALK_SD_QUANTILE)])


def _common_trend_sd(n_pairs: int, priors: Priors, trend: bool) -> float:
    """Prior sd of an entry stage's common trend: its global trend plus its pairs' mean offset."""
    if not trend or n_pairs == 0:
        return 0.0
    return float(np.sqrt(priors.arrival_trend_sd**2 + priors.arrival_trend_cell_sd**2 / n_pairs))


def walk_centring(
    data: FunnelData, priors: Priors = DEFAULT_PRIORS, *, trend: bool = True
) -> np.ndarray:
    """Which coordinates of each entry stage's path are sampled centred.

    Column 0 is ``b``, the path along the trend's direction (the walk's part
    there plus the common trend), the others the walk orthogonal to it
    (:func:`path_basis`). The classic rule
    (:func:`~simengine.fitting._pooling.centred_mask`): centred where the
    counts' precision about the coordinate times its prior variance (``sd²
    mu[k]``, or ``sd² nu + s² |x - mean(x)|²`` for ``b``, ``s`` the common
    trend's prior sd) is at least 1. A coordinate's likelihood precision is
    the Fisher information of the stage's log level in one week (orthonormal
    basis), ``sum_p m_p / (1 + d_p m_p)`` over the stage's pairs (mean
    weekly count ``m_p``, dispersion ``d_p``, a moment estimate from the
    weekly differences, which the slow level hardly moves). The walk's sd is
    its approximate posterior's lower decile (:func:`_walk_sd_estimate`,
    :data:`WALK_SD_QUANTILE`) given the projections ``basis' y`` of the
    precision-weighted weekly log counts ``y``. Thick pairs then sample the
    trend's direction and the slow components of the walk (which their
    counts pin down) centred and the fast ones non-centred; a path the
    counts can hardly see is non-centred throughout.

    Returns
    -------
    ndarray of bool, shape (n_entry_stages, n_weeks - 1)
    """
    n_entry = data.arrival_active.shape[1]
    n_w = data.n_weeks
    out = np.zeros((n_entry, max(n_w - 1, 0)), bool)
    if n_w < 2:
        return out
    _, basis, mu, _, nu = path_basis(n_w)
    x = week_offsets(n_w)
    xc2 = float(np.sum((x - x.mean()) ** 2))
    pc, pe = np.nonzero(data.arrival_active)
    for e in np.unique(pe):
        y = np.asarray(data.arrival_counts[pc[pe == e], e, :], dtype=np.float64)
        m = y.mean(axis=1)
        half_var = 0.5 * np.mean(np.diff(y, axis=1) ** 2, axis=1)
        d = np.maximum(0.0, (half_var - m) / np.maximum(m, 1e-12) ** 2)
        info = m / (1.0 + d * m)
        prec = float(info.sum())
        if not prec > 0:
            continue
        log_level = info @ np.log((y + 0.5) / (m[:, None] + 0.5)) / prec
        sd = _walk_sd_estimate(basis.T @ log_level, mu, 1.0 / prec, priors.arrival_level_sd)
        trend_var = _common_trend_sd(y.shape[0], priors, trend) ** 2 * xc2
        out[e, 0] = prec * (sd**2 * nu + trend_var) >= 1.0
        out[e, 1:] = prec * sd**2 * mu >= 1.0
    return out


def path_basis(n_weeks: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]:
    """Split the walk's coordinates into the trend's direction and the walk orthogonal to it.

    ``xhat`` is the unit vector along the centred week offsets ``x -
    mean(x)``; ``basis`` (``n_weeks x n_weeks - 2``) and ``mu`` the
    eigenvectors and eigenvalues of the covariance ``P K P`` of the unit
    walk (relative to its mean, ``K`` of :func:`walk_basis`) projected
    orthogonally to ``xhat`` (``P``). In these coordinates the walk is ``r =
    basis' walk ~ Normal(0, diag(mu))`` and ``xhat' walk | r ~
    Normal(k'diag(mu)⁻¹r, nu)`` with ``k = basis' K xhat`` and ``nu =
    xhat'K xhat - k'diag(mu)⁻¹k``.

    Returns
    -------
    xhat : ndarray, shape (n_weeks,)
    basis : ndarray, shape (n_weeks, n_weeks - 2)
    mu : ndarray, shape (n_weeks - 2,)
    k : ndarray, shape (n_weeks - 2,)
    nu : float
    """
    t = np.arange(n_weeks, dtype=np.float64)
    centre = np.eye(n_weeks) - 1.0 / n_weeks
    cov = centre @ np.minimum.outer(t, t) @ centre
    xc = t - t.mean()
    xhat = xc / np.linalg.norm(xc)
    proj = centre - np.outer(xhat, xhat)
    mu, vec = np.linalg.eigh(proj @ cov @ proj)
    order = np.argsort(mu)[::-1][: n_weeks - 2]
    basis = vec[:, order]
    peak = basis[np.argmax(np.abs(basis), axis=0), np.arange(basis.shape[1])]
    basis = basis * np.sign(peak)
    mu = np.maximum(mu[order], 1e-300)
    k = basis.T @ cov @ xhat
    nu = float(xhat @ cov @ xhat - np.sum(k**2 / mu))
    return xhat, basis, mu, k, max(nu, 0.0)


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
        # the path: a random walk per entry stage plus the stage's common
        # trend, sampled together (see the module docstring and path_basis)
        n_w = data.n_weeks
        entry_used = np.unique(pe)
        level_sd = scale_prior("arrival_level_sd_raw", priors.arrival_level_sd, dims="entry_stage")
        xc = x - x.mean()
        n_per = np.bincount(pe, minlength=n_entry)
        common_sd = np.array([_common_trend_sd(int(n), priors, trend) for n in n_per])
        if n_w > 1:
            # coordinates: b along the trend's direction xhat, r the walk
            # orthogonal to it (path_basis); b = the walk's part along xhat
            # plus the common trend's g |xc|. Each sampled centred (c = 1) or
            # non-centred (c = 0) as walk_centring chooses from the counts: a
            # data container, so the compiled graph does not depend on it
            xhat, basis, mu, kv, nu = path_basis(n_w)
            c = pm.Data(
                "arrival_level_centred",
                walk_centring(data, priors, trend=trend).astype(np.float64),
            )
            c_b, c_r = c[:, 0], c[:, 1:]
            r_sd = level_sd[:, None] * np.sqrt(mu)[None, :]
            r_raw = pm.Normal(
                "arrival_level_z", 0.0, c_r * r_sd + (1.0 - c_r), shape=(n_entry, n_w - 2)
            )
            r = r_raw * (c_r + (1.0 - c_r) * r_sd)
            # b | r: the walk's part along xhat given r, plus the common trend
            b_mean = pt.sum(r * (kv / mu)[None, :], axis=1)
            walk_var = level_sd**2 * nu
            trend_var = (common_sd * np.linalg.norm(xc)) ** 2
            b_sd = pt.sqrt(walk_var + trend_var)
            b_raw = pm.Normal(
                "arrival_path_b", c_b * b_mean, c_b * b_sd + (1.0 - c_b), shape=n_entry
            )
            b = c_b * b_raw + (1.0 - c_b) * (b_mean + b_sd * b_raw)
            path = b[:, None] * xhat[None, :] + r @ basis.T
            common = None
            if trend:
                # g |xc| | b, r: the trend's share of b - b_mean (exact conditional)
                resid = b - b_mean
                share = trend_var / (walk_var + trend_var)
                z_g = pm.Normal("arrival_trend_common_z", 0.0, 1.0, shape=n_entry)
                g_x = share * resid + pt.sqrt(share * walk_var) * z_g
                common = g_x / np.linalg.norm(xc)
        else:
            path = pt.zeros((n_entry, 1))
            common = None
        slope = pt.zeros(n_pairs)
        dev_slope = pt.zeros(n_pairs)
        walk = path
        if trend:
            if common is None:
                g = pm.Normal("arrival_trend_common_z", 0.0, 1.0, shape=n_entry) * common_sd
            else:
                g = common
                walk = path - g[:, None] * xc[None, :]
            for e in entry_used:
                sel = np.flatnonzero(pe == e)
                dev = pt.zeros(sel.size)
                if sel.size > 1:
                    # the pairs' offsets around their mean, independent of it
                    dev = pm.ZeroSumNormal(
                        f"arrival_trend_{data.entry_stages[e]}_dev",
                        sigma=priors.arrival_trend_cell_sd,
                        shape=sel.size,
                    )
                slope = pt.set_subtensor(slope[sel], g[e] + dev)
                dev_slope = pt.set_subtensor(dev_slope[sel], dev)
        pm.Deterministic("arrival_level", walk - walk[:, -1:], dims=("entry_stage", "week"))
        used = np.zeros(n_entry)
        used[entry_used] = 1.0
        pm.Deterministic("arrival_level_sd", level_sd * used, dims="entry_stage")
        root_d = pm.HalfNormal("arrival_dispersion_root", priors.arrival_dispersion_sd, dims="pair")
        disp = root_d**2
        # path + dev * xc = walk + slope * xc: the likelihood sees the path
        mean = pt.exp(log_rate[:, None] + path[pe, :] + dev_slope[:, None] * xc[None, :])
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
