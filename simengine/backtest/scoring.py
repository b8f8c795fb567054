"""Scores of a probabilistic forecast against what happened.

A forecast is described by its quantile function on a grid of levels
(:class:`QuantileForecast`): simengine's own forecasts give a dense grid from
their sketches, an ensemble baseline gives its empirical quantiles, and a
point forecast is the degenerate case where every quantile is the point.

Metrics (per origin and segment), each a column of ``backtest.csv``:

``pit``
    The forecast CDF at the realised value (probability integral transform);
    uniform over origins if the forecast is calibrated.
``cover_50``, ``cover_80``, ``cover_90``
    Whether the realised value fell inside the central 50/80/90% interval.
``crps``
    Continuous ranked probability score, from :func:`scoringrules.crps_quantile`
    (for a point forecast it reduces to the absolute error).
``pinball_10``, ``pinball_50``, ``pinball_90``
    Quantile (pinball) loss at P10/P50/P90.
``ape_p50``
    Absolute error of the P50 in % of the realised value.
``within_5pct``
    Whether the realised value fell within 5% of the P50.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import scoringrules as sr

__all__ = [
    "DENSE_LEVELS",
    "QuantileForecast",
    "interval_coverage",
    "pinball",
    "score",
]

#: The quantile grid on which forecasts are scored (0.5% .. 99.5%).
DENSE_LEVELS = np.round(np.linspace(0.005, 0.995, 199), 6)

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class QuantileForecast:
    """A predictive distribution given by its quantiles.

    Parameters
    ----------
    levels : ndarray, shape (q,)
        Increasing probabilities in (0, 1).
    values : ndarray, shape (q,)
        The quantiles at those levels (non-decreasing).
    point : bool
        True for a point forecast (no interval; every quantile equal).
    """

    levels: FloatArray
    values: FloatArray
    point: bool = False

    @classmethod
    def from_point(cls, value: float) -> QuantileForecast:
        """Build a point forecast: every quantile equals ``value``."""
        return cls(DENSE_LEVELS, np.full(DENSE_LEVELS.shape, float(value)), point=True)

    @classmethod
    def from_samples(cls, samples: npt.ArrayLike) -> QuantileForecast:
        """Build the empirical quantiles of an ensemble on :data:`DENSE_LEVELS`."""
        x = np.asarray(samples, dtype=float)
        if x.size == 0 or not np.all(np.isfinite(x)):
            raise ValueError("an ensemble needs at least one finite member")
        return cls(DENSE_LEVELS, np.quantile(x, DENSE_LEVELS, method="linear"))

    def quantile(self, q: float) -> float:
        """Return the quantile at level ``q`` (linear between grid levels)."""
        return float(np.interp(q, self.levels, self.values))

    def cdf(self, y: float) -> float:
        """Return the forecast CDF at ``y``: the PIT of a realised value.

        Linear between grid quantiles; 0 below the lowest and 1 above the
        highest. At a flat stretch (an atom, as in a point forecast) the
        mid-point of the jump is returned, so a point forecast equal to the
        outcome scores 0.5, not 0 or 1.
        """
        v = self.values
        if y < v[0]:
            return 0.0
        if y > v[-1]:
            return 1.0
        lo = float(np.interp(y, v, self.levels, left=0.0, right=1.0))
        # np.interp picks the left end of a flat stretch; take the jump's middle.
        left = np.searchsorted(v, y, side="left")
        right = np.searchsorted(v, y, side="right")
        if right > left:  # y equals one or more grid values: an atom
            p_lo = self.levels[left - 1] if left > 0 else 0.0
            p_hi = self.levels[right] if right < len(v) else 1.0
            if left == 0:
                p_lo = 0.0
            if right == len(v):
                p_hi = 1.0
            return float(0.5 * (p_lo + p_hi))
        return lo


def pinball(y: float, q_value: float, level: float) -> float:
    """Quantile (pinball) loss of the quantile ``q_value`` at ``level``."""
    diff = y - q_value
    return float(max(level * diff, (level - 1.0) * diff))


def interval_coverage(fc: QuantileForecast, y: float, width: float) -> bool:
    """Whether ``y`` lies in the central ``width`` interval of ``fc``."""
    lo = fc.quantile((1.0 - width) / 2.0)
    hi = fc.quantile((1.0 + width) / 2.0)
    return bool(lo <= y <= hi)


def score(fc: QuantileForecast, y: float) -> dict[str, float]:
    """Every metric of one forecast against one realised value.

    Parameters
    ----------
    fc : QuantileForecast
        The forecast.
    y : float
        What happened.

    Returns
    -------
    dict
        ``pit, cover_50, cover_80, cover_90, crps, pinball_10, pinball_50,
        pinball_90, p10, p50, p90, ape_p50, within_5pct`` (booleans as 0/1).
    """
    p10, p50, p90 = fc.quantile(0.1), fc.quantile(0.5), fc.quantile(0.9)
    crps = abs(y - p50) if fc.point else float(sr.crps_quantile(y, fc.values, fc.levels))
    return {
        "pit": fc.cdf(y),
        "cover_50": float(interval_coverage(fc, y, 0.5)),
        "cover_80": float(interval_coverage(fc, y, 0.8)),
        "cover_90": float(interval_coverage(fc, y, 0.9)),
        "crps": crps,
        "pinball_10": pinball(y, p10, 0.1),
        "pinball_50": pinball(y, p50, 0.5),
        "pinball_90": pinball(y, p90, 0.9),
        "p10": p10,
        "p50": p50,
        "p90": p90,
        "ape_p50": abs(p50 - y) / abs(y) * 100.0 if y != 0 else float("nan"),
        "within_5pct": float(abs(y - p50) <= 0.05 * abs(p50)),
    }
