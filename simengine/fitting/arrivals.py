"""Arrivals: new units per week per cell and entry stage, negative binomial.

For each (cell, entry stage) pair with at least one arrival in the window of
complete weeks before the as-of date (``FunnelData.arrival_counts``)::

    count[week] ~ NegBin(mean = exp(log_rate + trend * x_week), var = m + d m²)

where ``x_week`` is the week's midpoint in weeks relative to the as-of date
(the last week is ``x = -0.5``), so ``exp(log_rate)`` is the mean rate *at
the as-of date* (``arrival_rate``) and ``trend`` the weekly log growth
(``arrival_trend``; fixed at 0 when the spec's ``arrival_trend`` is off).
Log rates and trends are pooled across cells around an entry-stage level
(non-centred). ``sqrt(d)`` has a half-normal prior. PyMC's
``NegativeBinomial(mu, alpha)`` has ``var = mu + mu²/alpha``, so the
contract's ``arrival_dispersion`` ``d`` is passed as ``alpha = 1/d``.
Pairs without arrivals in the window get rate, dispersion and trend 0.
The counts are a ``pm.Data`` container (``arrival_counts``), so a compiled
model refits new counts of the same pairs and weeks.
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from simengine.fitting._pooling import pooled, zero_sum_offsets
from simengine.fitting.data import FunnelData
from simengine.fitting.priors import DEFAULT_PRIORS, Priors, scale_prior

__all__ = ["CENTRED_MIN_ARRIVALS", "OUTPUT_VARS", "build_model", "week_offsets"]

OUTPUT_VARS = ("arrival_rate", "arrival_dispersion", "arrival_trend")
"""Posterior variables of this model that go into the posterior file."""


CENTRED_MIN_ARRIVALS = 20
"""Cell log rates are sampled centred when every pair has at least this many arrivals.

With ``n`` arrivals in the window the log rate's standard error is about
``1/sqrt(n)`` (0.22 at 20), well below the prior mean of the cell spread
(``arrival_cell_sd`` = 1): the data pin the level, so the centred form has no
funnel while the non-centred one ties ``sd`` and ``z`` into a banana (demo
data: bulk ESS 359 non-centred).
"""


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
        ``arrival_trend`` (dims ``cell, entry_stage``) and observed
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
        if data.arrival_active.all() and n_cells > 1:
            # full grid: cell offsets sum to zero per entry stage (identifies the
            # global level as the mean of the cells' levels; see zero_sum_offsets),
            # centred when every pair's arrivals pin its log rate (see CENTRED_MIN_ARRIVALS)
            off = zero_sum_offsets(
                "arrival_log_rate_cell",
                sd,
                "cell",
                "entry_stage",
                centred=bool(n_obs.min() >= CENTRED_MIN_ARRIVALS),
            )
            log_rate = a[pe] + off[pc, pe]
        else:
            log_rate = pooled("arrival_log_rate_cell", a[pe], sd, n_obs, "pair")
        if trend:
            b = pm.Normal("arrival_trend_global", 0.0, priors.arrival_trend_sd, dims="entry_stage")
            bsd = scale_prior("arrival_trend_cell_sd", priors.arrival_trend_cell_sd)
            slope = pooled("arrival_trend_cell", b[pe], bsd, n_obs, "pair")
        else:
            slope = pt.zeros(n_pairs)
        root_d = pm.HalfNormal("arrival_dispersion_root", priors.arrival_dispersion_sd, dims="pair")
        disp = root_d**2
        mean = pt.exp(log_rate[:, None] + slope[:, None] * x[None, :])
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
