"""Deal size: lognormal amount of a won unit per cell, partially pooled.

``log amount ~ Normal(deal_size_mu[c], deal_size_sigma[c])`` over the amounts
of units won by the as-of date. ``deal_size_mu`` is pooled cell around
segment around a global level, ``log deal_size_sigma`` cell around a global
level (non-centred; priors in :mod:`~simengine.fitting.priors`). The
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

from simengine.fitting._pooling import group_cov, marginal_levels, pooled
from simengine.fitting.data import FunnelData
from simengine.fitting.priors import DEFAULT_PRIORS, Priors, scale_prior

__all__ = ["OUTPUT_VARS", "build_model"]

OUTPUT_VARS = ("deal_size_mu", "deal_size_sigma")
"""Posterior variables of this model that go into the posterior file."""

_LOG_2PI = float(np.log(2.0 * np.pi))

CENTRED_MIN_DEALS = 30
"""A cell with at least this many won amounts has its levels sampled centred.

With ``n`` amounts the standard errors of the cell's log-median and log-sd
are about ``sigma/sqrt(n)`` and ``1/sqrt(2n)`` (0.09 and 0.13 at 30 with
``sigma`` = 0.5), below the prior means of their spreads (0.5 and 0.3): the
data pin the level, where the centred form samples well.
"""


def build_model(data: FunnelData, priors: Priors = DEFAULT_PRIORS) -> pm.Model:
    """Build the deal-size model.

    Parameters
    ----------
    data : FunnelData
        Sufficient statistics (``deal_n``, ``deal_sum_log``, ``deal_sum_log2``).
    priors : Priors
        Prior scales.

    Returns
    -------
    pymc.Model
        With deterministics ``deal_size_mu(cell)``, ``deal_size_sigma(cell)``
        and potential ``deal_size_loglik``.
    """
    n_cells = len(data.cells)
    seg = data.cell_segment
    coords = {"cell": list(data.cells), "one": [0]}
    with pm.Model(coords=coords) as model:
        n = data.deal_n
        fixed = group_cov(
            seg if len(data.segments) > 1 else np.zeros(n_cells, np.int64),
            priors.deal_size_mu_sd,
            priors.deal_size_segment_sd if len(data.segments) > 1 else 0.0,
        )
        sd_cell = None
        if n_cells > len(data.segments):
            sd_cell = scale_prior("deal_size_cell_sd", priors.deal_size_cell_sd)
        mu = marginal_levels(
            "deal_size_level",
            pt.as_tensor_variable([priors.deal_size_mu_loc]),
            fixed,
            sd_cell,
            n,
            ("one", "cell"),
            CENTRED_MIN_DEALS,
        )[:, 0]
        ls = pm.Normal(
            "deal_size_log_sigma_global",
            priors.deal_size_log_sigma_loc,
            priors.deal_size_log_sigma_sd,
        )
        lsd = scale_prior("deal_size_sigma_cell_sd", priors.deal_size_sigma_cell_sd)
        log_sigma = pooled(
            "deal_size_log_sigma_cell", ls, lsd, n, "cell", threshold=CENTRED_MIN_DEALS
        )
        mu = pm.Deterministic("deal_size_mu", mu, dims="cell")
        sigma = pm.Deterministic("deal_size_sigma", pt.exp(log_sigma), dims="cell")
        # data containers: a compiled model refits new statistics of the same cells
        n = pm.Data("deal_n", data.deal_n)
        s1 = pm.Data("deal_sum_log", data.deal_sum_log)
        s2 = pm.Data("deal_sum_log2", data.deal_sum_log2)
        pm.Potential(
            "deal_size_loglik",
            pt.sum(
                -n * log_sigma
                - 0.5 * n * _LOG_2PI
                - s1
                - (s2 - 2.0 * mu * s1 + n * mu**2) / (2.0 * sigma**2)
            ),
        )
    return model
