"""Posterior predictive check of the last quarter, run at fit time.

Each model part's posterior is asked whether it reproduces what happened in
the quarter before the as-of date (:data:`~simengine.fitting.data.RECENT_DAYS`):

* **arrivals**: the units that arrived in the last 13 complete weeks, per
  cell and entry stage, against replicates of the model's own observed
  weekly counts drawn from the posterior (``pm.sample_posterior_predictive``
  of the fitted model, so the check follows whatever arrival model is
  fitted);
* **conversion**: per cell and step, how many of the units that entered the
  step's from-stage in the last quarter had converted by the as-of date. A
  unit of age ``a`` has converted with probability ``p F(a)`` under the cure
  model (``p`` the rate of its drift period, ``F`` the lognormal delay
  distribution), so a replicate count is a sum of binomials per posterior
  draw;
* **deal size**: per cell, the geometric mean amount of the deals won in
  the last quarter, whose log replicate is ``Normal(mu, sigma / sqrt(n))``
  per draw (exact for lognormal amounts).

A statistic is *outside* when its two-sided posterior predictive tail
probability (mid-p: ties count half) is below ``alpha / (2 k)``, ``k`` the
number of cells checked in the part: a Bonferroni band, so a model that is
right warns in a part with probability at most about ``alpha`` (posterior
predictive p-values are, if anything, conservative: they concentrate towards
1/2). The check reads; it changes nothing in the fit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.special import ndtr

from simengine.fitting.data import RECENT_DAYS, FunnelData

__all__ = [
    "ALPHA",
    "PpcMiss",
    "PpcResult",
    "arrivals_check",
    "check_lines",
    "conversion_check",
    "deal_size_check",
    "tail_probability",
]

ALPHA = 0.05
"""Family-wise rate of false warnings per part (Bonferroni over its cells)."""

RECENT_WEEKS = RECENT_DAYS // 7
"""Weeks of arrivals checked (the last quarter's complete weeks)."""


@dataclass(frozen=True)
class PpcMiss:
    """One cell whose statistic sits outside its posterior predictive band.

    Parameters
    ----------
    cell : str
        Cell label with the entry stage or step, e.g. ``"smb/inbound mql"``.
    observed : float
        The statistic in the data.
    lo, hi : float
        The band's ends (predictive quantiles at ``alpha / (2 k)`` and
        ``1 - alpha / (2 k)``).
    """

    cell: str
    observed: float
    lo: float
    hi: float


@dataclass(frozen=True)
class PpcResult:
    """The check of one model part.

    Parameters
    ----------
    part : str
        Model part.
    what : str
        The statistic, in words.
    checked : int
        Cells checked (0: nothing to check).
    misses : tuple of PpcMiss
        Cells outside their band.
    band : float
        Coverage of each cell's band, ``1 - alpha / k``.
    """

    part: str
    what: str
    checked: int
    misses: tuple[PpcMiss, ...]
    band: float

    @property
    def ok(self) -> bool:
        """Whether every checked cell sits inside its band."""
        return not self.misses

    def line(self) -> str:
        """One line saying whether the last quarter sits inside the bands."""
        if self.checked == 0:
            return f"{self.part}: predictive check: nothing to check ({self.what})"
        band = f"{100 * self.band:.1f}% posterior predictive band"
        if self.ok:
            return (
                f"{self.part}: predictive check passed: {self.what} inside the {band} "
                f"in all {self.checked} cells"
            )
        cells = "; ".join(
            f"{m.cell} {_fmt(m.observed)} outside {_fmt(m.lo)}-{_fmt(m.hi)}" for m in self.misses
        )
        return (
            f"{self.part}: predictive check WARNING: {self.what} outside the {band} in "
            f"{len(self.misses)} of {self.checked} cells: {cells}"
        )

    def as_json(self) -> dict[str, object]:
        """Return the result as JSON values (for the posterior file's attrs)."""
        return {
            "what": self.what,
            "checked": self.checked,
            "band": self.band,
            "outside": [
                {"cell": m.cell, "observed": m.observed, "lo": m.lo, "hi": m.hi}
                for m in self.misses
            ],
        }


def _fmt(x: float) -> str:
    return f"{x:,.0f}" if abs(x) >= 100 or float(x).is_integer() else f"{x:.3g}"


def tail_probability(observed: npt.ArrayLike, replicates: npt.ArrayLike) -> np.ndarray:
    """Two-sided mid-p posterior predictive tail probability per column.

    ``2 min(P(Y < y) + P(Y = y)/2, P(Y > y) + P(Y = y)/2)`` over the rows of
    ``replicates`` (shape ``(draw, k)``) for each ``observed`` (shape ``(k,)``).
    """
    y = np.asarray(observed, dtype=np.float64)
    r = np.asarray(replicates, dtype=np.float64)
    below = np.mean(r < y[None, :], axis=0)
    equal = np.mean(r == y[None, :], axis=0)
    above = 1.0 - below - equal
    return np.minimum(1.0, 2.0 * np.minimum(below + 0.5 * equal, above + 0.5 * equal))


def _result(
    part: str, what: str, labels: list[str], observed: np.ndarray, replicates: np.ndarray
) -> PpcResult:
    k = len(labels)
    if k == 0:
        return PpcResult(part, what, 0, (), 1.0)
    tail = ALPHA / (2.0 * k)
    p = tail_probability(observed, replicates)
    lo = np.quantile(replicates, tail, axis=0)
    hi = np.quantile(replicates, 1.0 - tail, axis=0)
    misses = tuple(
        PpcMiss(labels[i], float(observed[i]), float(lo[i]), float(hi[i]))
        for i in np.flatnonzero(p < 2.0 * tail)
    )
    return PpcResult(part, what, k, misses, 1.0 - ALPHA / k)


def arrivals_check(data: FunnelData, weekly_replicates: np.ndarray | None) -> PpcResult:
    """Check the last quarter's arrivals per (cell, entry stage) pair.

    Parameters
    ----------
    data : FunnelData
        The fitted statistics (``arrival_counts``, ``arrival_active``).
    weekly_replicates : ndarray, shape (draw, pair, week), or None
        Posterior predictive replicates of the active pairs' weekly counts,
        pairs in ``numpy.nonzero(arrival_active)`` order; ``None``: the model
        offers none (nothing is checked).

    Returns
    -------
    PpcResult
    """
    weeks = min(RECENT_WEEKS, data.n_weeks)
    what = f"arrivals of the last {weeks} weeks"
    pc, pe = np.nonzero(data.arrival_active)
    if weekly_replicates is None or weeks == 0 or pc.size == 0:
        return PpcResult("arrivals", what, 0, (), 1.0)
    rep = np.asarray(weekly_replicates)[:, :, -weeks:].sum(axis=2)
    obs = data.arrival_counts[pc, pe, -weeks:].sum(axis=1).astype(np.float64)
    labels = [f"{data.cells[c]} {data.entry_stages[e]}" for c, e in zip(pc, pe, strict=True)]
    return _result("arrivals", what, labels, obs, rep)


def conversion_check(
    data: FunnelData,
    conversion_by_period: np.ndarray,
    delay_mu: np.ndarray,
    delay_sigma: np.ndarray,
    seed: int,
) -> PpcResult:
    """Check the last quarter's cohorts' conversions per (cell, step).

    Parameters
    ----------
    data : FunnelData
        The fitted statistics (the ``recent_*`` groups).
    conversion_by_period : ndarray, shape (draw, cell, step, period)
        Posterior draws of each drift period's rate.
    delay_mu, delay_sigma : ndarray, shape (draw, cell, step)
        Posterior draws of the lognormal step delays.
    seed : int
        Seed of the binomial replicates.

    Returns
    -------
    PpcResult
    """
    what = f"conversions of the units that entered in the last {RECENT_DAYS} days"
    c, s, per = data.recent_cell, data.recent_step, data.recent_period
    if c.size == 0:
        return PpcResult("conversion", what, 0, (), 1.0)
    n_steps = len(data.steps)
    key = c * n_steps + s
    keys, inverse = np.unique(key, return_inverse=True)
    p = conversion_by_period[:, c, s, per]
    z = (np.log(data.recent_age)[None, :] - delay_mu[:, c, s]) / delay_sigma[:, c, s]
    prob = np.clip(p * ndtr(z), 0.0, 1.0)
    rng = np.random.default_rng(seed)
    draws = rng.binomial(data.recent_count.astype(np.int64)[None, :], prob)
    onehot = np.zeros((c.size, keys.size))
    onehot[np.arange(c.size), inverse] = 1.0
    rep = draws @ onehot
    obs = data.recent_converted @ onehot
    labels = [f"{data.cells[k // n_steps]} {data.steps[k % n_steps]}" for k in keys]
    return _result("conversion", what, labels, obs, rep)


def deal_size_check(
    data: FunnelData, deal_size_mu: np.ndarray, deal_size_sigma: np.ndarray, seed: int
) -> PpcResult:
    """Check the geometric mean amount of the last quarter's won deals per cell.

    Parameters
    ----------
    data : FunnelData
        The fitted statistics (``recent_deal_n``, ``recent_deal_sum_log``).
    deal_size_mu, deal_size_sigma : ndarray, shape (draw, cell)
        Posterior draws.
    seed : int
        Seed of the normal replicates.

    Returns
    -------
    PpcResult
    """
    what = f"geometric mean amount of the deals won in the last {RECENT_DAYS} days"
    n = np.asarray(data.recent_deal_n, np.float64)
    cells = np.flatnonzero(n > 0)
    if cells.size == 0:
        return PpcResult("deal_size", what, 0, (), 1.0)
    rng = np.random.default_rng(seed)
    mu = deal_size_mu[:, cells]
    sd = deal_size_sigma[:, cells] / np.sqrt(n[cells])[None, :]
    rep = np.exp(mu + sd * rng.standard_normal(mu.shape))
    obs = np.exp(data.recent_deal_sum_log[cells] / n[cells])
    labels = [data.cells[i] for i in cells]
    return _result("deal_size", what, labels, obs, rep)


def check_lines(checks: dict[str, dict[str, Any]]) -> list[str]:
    """Return one line per part from a posterior's ``simengine_ppc`` attr (parsed).

    Parameters
    ----------
    checks : dict of str to dict
        ``{part: PpcResult.as_json()}``.

    Returns
    -------
    list of str
        :meth:`PpcResult.line` of each part.
    """
    out = []
    for part, c in checks.items():
        misses = tuple(
            PpcMiss(str(m["cell"]), float(m["observed"]), float(m["lo"]), float(m["hi"]))
            for m in c["outside"]
        )
        res = PpcResult(part, str(c["what"]), int(c["checked"]), misses, float(c["band"]))
        out.append(res.line())
    return out
