"""Deal size: lognormal amount of a won unit per cell, partially pooled.

``log amount ~ Normal(deal_size_mu[c], deal_size_sigma[c])`` over the amounts
of units won by the as-of date. ``deal_size_mu`` is pooled cell around
segment around a global level; given the sigmas its likelihood is Gaussian,
so the three levels integrate out exactly and are drawn back from their
conditionals (:func:`~simengine.fitting._pooling.tree_levels`): the sampler
sees only the scales, with no funnel. ``log deal_size_sigma`` is pooled cell
around a global level with a *fixed* scale (``deal_size_sigma_cell_sd``,
priors in :mod:`~simengine.fitting.priors`), the global level integrated out
(:func:`~simengine.fitting._pooling.exchangeable_levels`) and each cell
centred or non-centred by how informative its amounts are (:func:`centring`).
The scale is fixed for the reason the conversion model's delay log-sds are
(:mod:`~simengine.fitting.conversion`): a cell's log-sd is seen through a
chi-square likelihood that is weak below a handful of deals, so a spread
learned from a few cells is set mostly by its prior and forms a funnel with
the thin cells' log-sds; with a fixed scale their prior is Gaussian.

The likelihood uses the sufficient statistics ``n, Σ log x, Σ (log x)²`` per
cell, as ``pm.Data`` (``deal_n``, ``deal_sum_log``, ``deal_sum_log2``), so a
compiled model refits new statistics of the same cells (see
:mod:`simengine.fitting._compiled`); which levels are centred is fixed when
the model is built.
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from simengine.fitting._pooling import (
    MIN_DF_CENTRED,
    centred_mask,
    exchangeable_levels,
    tree_levels,
)
from simengine.fitting.data import FunnelData
from simengine.fitting.priors import DEFAULT_PRIORS, Priors, scale_prior

__all__ = ["CENTRED_MIN_DEALS", "OUTPUT_VARS", "build_model", "centring"]

OUTPUT_VARS = ("deal_size_mu", "deal_size_sigma")
"""Posterior variables of this model that go into the posterior file."""

_LOG_2PI = float(np.log(2.0 * np.pi))

CENTRED_MIN_DEALS = 30.0
"""Count rule of the cell log-sd levels when centring is by count.

With ``n`` amounts the standard error of the cell's log-sd is about
``1/sqrt(2n)`` (0.13 at 30). Used when ``build_model``'s
``centred_min_deals`` (the spec's ``[model] deal_size_centred_min_deals``)
is a number; ``None`` (the default) chooses from the data (:func:`centring`).
"""


def centring(
    data: FunnelData, priors: Priors = DEFAULT_PRIORS, *, centred_min_deals: float | None = None
) -> np.ndarray:
    """Which cells' log-sd levels are sampled centred.

    By default from the data: a cell's log sample sd has likelihood precision
    about ``2 (n - 1)``, and a cell with at least
    :data:`~simengine.fitting._pooling.MIN_DF_CENTRED` degrees of freedom
    is centred where ``2 (n - 1) scale² >= 1``
    (:func:`~simengine.fitting._pooling.centred_mask`), ``scale`` the fixed
    prior sd of a cell's log-sd around the global level.

    Parameters
    ----------
    data : FunnelData
        Won amounts' statistics (``deal_n``, ``deal_sum_log``, ``deal_sum_log2``).
    priors : Priors
        ``deal_size_sigma_cell_sd`` is that scale.
    centred_min_deals : float, optional
        Expert override: centred where a cell has at least this many amounts
        (``inf``: never).

    Returns
    -------
    ndarray of bool, shape (cell,)
    """
    n = np.asarray(data.deal_n, np.float64)
    if centred_min_deals is not None:
        return n >= centred_min_deals
    prec = np.where(n - 1.0 >= MIN_DF_CENTRED, 2.0 * (n - 1.0), 0.0)
    scale = priors.deal_size_sigma_cell_sd
    return centred_mask(prec, scale, scale)


def build_model(
    data: FunnelData,
    priors: Priors = DEFAULT_PRIORS,
    *,
    centred_min_deals: float | None = None,
    centred: np.ndarray | None = None,
) -> pm.Model:
    """Build the deal-size model.

    Parameters
    ----------
    data : FunnelData
        Sufficient statistics (``deal_n``, ``deal_sum_log``, ``deal_sum_log2``).
    priors : Priors
        Prior scales.
    centred_min_deals : float, optional
        Expert override: cells with at least this many won amounts have their
        log-sd level sampled centred, the others non-centred (``inf``: all
        non-centred); ``None`` (the default): chosen from the data
        (:func:`centring`).
    centred : ndarray of bool, shape (cell,), optional
        Which cells are centred (default :func:`centring` of ``data``); fixes
        the model's structure.

    Returns
    -------
    pymc.Model
        With deterministics ``deal_size_mu(cell)``, ``deal_size_sigma(cell)``
        and potential ``deal_size_loglik``.
    """
    n_cells = len(data.cells)
    seg = data.cell_segment
    coords = {"cell": list(data.cells)}
    with pm.Model(coords=coords) as model:
        n = data.deal_n
        n_seg = len(data.segments)
        seg_idx = seg if n_seg > 1 else np.zeros(n_cells, np.int64)
        sd_cell = None
        if n_cells > len(data.segments):
            sd_cell = scale_prior("deal_size_cell_sd", priors.deal_size_cell_sd)
        if n_cells > 1:
            lsd = priors.deal_size_sigma_cell_sd  # fixed (module docstring)
            mask = (
                centring(data, priors, centred_min_deals=centred_min_deals)
                if centred is None
                else centred
            )
            # the global log-sd integrated out (no funnel between it and the cells)
            log_sigma = exchangeable_levels(
                "deal_size_log_sigma",
                priors.deal_size_log_sigma_loc,
                priors.deal_size_log_sigma_sd,
                lsd,
                mask,
            )
        else:
            # one cell: its log-sd is the global one (no spread to learn)
            ls = pm.Normal(
                "deal_size_log_sigma_global",
                priors.deal_size_log_sigma_loc,
                priors.deal_size_log_sigma_sd,
            )
            log_sigma = ls + pt.zeros(n_cells)
        sigma = pm.Deterministic("deal_size_sigma", pt.exp(log_sigma), dims="cell")
        # data containers: a compiled model refits new statistics of the same cells
        n = pm.Data("deal_n", data.deal_n)
        s1 = pm.Data("deal_sum_log", data.deal_sum_log)
        s2 = pm.Data("deal_sum_log2", data.deal_sum_log2)
        n1 = pt.maximum(n, 1.0)
        # per cell the likelihood is N(ybar | mu, sigma²/n) x a within-cell part:
        # the levels integrate out exactly and are drawn back (no funnel)
        mu, log_marginal = tree_levels(
            "deal_size_level",
            priors.deal_size_mu_loc,
            priors.deal_size_mu_sd,
            seg_idx,
            n_seg,
            priors.deal_size_segment_sd if n_seg > 1 else 0.0,
            sd_cell,
            s1 / n1,
            n / sigma**2,
        )
        pm.Deterministic("deal_size_mu", mu, dims="cell")
        observed = pt.gt(n, 0.0)
        within = s2 - s1**2 / n1
        # the within part; N(ybar | mu, sigma²/n) = exp(-n (mu - ybar)² / 2 sigma²)
        # / sqrt(2 pi sigma² / n), so its normaliser comes back in for cells with data
        pm.Potential(
            "deal_size_loglik",
            pt.sum(-n * log_sigma - 0.5 * n * _LOG_2PI - s1 - within / (2.0 * sigma**2))
            + pt.sum(pt.where(observed, 0.5 * (_LOG_2PI + pt.log(sigma**2 / n1)), 0.0))
            + log_marginal,
        )
    return model
