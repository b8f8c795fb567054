"""Deal size: lognormal amount of a won unit per cell, partially pooled.

``log amount ~ Normal(deal_size_mu[c], deal_size_sigma[c])`` over the amounts
of units won by the as-of date. ``deal_size_mu`` is pooled cell around
segment around a global level; given the sigmas its likelihood is Gaussian,
so the three levels integrate out exactly and are drawn back from their
conditionals (:func:`~simengine.fitting._pooling.tree_levels`): the sampler
sees only the scales, with no funnel. ``log deal_size_sigma`` is pooled cell
around a global level (priors in :mod:`~simengine.fitting.priors`). The
likelihood uses the sufficient statistics ``n, Σ log x, Σ (log x)²`` per cell,
as ``pm.Data`` (``deal_n``, ``deal_sum_log``, ``deal_sum_log2``), so a compiled
model refits new statistics of the same cells (see
:mod:`simengine.fitting._compiled`); which levels are centred is fixed when
the model is built.
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from simengine.fitting._pooling import pooled, tree_levels
from simengine.fitting.data import FunnelData
from simengine.fitting.priors import DEFAULT_PRIORS, Priors, scale_prior

__all__ = ["OUTPUT_VARS", "build_model"]

OUTPUT_VARS = ("deal_size_mu", "deal_size_sigma")
"""Posterior variables of this model that go into the posterior file."""

_LOG_2PI = float(np.log(2.0 * np.pi))

CENTRED_MIN_DEALS = 30.0
"""Default: a cell with at least this many won amounts has its log-sd level sampled centred.

With ``n`` amounts the standard error of the cell's log-sd is about
``1/sqrt(2n)`` (0.13 at 30), below the prior mean of its spread (0.3): the
data pin the level, where the centred form samples well. Where the cells'
log-sds are nearly equal (their fitted spread below a cell's standard
error) the centred form makes a funnel instead; the spec's ``[model]
deal_size_centred_min_deals = inf`` then samples every cell non-centred.
"""


def build_model(
    data: FunnelData,
    priors: Priors = DEFAULT_PRIORS,
    *,
    centred_min_deals: float = CENTRED_MIN_DEALS,
) -> pm.Model:
    """Build the deal-size model.

    Parameters
    ----------
    data : FunnelData
        Sufficient statistics (``deal_n``, ``deal_sum_log``, ``deal_sum_log2``).
    priors : Priors
        Prior scales.
    centred_min_deals : float
        Cells with at least this many won amounts have their log-sd level
        sampled centred, the others non-centred (``inf``: all non-centred);
        see :data:`CENTRED_MIN_DEALS`.

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
        ls = pm.Normal(
            "deal_size_log_sigma_global",
            priors.deal_size_log_sigma_loc,
            priors.deal_size_log_sigma_sd,
        )
        lsd = scale_prior("deal_size_sigma_cell_sd", priors.deal_size_sigma_cell_sd)
        log_sigma = pooled(
            "deal_size_log_sigma_cell", ls, lsd, n, "cell", threshold=centred_min_deals
        )
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
