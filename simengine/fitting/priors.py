"""Every prior scale of the funnel models, in one place.

Each model module (:mod:`~simengine.fitting.conversion`,
:mod:`~simengine.fitting.arrivals`, :mod:`~simengine.fitting.deal_size`)
reads its prior scales from a :class:`Priors` built by :func:`resolve_priors`;
no number that shapes a prior appears anywhere else. A spec can override any
of them by name in its ``[model.priors]`` table, e.g.::

    [model.priors]
    conversion_cell_sd = 0.3
    drift_sd = 0.1

Scales are on the model's own scale: logits for conversion rates, natural
logs of days for delays, natural logs of currency for deal sizes, natural
logs of units per week for arrivals.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from simengine.errors import InputError, Issue

__all__ = ["DEFAULT_PRIORS", "SCALE_PRIOR_SHAPE", "Priors", "resolve_priors", "scale_prior"]


@dataclass(frozen=True)
class Priors:
    """Prior locations and scales (all documented in the field list).

    Parameters
    ----------
    conversion_logit_loc, conversion_logit_sd : float
        Normal prior of a step's global logit conversion rate (0 ± 1.5:
        rates from about 5% to 95% are plausible a priori).
    conversion_segment_sd : float
        Fixed sd of a segment's logit rate around its step's level
        (integrated out with it, :func:`~simengine.fitting._pooling.group_cov`;
        0.5: segments differ by up to ~2x in odds).
    conversion_cell_sd : float
        Fixed sd of a cell's logit rate around its segment's level (0.6: a
        channel's odds within ~3.3x of its segment's at two sd). Fixed
        rather than learned (see :mod:`~simengine.fitting.conversion`): a
        segment's two or three channels say little about a spread, and a
        learned one funnels with the well-measured cells' levels where its
        posterior reaches towards 0. 0.6 is the root mean square ``sqrt(1.5)
        m`` of the learned spread's former prior (gamma, shape 2, mean ``m`` =
        0.5), so a cell's prior offset keeps its variance: a thick cell is
        pinned by its counts whatever the scale, a thin one (20 units) is
        shrunk towards its segment by about the share ``1 / (1 + w sd²)``
        (``w = n p (1 - p)``: about 0.4 at 20 units and a 30% rate).
    drift_sd : float
        Prior mean (gamma, shape 2) of the per-period random-walk innovation of a logit
        rate (0.2 per drift period).
    cohort_sd : float
        Prior mean (gamma, shape 2) of the sd of the cohort effect: one logit
        offset per step and drift period (the units that entered in it),
        shared by every cell and not carried on to the next period. 0 (the
        default) leaves the term out; e.g. 0.2 (as the walk's innovation:
        cohorts differ by up to ~1.5x in odds) turns it on. Off by default
        because it did not improve the one real export it was measured on
        (docs/validation-crm.md).
    delay_mu_loc, delay_mu_sd : float
        Normal prior of a step's global log-median delay in days
        (3.0 ± 1.5: medians from ~1 to ~400 days).
    delay_segment_sd : float
        Fixed sd of a segment's log-median delay around its step's level
        (integrated out with it, :func:`~simengine.fitting._pooling.group_cov`).
    delay_cell_sd : float
        Fixed sd of a cell's log-median delay around its segment's level
        (0.6: a channel's median sales cycle within ~3.3x of its segment's at
        two sd). Fixed rather than learned (see
        :mod:`~simengine.fitting.conversion`); 0.6 is the root mean square
        ``sqrt(1.5) m`` of the learned spread's former prior (gamma, shape 2,
        mean ``m`` = 0.5), so a cell's prior offset keeps its variance.
    delay_log_sigma_loc, delay_log_sigma_sd : float
        Normal prior of a step's log of the lognormal delay sd
        (-0.2 ± 0.5: sigma from ~0.3 to ~2.2).
    delay_sigma_cell_sd : float
        Fixed sd of a cell's log delay sigma around its step's level (0.35:
        a cell's spread of delays within ~2x of its step's at two sd; the
        root mean square of the former gamma prior of mean 0.3).
    loss_mu_loc, loss_mu_sd : float
        Normal prior of a step's global log-median time to loss (days).
    loss_cell_sd : float
        Fixed sd of a cell's log-median time to loss around its step's level
        (0.6, as ``delay_cell_sd``: the same kind of quantity, a time in
        days of the same step).
    loss_log_sigma_loc, loss_log_sigma_sd : float
        Normal prior of a step's log sd of the lognormal time to loss.
    arrival_log_rate_loc, arrival_log_rate_sd : float
        Normal prior of an entry stage's global log weekly arrival rate at the
        arrival window's mean week (2 ± 2: 0.1 to 400 units a week).
    arrival_cell_sd : float
        Fixed sd of a cell's log arrival rate around its entry stage's level
        (2: a cell sits within ~50x of it at two sd; fixed rather than
        learned, see :mod:`~simengine.fitting.arrivals`).
    arrival_trend_sd : float
        Normal scale of an entry stage's weekly log trend (0.01 a week:
        ±68% a year at one sd).
    arrival_trend_cell_sd : float
        Fixed sd of a cell's weekly log trend around its entry stage's.
    arrival_dispersion_sd : float
        Half-normal scale of ``sqrt(arrival_dispersion)`` (0.5: the NB
        ``var = m + d m^2`` with ``d`` mostly below 1).
    arrival_level_sd : float
        Prior mean (gamma, shape 2) of the weekly innovation sd of the log
        arrival level (0.05: the level moves about ±18% in a quarter at one
        sd).
    deal_size_mu_loc, deal_size_mu_sd : float
        Normal prior of the global log-median deal size (8 ± 3: ~150 to ~20M).
    deal_size_segment_sd, deal_size_cell_sd : float
        Prior means (gamma, shape 2; :func:`scale_prior`) of segment and cell
        spreads of log-median deal size.
    deal_size_log_sigma_loc, deal_size_log_sigma_sd : float
        Normal prior of the global log of the lognormal deal-size sd.
    deal_size_sigma_cell_sd : float
        Fixed sd of a cell's log deal-size sigma around the global level
        (0.35, as ``delay_sigma_cell_sd``: the root mean square of the former
        gamma prior of mean 0.3; see :mod:`~simengine.fitting.deal_size`).
    """

    conversion_logit_loc: float = 0.0
    conversion_logit_sd: float = 1.5
    conversion_segment_sd: float = 0.5
    conversion_cell_sd: float = 0.6
    drift_sd: float = 0.2
    cohort_sd: float = 0.0
    delay_mu_loc: float = 3.0
    delay_mu_sd: float = 1.5
    delay_segment_sd: float = 0.5
    delay_cell_sd: float = 0.6
    delay_log_sigma_loc: float = -0.2
    delay_log_sigma_sd: float = 0.5
    delay_sigma_cell_sd: float = 0.35
    loss_mu_loc: float = 3.0
    loss_mu_sd: float = 1.5
    loss_cell_sd: float = 0.6
    loss_log_sigma_loc: float = -0.2
    loss_log_sigma_sd: float = 0.5
    arrival_log_rate_loc: float = 2.0
    arrival_log_rate_sd: float = 2.0
    arrival_cell_sd: float = 2.0
    arrival_trend_sd: float = 0.01
    arrival_trend_cell_sd: float = 0.005
    arrival_dispersion_sd: float = 0.5
    arrival_level_sd: float = 0.05
    deal_size_mu_loc: float = 8.0
    deal_size_mu_sd: float = 3.0
    deal_size_segment_sd: float = 0.5
    deal_size_cell_sd: float = 0.5
    deal_size_log_sigma_loc: float = -0.5
    deal_size_log_sigma_sd: float = 0.7
    deal_size_sigma_cell_sd: float = 0.35

    def as_dict(self) -> dict[str, float]:
        """Return the priors as a plain dict (for provenance attrs)."""
        return asdict(self)


DEFAULT_PRIORS = Priors()


def resolve_priors(overrides: dict[str, Any] | None = None, source: str = "<spec>") -> Priors:
    """Return the default priors with named overrides applied.

    Parameters
    ----------
    overrides : dict, optional
        ``{name: value}`` from a spec's ``[model.priors]`` table.
    source : str
        File the overrides came from (named in errors).

    Returns
    -------
    Priors

    Raises
    ------
    InputError
        If a name is unknown or a scale (a name ending in ``_sd``) is not
        positive.
    """
    if not overrides:
        return DEFAULT_PRIORS
    known = {f.name for f in fields(Priors)}
    issues: list[Issue] = []
    clean: dict[str, float] = {}
    for key, value in overrides.items():
        col = f"model.priors.{key}"
        if key not in known:
            issues.append(Issue(source, None, col, "", f"unknown prior; known: {sorted(known)}"))
            continue
        if not isinstance(value, int | float) or isinstance(value, bool):
            issues.append(Issue(source, None, col, repr(value), "must be a number"))
            continue
        if key.endswith("_sd") and value <= 0:
            issues.append(Issue(source, None, col, repr(value), "a scale must be positive"))
            continue
        clean[key] = float(value)
    if issues:
        raise InputError(issues, summary=f"invalid prior overrides in {source}")
    return replace(DEFAULT_PRIORS, **clean)


SCALE_PRIOR_SHAPE = 2.0
"""Shape of the gamma prior of every pooling scale (see :func:`scale_prior`)."""


def scale_prior(name: str, scale: float, **kwargs: Any) -> Any:
    """Create the prior of a pooling scale (a hierarchical sd) in the current model.

    A gamma with shape :data:`SCALE_PRIOR_SHAPE` and mean ``scale``: a
    boundary-avoiding prior (Chung et al. 2013) whose density vanishes at 0.
    With few groups (two or three segments) a half-normal lets the sampler
    into the neck of the hierarchical funnel (divergences); this prior keeps
    it out while staying weakly informative (95% mass below ~2.4 ``scale``).

    Parameters
    ----------
    name : str
        Variable name.
    scale : float
        Prior mean of the sd.
    **kwargs
        Passed to ``pm.Gamma`` (e.g. ``dims``).

    Returns
    -------
    TensorVariable
    """
    import pymc as pm

    return pm.Gamma(name, alpha=SCALE_PRIOR_SHAPE, beta=SCALE_PRIOR_SHAPE / scale, **kwargs)
