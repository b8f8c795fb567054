"""Joint step-conversion and step-delay cure model, with censoring and drift.

For a unit that entered stage ``s-1`` (cell ``c``, drift period ``t``), with
conversion probability ``p = conversion[c, s, t]`` and lognormal delay
``F``/``f`` (``delay_mu[c, s]``, ``delay_sigma[c, s]``), the likelihood is

* converted after ``d`` days: ``p f(d)``;
* lost before converting, after ``l`` days: ``(1 - p - r) g(l)``;
* still open at the as-of date, aged ``a`` days:
  ``p (1 - F(a)) + (1 - p - r) (1 - G(a)) + r``.

``r`` is the share of the step's units that never leave it (deals left
open in a CRM for good), per step, *not* fitted here but estimated from the
data by :func:`~simengine.fitting.data.never_leaving_share` (the
product-limit survival of the time to leave at the largest recorded
leaving age, kept only where the follow-up after it shows a plateau; 0
otherwise, and then the model is the plain cure model). It is not a model
parameter because a lognormal ``F`` fitted to delays spread over two orders
of magnitude has a tail that explains any old open unit as a late win: a
fitted share went to 0 and the old open units were read as slow wins, the
older the surer (CRM export, docs/validation-crm.md), which lifted ``p``
and the forecast. The conversion logit is the won share of the units that
leave, ``p = (1 - r) sigmoid(logit)``; the posterior file's ``dormant`` is
the never-leaving share of the non-converters, ``r / (1 - p)``, which the
engine, the outlook and the reference play.

``G``/``g`` is a lognormal time to loss per cell and step (pooled
cell-around-step), written to the posterior file as ``loss_mu`` and
``loss_sigma`` so that the engine moves open units on by the same law:
a unit open at age ``a`` converts with probability
``p (1 - F(a)) / (p (1 - F(a)) + (1 - p) (1 - G(a)))``.
Open units are never counted as lost; young cohorts are not failures. (The
simpler cure likelihood ``1 - p`` / ``1 - p F(a)`` treats every non-converter
as open forever, which biases ``p`` low whenever losses are recorded over
time faster than conversions; the test funnel showed it. Modelling the loss
time removes that bias.) All
terms are evaluated from sufficient statistics
(:class:`~simengine.fitting.data.FunnelData`) as weighted ``pm.Potential``
terms, so the model's size does not grow with the number of units.

Pooling (priors in :mod:`~simengine.fitting.priors`): logit conversion of a
cell = step's global logit + segment offset + cell offset (the cell level is
dropped when every segment has one cell); log-median delay is pooled the same
way; the log delay sd and the log-median time to loss are pooled
cell-around-step, the step's level integrated out
(:func:`~simengine.fitting._pooling.exchangeable_columns`). Each cell
level, and each drift step, is sampled centred or non-centred by how
informative its data are (:func:`centring`, the rule of
:func:`~simengine.fitting._pooling.centred_mask`). The drift steps' choice
is a data container (``conversion_drift_centred``), like the arrival
walk's: it differs from one data set to the next of the same shape where
the levels' choice does not, and as data it lets those data sets share one
compiled model (:mod:`~simengine.fitting._compiled`).

The cell spreads of the logit levels and of the three delay and loss
levels (``conversion_cell_sd``, ``delay_cell_sd``, ``delay_sigma_cell_sd``,
``loss_cell_sd``) are *fixed* scales, not learned. What the data can tell
about such a spread is the sample of a step's few cells' levels (one
segment with two or three channels: two or three numbers per step), each
seen through a likelihood that is weak where the cell is thin and, for the
delay and loss levels, confounded with the conversion rate where units are
still open (a late converter and a unit not yet lost look alike). A learned
spread is then set mostly by its prior, whose mass near 0 makes a funnel
with the levels that are centred (their data pin them, but not to within a
spread that small) or a banana with the non-centred ones. This holds for the
logit levels too, although their binomial counts are informative: where a
few thick cells' rates are alike, the spread's posterior reaches down to
where the centred levels funnel (docs/validation-convergence.md measures
it). With a fixed scale the prior of the levels is Gaussian with a constant
covariance, so there is nothing to funnel: a thick cell is pinned by its
data whatever the scale, a thin one is shrunk towards its segment's level
by a known amount. Each scale is the root mean square of the learned
spread's former prior (gamma, shape 2, mean ``m``: ``sqrt(1.5) m``), so the
prior variance of one cell's offset is what it was
(:mod:`~simengine.fitting.priors`). The drift sd stays learned: it is what
the engine steps the rates ahead with, and every cell and period informs it.

Drift: the logit rate of each cell and step follows a Gaussian random walk
over drift periods with one pooled innovation sd. It is parameterised from
the last period backwards, so ``conversion`` (the last period's rate, the one
that applies from the as-of date on) is the anchor and earlier periods are
offsets from it.

Cohort effect (when the prior's ``cohort_sd`` is positive; off by
default): the units that entered a step's from-stage in one drift
period (a cohort) share a logit offset ``u[step, period] ~ Normal(0,
cohort_sd)`` across cells, on top of the walk: a shock to the whole
period's cohort that, unlike a walk step, is not carried on to the next
period. Without it, a cohort-wide dip or jump is explained by the walk
(estimated from a handful of periods) or not at all, and the forecast's
future cohorts get too little spread. ``conversion`` holds the last
period's effect (its open units belong to that cohort); the engine gives
each future drift period a fresh effect per path
(``conversion_cohort_sd``).

With the term off (the default), ``conversion_cohort_sd`` is not fitted
but taken from the data's between-cohort spread
(:func:`cohort_effect_sd` of ``FunnelData.cohort_sd``, 0 where the cohorts
do not differ detectably beyond binomial noise, or without drift). A fitted
cohort sd cannot be told from the walk's with the two to four drift periods
of a year's export, which stalls the sampler; the spread of cohorts a third
of a period long is measured directly and needs no model, and the fit's
likelihood is unchanged by it. The last period's rate then holds its own
cohort's effect as well as the walk's level, so a future period's rate is
that plus a walk step plus a fresh effect: the forecast's spread errs wide
by the last cohort's effect, not narrow.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from simengine.fitting._pooling import (
    MIN_DF_CENTRED,
    centred_mask,
    exchangeable_columns,
    group_cov,
    marginal_levels,
)
from simengine.fitting.data import FunnelData, cohort_days
from simengine.fitting.priors import DEFAULT_PRIORS, SCALE_PRIOR_SHAPE, Priors, scale_prior

__all__ = [
    "CENTRED_MIN_DELAYS",
    "CENTRED_MIN_UNITS",
    "DRIFT_MAX_OPEN_SHARE",
    "DRIFT_SD_QUANTILE",
    "OUTPUT_VARS",
    "build_model",
    "centring",
    "cohort_effect_sd",
    "data_arrays",
    "drift_sd_posterior_quantile",
]

OUTPUT_VARS = (
    "conversion",
    "delay_mu",
    "delay_sigma",
    "loss_mu",
    "loss_sigma",
    "dormant",
    "conversion_drift_sd",
    "conversion_cohort_sd",
)
"""Posterior variables of this model that go into the posterior file."""

_LOG_2PI = float(np.log(2.0 * np.pi))


CENTRED_MIN_UNITS = 200
"""Count rule of the logit levels when centring is by count (tests, overrides).

200 units at a 30% rate give a logit standard error of about 0.15 over the
history, below the prior mean (0.5) of the cell spread.
"""

CENTRED_MIN_DELAYS = 30.0
"""Count rule of the log-median delay levels when centring is by count.

The standard error of a log-median from ``n`` lognormal delays is
``sigma/sqrt(n)`` (about 0.11 at 30 with ``sigma`` = 0.6), below the prior
mean (0.5) of the cell spread. Used when ``build_model``'s
``centred_min_delays`` (the spec's ``[model] delay_centred_min_delays``) is
a number instead of ``None`` (the data-driven rule, :func:`centring`).
"""

_MIN_VAR = 1e-4
"""Floor of a sample variance of log delays in :func:`centring` (ties, one delay)."""


def _gauss_stats(n: np.ndarray, s1: np.ndarray, s2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-element mean and sample variance of logs from ``n, Σ, Σ²`` (NaN where ``n`` < 2)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n > 0, s1 / np.maximum(n, 1.0), np.nan)
        var = (s2 - n * np.nan_to_num(mean) ** 2) / np.maximum(n - 1.0, 1.0)
    var = np.where(n >= 2, np.maximum(var, _MIN_VAR), np.nan)
    return mean, var


DRIFT_SD_QUANTILE = 0.1
"""Posterior quantile of the drift sd at which :func:`centring` applies the rule to drift steps.

A low quantile, as the arrival walk's (:data:`~simengine.fitting.arrivals.WALK_SD_QUANTILE`):
a drift step sampled centred makes a funnel wherever the sampler visits
drift sds too small for the step's data to pin it, and the posterior of a
weak drift's sd reaches well below its central value. A step is centred
only where its two periods' data pin it even at this low sd.
"""


DRIFT_MAX_OPEN_SHARE = 0.05
"""Most a period's units may be still open for its logit to inform the drift sd (:func:`centring`).

The won share of the units that have left a step is biased towards the
outcome that comes first while many are still open (the last periods:
20-65% open in the synthetic cases, whose raw logits there sit 0.1-0.5 off
the earlier ones); read as drift, that bias more than doubles the sd.
"""


def drift_sd_posterior_quantile(
    logit: np.ndarray, var: np.ndarray, prior_mean: float, q: float
) -> float:
    """Approximate posterior quantile of the drift sd from per-period logits.

    Each (cell, step) series of per-period logit estimates ``y_t`` with
    sampling variances ``v_t`` (non-finite ``v_t``: no data that period, left
    out) is read as a Gaussian random walk observed with noise: the
    differences of consecutive observed periods, ``y_{j+1} - y_j``, are
    jointly normal with mean 0 and covariance ``sd² diag(gap_j) + B diag(v)
    B'`` (``gap_j`` the periods between them, ``B`` the differencing matrix,
    so consecutive differences share one period's noise). Their likelihood
    over the series, times the drift sd's gamma prior
    (:func:`~simengine.fitting.priors.scale_prior`, mean ``prior_mean``), is
    evaluated on a log-spaced grid and its ``q`` quantile returned. The
    series are taken as independent given the sd (the levels' pooling does
    not enter), which is the drift model's own structure.

    Parameters
    ----------
    logit, var : ndarray, shape (cell, step, period)
        Per-period logit estimates and their sampling variances.
    prior_mean : float
        Prior mean of the drift sd.
    q : float
        Quantile, in (0, 1).

    Returns
    -------
    float
    """
    grid = np.geomspace(1e-4, 2.0, 400)
    loglik = np.zeros(grid.size)
    y_all = np.asarray(logit, np.float64).reshape(-1, np.shape(logit)[-1])
    v_all = np.asarray(var, np.float64).reshape(-1, np.shape(var)[-1])
    seen = np.isfinite(v_all) & np.isfinite(y_all)
    # the series with the same observed periods share one batch of covariances
    for pattern in np.unique(seen, axis=0):
        t = np.flatnonzero(pattern)
        if t.size < 2:
            continue
        rows = np.all(seen == pattern, axis=1)
        v = v_all[rows][:, t]  # (series, k)
        dy = np.diff(y_all[rows][:, t], axis=1)  # (series, k - 1)
        m = t.size - 1
        noise = np.zeros((v.shape[0], m, m))
        idx = np.arange(m)
        noise[:, idx, idx] = v[:, :-1] + v[:, 1:]
        noise[:, idx[1:], idx[:-1]] = -v[:, 1:-1]
        noise[:, idx[:-1], idx[1:]] = -v[:, 1:-1]
        walk = np.diag(np.diff(t).astype(np.float64))
        cov = grid[:, None, None, None] ** 2 * walk + noise[None]  # (grid, series, m, m)
        _, logdet = np.linalg.slogdet(cov)
        rhs = np.broadcast_to(dy[None, :, :, None], (*cov.shape[:3], 1))
        quad = np.einsum("si,gsi->gs", dy, np.linalg.solve(cov, rhs)[..., 0])
        loglik += -0.5 * np.sum(logdet + quad, axis=1)
    # the gamma density times d(sd) = sd d(log sd) on the log-spaced grid
    shape = SCALE_PRIOR_SHAPE
    logpost = loglik + shape * np.log(grid) - shape / prior_mean * grid
    w = np.exp(logpost - logpost.max())
    cdf = np.cumsum(w) / w.sum()
    return float(grid[min(int(np.searchsorted(cdf, q)), grid.size - 1)])


def centring(
    data: FunnelData,
    priors: Priors = DEFAULT_PRIORS,
    *,
    centred_min_delays: float | None = None,
    drift_sd_quantile: float | None = DRIFT_SD_QUANTILE,
) -> dict[str, np.ndarray]:
    """Which levels of the conversion model are sampled centred, from the data.

    Each level's likelihood precision (from the sufficient statistics) is
    compared with the population variance of its kind of level, estimated
    across cells (:func:`~simengine.fitting._pooling.spread_estimate`):
    centred where ``precision * spread² >= 1``
    (:func:`~simengine.fitting._pooling.centred_mask`).

    * Logit levels (last period): precision of the anchor, ``sum_t w_t / (1 +
      w_t d² (P - 1 - t))`` with ``w_t = r_t p(1 - p)`` (``r_t`` units
      resolved in period ``t``) and ``d`` the drift spread; spread: the fixed
      prior scale around the parent level (``conversion_cell_sd``, or the
      segment or step prior sd when a segment has one cell), not an estimate.
    * Drift steps between periods ``t`` and ``t + 1``: precision ``1 / (1/w_t
      + 1/w_{t+1})``; spread: a low quantile (:data:`DRIFT_SD_QUANTILE`) of
      the drift sd's approximate posterior given the per-period logits of
      the periods with at most :data:`DRIFT_MAX_OPEN_SHARE` of their units
      open (:func:`drift_sd_posterior_quantile`), not a central estimate: a
      step is centred only where its data pin it across the sds the sampler
      visits (else a funnel), as the arrival walk's coordinates
      (:func:`~simengine.fitting.arrivals.walk_centring`).
    * Log-median delays and times to loss: ``n / s²``; log delay sds:
      ``2 (n - 1)`` (at least :data:`~simengine.fitting._pooling.MIN_DF_CENTRED`
      degrees of freedom); spread: their fixed prior scale around the parent
      level (``delay_cell_sd``, or the segment or step prior sd when a
      segment has one cell; ``delay_sigma_cell_sd``; ``loss_cell_sd``), not an
      estimate.

    Parameters
    ----------
    data : FunnelData
        Sufficient statistics.
    priors : Priors
        The fixed scales of the levels around their parents, and the prior
        mean of the drift sd, used where the drift cannot be estimated.
    centred_min_delays : float, optional
        Expert override of the log-median delay levels: centred when every
        cell has this many delays (:data:`CENTRED_MIN_DELAYS`; ``inf``:
        never); ``None``: the rule above.
    drift_sd_quantile : float, optional
        Quantile of the drift sd's approximate posterior that the drift
        steps' rule uses; ``None``: the drift sd's moment estimate from the
        differences of consecutive periods' logits (a central value; kept to
        compare the two rules, ``benchmarks/drift_centring_mixing.py``).

    Returns
    -------
    dict of str to ndarray of bool
        ``conversion_level`` (step, cell), ``drift`` (cell, step, period - 1),
        ``delay_mu`` (step, cell), ``delay_log_sigma`` (cell, step),
        ``loss_mu`` (cell, step).
    """
    n_cells, n_steps, n_periods = data.n_converted.shape
    n_segments = len(data.segments)
    with_cells = n_cells > n_segments
    conv = np.asarray(data.n_converted, np.float64)
    res = conv + np.asarray(data.n_lost, np.float64)
    # logit per (cell, step, period) with half-unit smoothing; binomial precision
    p = (conv + 0.5) / (res + 1.0)
    w = res * p * (1.0 - p)
    logit_p = np.log(p / (1.0 - p))
    with np.errstate(divide="ignore"):
        var_t = np.where(w > 0, 1.0 / np.where(w > 0, w, 1.0), np.nan)
    drift_mask = np.zeros((n_cells, n_steps, max(n_periods - 1, 0)), bool)
    d_sd = 0.0
    if n_periods > 1:
        diff = logit_p[:, :, 1:] - logit_p[:, :, :-1]
        v = var_t[:, :, 1:] + var_t[:, :, :-1]
        ok = np.isfinite(v)
        if ok.any():
            wt = 1.0 / v[ok]
            d2 = float(np.sum(wt * (diff[ok] ** 2 - v[ok])) / np.sum(wt))
            d_sd = float(np.sqrt(max(d2, 0.0)))
        else:
            d_sd = priors.drift_sd
        with np.errstate(divide="ignore"):
            prec = np.where(np.isfinite(v), 1.0 / np.where(np.isfinite(v), v, 1.0), 0.0)
        if drift_sd_quantile is None:
            drift_mask = centred_mask(prec, d_sd, priors.drift_sd)
        else:
            # the sd's posterior from the periods whose units have (almost) all
            # left the step: a period with open units has a resolved share biased
            # towards the outcome that comes first (the model's censored term
            # corrects it, a raw share cannot)
            open_n = np.zeros(conv.shape)
            np.add.at(open_n, (data.open_cell, data.open_step, data.open_period), data.open_count)
            with np.errstate(invalid="ignore", divide="ignore"):
                settled = open_n <= DRIFT_MAX_OPEN_SHARE * (open_n + res)
            low = drift_sd_posterior_quantile(
                logit_p, np.where(settled, var_t, np.nan), priors.drift_sd, drift_sd_quantile
            )
            drift_mask = centred_mask(prec, low, priors.drift_sd)
    # the anchor's precision: each period's information discounted by the walk
    # from that period to the last
    ahead = (n_periods - 1 - np.arange(n_periods))[None, None, :]
    anchor = np.sum(w / (1.0 + w * d_sd**2 * ahead), axis=2)
    # the logit levels' prior sd around the parent is a fixed scale too
    if with_cells:
        level_sd = priors.conversion_cell_sd
    else:
        level_sd = priors.conversion_segment_sd if n_segments > 1 else priors.conversion_logit_sd
    level_mask = centred_mask(anchor, level_sd, level_sd).T

    # delay and loss levels: their prior sd around the parent is a fixed scale
    # (module docstring), so the rule compares each likelihood with it
    _, var_d = _gauss_stats(data.delay_n, data.delay_sum_log, data.delay_sum_log2)
    if centred_min_delays is not None:
        delay_mask = np.full((n_steps, n_cells), float(np.min(data.delay_n)) >= centred_min_delays)
    else:
        prec_d = np.where(np.isfinite(var_d), data.delay_n / np.nan_to_num(var_d, nan=1.0), 0.0)
        if with_cells:
            prior_sd = priors.delay_cell_sd
        else:
            prior_sd = priors.delay_segment_sd if n_segments > 1 else priors.delay_mu_sd
        delay_mask = centred_mask(prec_d, prior_sd, prior_sd).T
    # log sd: a sample of n delays informs log sigma with precision 2 (n - 1)
    n_d = data.delay_n
    sigma_mask = centred_mask(
        np.where(n_d - 1.0 >= MIN_DF_CENTRED, 2.0 * (n_d - 1.0), 0.0),
        priors.delay_sigma_cell_sd,
        priors.delay_sigma_cell_sd,
    )
    _, var_l = _gauss_stats(data.loss_n, data.loss_sum_log, data.loss_sum_log2)
    prec_l = np.where(np.isfinite(var_l), data.loss_n / np.nan_to_num(var_l, nan=1.0), 0.0)
    loss_mask = centred_mask(prec_l, priors.loss_cell_sd, priors.loss_cell_sd)
    return {
        "conversion_level": level_mask,
        "drift": drift_mask,
        "delay_mu": delay_mask,
        "delay_log_sigma": sigma_mask,
        "loss_mu": loss_mask,
    }


def build_model(
    data: FunnelData,
    priors: Priors = DEFAULT_PRIORS,
    *,
    centred_min_delays: float | None = None,
    centred: dict[str, np.ndarray] | None = None,
) -> pm.Model:
    """Build the conversion + delay cure model for the given statistics.

    Parameters
    ----------
    data : FunnelData
        Sufficient statistics from :func:`~simengine.fitting.data.build_data`.
    priors : Priors
        Prior scales.
    centred_min_delays : float, optional
        Expert override: delays every (cell, step) needs for the log-median
        delay levels to be sampled centred (``inf``: never); ``None`` (the
        default): chosen from the data (:func:`centring`).
    centred : dict of str to ndarray, optional
        Which levels are centred, as :func:`centring` returns (default:
        :func:`centring` of ``data``); fixes the model's structure, e.g. to
        refit other statistics with the same compiled model. The ``drift``
        entry is the data container ``conversion_drift_centred`` (1 centred,
        0 not), not structure: ``pm.set_data`` or ``with_data`` changes it.

    Returns
    -------
    pymc.Model
        With deterministics ``conversion(cell, step)`` (last drift period),
        ``conversion_by_period(cell, step, period)``, ``dormant(cell, step)``,
        ``delay_mu(cell, step)``, ``delay_sigma(cell, step)`` and potentials ``conversion_loglik``,
        ``delay_loglik``, ``censored_loglik``.
    """
    n_cells, n_steps, n_periods = data.n_converted.shape
    n_segments = len(data.segments)
    seg = data.cell_segment
    with_cells = n_cells > n_segments
    cm = centred
    if cm is None:
        cm = centring(data, priors, centred_min_delays=centred_min_delays)
    coords = {
        "cell": list(data.cells),
        "segment": list(data.segments),
        "step": list(data.steps),
        "period": list(range(n_periods)),
    }
    with pm.Model(coords=coords) as model:
        # likelihood data (pm.Data: a compiled model can be refitted to new
        # statistics of the same funnel, e.g. nutpie's with_data)
        d = {k: pm.Data(k, v) for k, v in data_arrays(data).items()}
        # the share of each step's units that never leave (data, module docstring)
        r_step = d["never_leaving"]
        log_keep = pt.log1p(-r_step)  # log(1 - r), (step,)
        # --- conversion, logit scale, last period
        n_from = (
            data.n_converted.sum(axis=2)
            + data.n_lost.sum(axis=2)
            + _open_totals(data, n_cells, n_steps)
        )
        seg_idx = seg if n_segments > 1 else np.zeros(n_cells, np.int64)
        seg_sd = 1.0 if n_segments > 1 else 0.0
        # the cells around their segment with a fixed scale (module docstring)
        sd_cell = priors.conversion_cell_sd if with_cells else None
        logit_last = marginal_levels(
            "conversion_logit_level",
            pt.as_tensor_variable(np.full(n_steps, priors.conversion_logit_loc)),
            group_cov(seg_idx, priors.conversion_logit_sd, seg_sd * priors.conversion_segment_sd),
            sd_cell,
            n_from.T,
            ("step", "cell"),
            CENTRED_MIN_UNITS,
            centred=cm["conversion_level"],
        )
        if n_periods > 1:
            tau = scale_prior("drift_sd", priors.drift_sd)
            # drift steps: centred (sd tau) where the two periods' data pin the step,
            # else standardised (tau * z). Which is a data container (1 centred,
            # 0 not), so the compiled graph does not depend on the choice: data
            # sets of one shape share a compiled model (fitting._compiled)
            dc_data = pm.Data("conversion_drift_centred", np.asarray(cm["drift"], np.float64))
            dc = pt.gt(dc_data, 0.5)
            raw = pm.Normal(
                "drift_z",
                0.0,
                pt.where(dc, tau, 1.0),
                shape=(n_cells, n_steps, n_periods - 1),
            )
            eps = pt.where(dc, raw, tau * raw)
            # offset of period t from the last period: -sum_{u >= t} eps_u
            back = pt.cumsum(eps[:, :, ::-1], axis=2)[:, :, ::-1]
            offsets = pt.concatenate([-back, pt.zeros((n_cells, n_steps, 1))], axis=2)
            logit = logit_last[:, :, None] + offsets
            if priors.cohort_sd > 0:
                # cohort effect: u[s, t] ~ Normal(0, tau_c) per step and period, shared
                # by the cells, not carried on; logit_last holds the last period's u,
                # so period t is offset by u_t - u_last (non-centred: u = tau_c z)
                tau_c = scale_prior("cohort_sd", priors.cohort_sd)
                u = tau_c * pm.Normal("cohort_z", 0.0, 1.0, shape=(n_steps, n_periods))
                logit = logit + (u - u[:, -1:])[None, :, :]
            else:
                tau_c = pt.constant(0.0)
        else:
            tau = pt.constant(0.0)
            tau_c = pt.constant(0.0)
            logit = logit_last[:, :, None] + pt.zeros((n_cells, n_steps, 1))
        # the innovation sd the engine steps the rates ahead with (0 without drift)
        pm.Deterministic("conversion_drift_sd", tau)
        keep = (1.0 - r_step)[None, :]
        p_last = keep * pm.math.sigmoid(logit_last)
        pm.Deterministic("conversion", p_last, dims=("cell", "step"))
        if priors.cohort_sd <= 0:
            # the term is not fitted: a future cohort's effect from the data's
            # between-cohort spread (module docstring), 0 where there is none
            tau_c = cohort_effect_sd(d["cohort_spread"], p_last, data.period_days)
        # the sd of a future cohort's fresh effect (0 without drift or spread)
        pm.Deterministic("conversion_cohort_sd", tau_c)
        pm.Deterministic(
            "conversion_by_period",
            keep[:, :, None] * pm.math.sigmoid(logit),
            dims=("cell", "step", "period"),
        )
        # the never-leaving share of the non-converters (0 where r is 0)
        pm.Deterministic("dormant", r_step[None, :] / (1.0 - p_last), dims=("cell", "step"))
        # log p and log (1 - p - r): the won and lost shares of all units
        log_p = log_keep[None, :, None] - pt.softplus(-logit)
        log_1mp = log_keep[None, :, None] - pt.softplus(logit)
        # log r, added to the open units' survival in log_survival where r > 0
        log_r = pt.log(pt.maximum(r_step, 1e-300))

        # --- delays (lognormal), pooled
        n_d = data.delay_n
        dsd_cell = priors.delay_cell_sd if with_cells else None
        mu = marginal_levels(
            "delay_mu_level",
            pt.as_tensor_variable(np.full(n_steps, priors.delay_mu_loc)),
            group_cov(seg_idx, priors.delay_mu_sd, seg_sd * priors.delay_segment_sd),
            dsd_cell,
            n_d.T,
            ("step", "cell"),
            CENTRED_MIN_DELAYS,
            centred=cm["delay_mu"],
        )
        if n_cells > 1:
            # the step's global log sd integrated out, the cells around it
            # with a fixed scale (module docstring)
            log_sigma = exchangeable_columns(
                "delay_log_sigma",
                priors.delay_log_sigma_loc,
                priors.delay_log_sigma_sd,
                priors.delay_sigma_cell_sd,
                cm["delay_log_sigma"],
            )
        else:
            # one cell: its level is the step's (a spread of one cell is not
            # identified, and its prior alone makes a funnel)
            ls = pm.Normal(
                "delay_log_sigma_global",
                priors.delay_log_sigma_loc,
                priors.delay_log_sigma_sd,
                dims="step",
            )
            log_sigma = ls[None, :]
        mu = pm.Deterministic("delay_mu", mu, dims=("cell", "step"))
        sigma = pm.Deterministic("delay_sigma", pt.exp(log_sigma), dims=("cell", "step"))

        # --- time to loss of non-converters (lognormal; competing risk)
        if n_cells > 1:
            loss_level = exchangeable_columns(
                "loss_mu", priors.loss_mu_loc, priors.loss_mu_sd, priors.loss_cell_sd, cm["loss_mu"]
            )
        else:
            lm = pm.Normal("loss_mu_global", priors.loss_mu_loc, priors.loss_mu_sd, dims="step")
            loss_level = lm[None, :]
        loss_mu = pm.Deterministic("loss_mu", loss_level, dims=("cell", "step"))
        loss_log_sigma = pm.Normal(
            "loss_log_sigma", priors.loss_log_sigma_loc, priors.loss_log_sigma_sd, dims="step"
        )[None, :] + pt.zeros((n_cells, n_steps))
        pm.Deterministic("loss_sigma", pt.exp(loss_log_sigma), dims=("cell", "step"))

        # --- likelihood from sufficient statistics
        pm.Potential(
            "conversion_loglik",
            pt.sum(d["n_converted"] * log_p) + pt.sum(d["n_lost"] * log_1mp),
        )
        pm.Potential(
            "delay_loglik",
            _lognormal_suff(d["delay_n"], d["delay_sum_log"], d["delay_sum_log2"], mu, log_sigma),
        )
        pm.Potential(
            "loss_loglik",
            _lognormal_suff(
                d["loss_n"], d["loss_sum_log"], d["loss_sum_log2"], loss_mu, loss_log_sigma
            ),
        )

        def log_survival(i3: Any, i2: Any, log_a: Any) -> Any:
            """log(p S_F(a) + (1 - p - r) S_G(a) + r) of groups at (cell, step, period) ``i3``.

            A unit still in a step at age ``a`` either converts later
            (``p S_F(a)``), is lost later (``(1 - p - r) S_G(a)``) or never
            leaves (``r``; the term is skipped where ``r`` is 0). Each group's
            flat (cell, step, period) and (cell, step) positions are data too
            (one integer index each, whose gradient is a plain indexed add), so
            the number of groups may differ between refits.
            """

            def at(x: Any) -> Any:
                return x.flatten()[i2]

            surv_conv = log_p.flatten()[i3] + _normal_lsf(at(mu), at(sigma), log_a)
            surv_loss = log_1mp.flatten()[i3] + _normal_lsf(
                at(loss_mu), at(pt.exp(loss_log_sigma)), log_a
            )
            leave = pt.logaddexp(surv_conv, surv_loss)
            lr = at(log_r[None, :] + pt.zeros((n_cells, n_steps)))
            rr = at(r_step[None, :] + pt.zeros((n_cells, n_steps)))
            return pt.switch(pt.gt(rr, 0.0), pt.logaddexp(leave, lr), leave)

        if data.open_count.size:
            # open at the as-of date: censored at its age
            censored = log_survival(d["open_index"], d["open_cell_step"], d["open_log_age"])
            pm.Potential("censored_loglik", pt.sum(d["open_count"] * censored))
        else:
            pm.Potential("censored_loglik", pt.constant(0.0))
        if data.trunc_count.size:
            # delayed entry (left-truncated export): a unit seen from age a0 on
            # is conditioned on having survived to a0, so its survival is divided out
            survived = log_survival(d["trunc_index"], d["trunc_cell_step"], d["trunc_log_age"])
            pm.Potential("truncation_loglik", -pt.sum(d["trunc_count"] * survived))
    return model


def cohort_effect_sd(cohort_sd: Any, p_last: Any, period_days: int) -> Any:
    """Sd of a future drift period's cohort effect on the logit conversion, from the data.

    ``cohort_sd`` (step,) is the between-cohort sd of the log share of a
    cohort of ``L`` = :func:`~simengine.fitting.data.cohort_days` days that
    takes the step within ``L`` days
    (:func:`~simengine.fitting.data.cohort_log_sd`). That share is ``p F(L)``;
    a shift ``u`` of the logit of ``p`` moves its log by ``(1 - p) u``, so the
    spread is a logit sd ``cohort_sd / (1 - p)`` per cohort of ``L`` days
    (the step's cells' mean ``p``). Independent cohorts average over a drift
    period of ``P`` days to ``sqrt(L / P)`` of that, the sd of the one effect
    per period the engine draws. The effect a forecast needs is on the units'
    take-up within the period, which is what is measured; the engine has one
    sd for every step: the root mean square over steps.
    """
    ratio = cohort_days(period_days) / max(int(period_days), 1)
    p_bar = pt.mean(p_last, axis=0)  # (step,)
    per_step = cohort_sd * np.sqrt(ratio) / (1.0 - p_bar)
    return pt.sqrt(pt.mean(per_step**2))


def data_arrays(data: FunnelData) -> dict[str, np.ndarray]:
    """Return the model's data containers (``pm.Data`` names and values) for ``data``.

    Pass the result for new statistics of the same layout (cells, steps,
    periods; the number of open-unit groups may differ, as long as there is
    at least one) to a compiled model's ``with_data`` (nutpie) or to
    ``pm.set_data`` to refit without rebuilding. Each open group enters by
    its flat position in the ``(cell, step, period)`` grid (``open_index``)
    and in the ``(cell, step)`` grid (``open_cell_step``). The model's
    structure (which levels are centred) is fixed when it is built.
    """
    _, n_steps, n_periods = np.shape(data.n_converted)
    cs = np.asarray(data.open_cell, np.int64) * n_steps + np.asarray(data.open_step, np.int64)
    out = {
        "open_index": cs * n_periods + np.asarray(data.open_period, np.int64),
        "open_cell_step": cs,
        "n_converted": np.asarray(data.n_converted, np.float64),
        "n_lost": np.asarray(data.n_lost, np.float64),
        "delay_n": data.delay_n,
        "delay_sum_log": data.delay_sum_log,
        "delay_sum_log2": data.delay_sum_log2,
        "loss_n": data.loss_n,
        "loss_sum_log": data.loss_sum_log,
        "loss_sum_log2": data.loss_sum_log2,
        "open_log_age": np.log(data.open_age),
        "open_count": np.asarray(data.open_count, np.float64),
        "never_leaving": (
            np.asarray(data.never_leaving, np.float64)
            if np.size(data.never_leaving)
            else np.zeros(n_steps)
        ),
        "cohort_spread": (
            np.asarray(data.cohort_sd, np.float64) if np.size(data.cohort_sd) else np.zeros(n_steps)
        ),
    }
    if np.size(data.trunc_count):
        ts = np.asarray(data.trunc_cell, np.int64) * n_steps + np.asarray(data.trunc_step, np.int64)
        out |= {
            "trunc_index": ts * n_periods + np.asarray(data.trunc_period, np.int64),
            "trunc_cell_step": ts,
            "trunc_log_age": np.log(data.trunc_age),
            "trunc_count": np.asarray(data.trunc_count, np.float64),
        }
    return out


def _by_segment(n: np.ndarray, seg: np.ndarray, n_segments: int) -> np.ndarray:
    """Sum per-cell counts (cell, ...) into per-segment counts (segment, ...)."""
    out = np.zeros((n_segments, *n.shape[1:]))
    np.add.at(out, seg, n)
    return out


def _open_totals(data: FunnelData, n_cells: int, n_steps: int) -> np.ndarray:
    out = np.zeros((n_cells, n_steps))
    np.add.at(out, (data.open_cell, data.open_step), data.open_count)
    return out


_TAIL_Z = 30.0
"""Above this z the normal log survival uses its asymptotic series (erfc underflows at 37)."""


def _normal_lsf(mu: Any, sigma: Any, x: Any) -> Any:
    """``log P(X > x)`` for ``X ~ Normal(mu, sigma)``, from ``erfc`` only.

    PyMC's ``normal_lccdf`` uses ``erfcx``, which PyTensor's Numba backend
    has no kernel for: it falls back to a Python call per element, and the
    censored term of a thousand open-unit groups then took 35-60 ms per
    gradient (demo data; 93 us without it). ``log(erfc(z/sqrt2)/2)`` is
    accurate (``erfc`` has full relative precision in its tail) up to
    ``z`` = :data:`_TAIL_Z`; beyond it the asymptotic series
    ``-z²/2 - log(z sqrt(2 pi)) + log(1 - 1/z² + 3/z⁴ - 15/z⁶)`` is
    (relative error of the survival below ``105/z⁸`` = 1.6e-10). Each branch
    sees its input clamped to its own range, so the unused branch's
    gradient is finite (a switch passes ``0 * grad`` to it).
    """
    z = (x - mu) / sigma
    lo = pt.minimum(z, _TAIL_Z)
    hi = pt.maximum(z, _TAIL_Z)
    inner = pt.log(0.5 * pt.erfc(lo / np.sqrt(2.0)))
    r = 1.0 / (hi * hi)
    tail = (
        -0.5 * hi * hi - pt.log(hi) - 0.5 * _LOG_2PI + pt.log1p(r * (-1.0 + r * (3.0 - 15.0 * r)))
    )
    return pt.switch(pt.lt(z, _TAIL_Z), inner, tail)


def _lognormal_suff(n: np.ndarray, s1: np.ndarray, s2: np.ndarray, mu: Any, log_sigma: Any) -> Any:
    """Lognormal log-likelihood from ``n, Σ log x, Σ (log x)²`` (summed)."""
    sigma2 = pt.exp(2.0 * log_sigma)
    return pt.sum(
        -n * log_sigma - 0.5 * n * _LOG_2PI - s1 - (s2 - 2.0 * mu * s1 + n * mu**2) / (2.0 * sigma2)
    )
