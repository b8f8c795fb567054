from __future__ import annotations

import datetime as dt
import itertools

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from simengine.backtest.scoring import DENSE_LEVELS, QuantileForecast, score
from simengine.backtest.summary import (
    coverage_band,
    parse_duration,
    parse_origins,
    pool,
    render_html,
)
from simengine.errors import InputError


def test_parse_duration():
    assert parse_duration("13w") == 91
    assert parse_duration("91d") == 91
    assert parse_duration("1q") == 91
    for bad in ("", "13", "0w", "3m", "-1d"):
        with pytest.raises(InputError):
            parse_duration(bad)


def test_parse_origins_list_and_every():
    assert parse_origins("2017-09-30,2017-06-30", None, None, None) == [
        dt.date(2017, 6, 30),
        dt.date(2017, 9, 30),
    ]
    got = parse_origins(None, "4w", "2017-06-30", "2017-09-30")
    assert got[0] == dt.date(2017, 6, 30)
    assert all((b - a).days == 28 for a, b in itertools.pairwise(got))
    assert got[-1] <= dt.date(2017, 9, 30)
    with pytest.raises(InputError, match="YYYY-MM-DD"):
        parse_origins("2017-13-01", None, None, None)
    with pytest.raises(InputError, match="either"):
        parse_origins("2017-06-30", "4w", None, None)
    with pytest.raises(InputError, match="needs"):
        parse_origins(None, "4w", "2017-06-30", None)


def test_coverage_band_contains_nominal_and_shrinks():
    lo, hi = coverage_band(100, 0.8)
    assert lo < 0.8 < hi
    lo2, hi2 = coverage_band(1000, 0.8)
    assert hi2 - lo2 < hi - lo
    # Exact binomial: P(X <= lo*n) >= 2.5% by construction.
    assert stats.binom.cdf(lo * 100, 100, 0.8) >= 0.025


def _scores(seed=3, n=60):
    # simengine: a calibrated N(100, 10) forecast of outcomes drawn from it;
    # baseline: a point forecast at 100.
    rng = np.random.default_rng(seed)
    ys = rng.normal(100, 10, size=n)
    fc = QuantileForecast(DENSE_LEVELS, stats.norm.ppf(DENSE_LEVELS, 100, 10))
    pt = QuantileForecast.from_point(100.0)
    rows = []
    for i, y in enumerate(ys):
        origin = (dt.date(2020, 1, 1) + dt.timedelta(days=7 * i)).isoformat()
        rows.append(
            {
                "origin": origin,
                "method": "simengine",
                "segment": "total",
                "realised": y,
                "point": False,
                **score(fc, y),
            }
        )
        rows.append(
            {
                "origin": origin,
                "method": "spreadsheet",
                "segment": "total",
                "realised": y,
                "point": True,
                **score(pt, y),
            }
        )
    return pd.DataFrame(rows)


def test_pool_skill_and_coverage():
    scores = _scores()
    pooled = pool(scores).set_index("method")
    sim = pooled.loc["simengine"]
    # Pooled skill is 1 - mean CRPS / mean baseline CRPS over the same origins: exact.
    a = scores[scores["method"] == "simengine"]["crps"].to_numpy()
    b = scores[scores["method"] == "spreadsheet"]["crps"].to_numpy()
    assert sim["crps_skill_spreadsheet"] == pytest.approx(1 - a.mean() / b.mean(), rel=1e-12)
    # And it estimates the theory: CRPS of N(mu, s) at its own outcomes averages
    # s/sqrt(pi) ~ 5.64, the point forecast's mean absolute error s*sqrt(2/pi)
    # ~ 7.98: skill 1 - 1/sqrt(2) ~ 0.29. Within 4 delta-method standard errors of
    # the ratio of means over the 60 outcomes (two-sided, alpha ~6e-5).
    r = a.mean() / b.mean()
    cov = np.cov(a, b)
    se = np.sqrt((cov[0, 0] - 2 * r * cov[0, 1] + r**2 * cov[1, 1]) / a.size) / b.mean()
    theory = 1 - (1 / np.sqrt(np.pi)) / np.sqrt(2 / np.pi)
    assert abs(sim["crps_skill_spreadsheet"] - theory) <= 4 * se, (se, theory)
    assert se < 0.06  # the check is informative: 4 se well below the skill itself
    assert sim["cover_80_band_lo"] <= sim["cover_80"] <= sim["cover_80_band_hi"]
    assert sim["pit_ks_p"] > 0.01
    assert np.isnan(pooled.loc["spreadsheet", "pit_ks_p"])


def test_render_html_has_three_charts():
    scores = _scores(n=12)
    page = render_html(scores, pool(scores), "Backtest")
    assert page.count("data:image/png;base64,") == 3
    assert "<h2>Pooled scores</h2>" in page
