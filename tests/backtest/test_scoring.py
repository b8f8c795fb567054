from __future__ import annotations

import numpy as np
import pytest
import scoringrules as sr
from scipy import stats

from simengine.backtest.scoring import DENSE_LEVELS, QuantileForecast, pinball, score


def _normal(mu=0.0, sd=1.0):
    return QuantileForecast(DENSE_LEVELS, stats.norm.ppf(DENSE_LEVELS, mu, sd))


@pytest.mark.parametrize("y", [-2.0, -0.3, 0.0, 0.7, 1.9])
def test_crps_of_dense_quantiles_matches_closed_form(y):
    # The 199-level grid (0.5%..99.5%) truncates the tails; for N(0,1) the
    # quantile-score approximation is within 1% of the exact CRPS (checked
    # here for |y| <= 2, where the tails' share is smallest).
    exact = float(sr.crps_normal(y, 0.0, 1.0))
    got = score(_normal(), y)["crps"]
    assert got == pytest.approx(exact, rel=0.01)


@pytest.mark.parametrize("y", [-1.5, 0.0, 0.4, 2.2])
def test_pit_is_the_forecast_cdf(y):
    # Linear interpolation between grid quantiles: error well below 1e-3 here.
    assert score(_normal(), y)["pit"] == pytest.approx(stats.norm.cdf(y), abs=1e-3)


def test_pit_outside_the_grid_is_0_or_1():
    fc = _normal()
    assert fc.cdf(-10.0) == 0.0
    assert fc.cdf(10.0) == 1.0


def test_calibrated_forecast_covers_at_nominal_rates():
    # 4,000 outcomes from the forecast's own distribution: each coverage rate
    # is Binomial(4000, nominal)/4000; 4 binomial sds ~ 0.03 at 0.5.
    rng = np.random.default_rng(7)
    ys = rng.normal(size=4000)
    fc = _normal()
    rows = [score(fc, float(y)) for y in ys]
    n = len(ys)
    for width in (0.5, 0.8, 0.9):
        rate = np.mean([r[f"cover_{int(width * 100)}"] for r in rows])
        band = 4 * np.sqrt(width * (1 - width) / n)
        assert abs(rate - width) < band, (width, rate)
    pits = np.array([r["pit"] for r in rows])
    assert stats.kstest(pits, "uniform").pvalue > 1e-3


def test_miscalibrated_forecast_is_caught():
    # A forecast twice too narrow covers far less than 80%.
    rng = np.random.default_rng(8)
    ys = rng.normal(size=2000)
    fc = _normal(sd=0.5)
    rate = np.mean([score(fc, float(y))["cover_80"] for y in ys])
    assert rate < 0.55


def test_point_forecast_scores():
    fc = QuantileForecast.from_point(100.0)
    s = score(fc, 130.0)
    assert s["crps"] == pytest.approx(30.0)
    assert s["pit"] == 1.0
    assert s["cover_90"] == 0.0
    assert s["ape_p50"] == pytest.approx(30.0 / 130.0 * 100)
    assert s["within_5pct"] == 0.0
    assert fc.cdf(100.0) == pytest.approx(0.5)
    assert score(fc, 104.0)["within_5pct"] == 1.0


def test_point_crps_equals_dense_grid_limit():
    # CRPS of a point mass = |y - x| exactly; the grid formula converges to it.
    ens = QuantileForecast.from_samples(np.full(50, 10.0))
    assert score(ens, 12.0)["crps"] == pytest.approx(2.0, rel=0.01)


def test_pinball():
    assert pinball(10.0, 8.0, 0.9) == pytest.approx(1.8)
    assert pinball(10.0, 12.0, 0.9) == pytest.approx(0.2)
    assert pinball(10.0, 10.0, 0.5) == 0.0


def test_from_samples_rejects_empty():
    with pytest.raises(ValueError, match="finite"):
        QuantileForecast.from_samples([])
