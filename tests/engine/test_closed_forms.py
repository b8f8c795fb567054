"""The engine against closed forms (fixed rates, Poisson/NB arrivals, same-day delays).

Tolerances: every comparison of a Monte Carlo estimate with its exact value
allows 4 standard errors (two-sided; a correct engine fails one check with
probability ~6e-5), with the SE computed from the exact distribution where it
is known, else from the sample's own moments. Chi-square goodness-of-fit tests
use alpha = 0.001. Seeds are fixed, so results are deterministic.
"""

from __future__ import annotations

import numpy as np
import pytest
from engine_helpers import make_params, make_plan
from scipy import stats

from simengine.engine import prepare, run_paths, simulate
from simengine.params import OpenUnits

STAGES = ("lead", "opp", "won")
SEGS = ("a", "b")
N = 20_000


def _same_day(rate: float = 10.0, conv=(0.5, 0.4), **kw):
    """Arrivals convert within 1e-6 days: every win falls on its arrival day."""
    return make_params(
        stages=STAGES,
        segments=SEGS,
        channels=(),
        conversion=conv,
        delay_median=1e-6,
        delay_sigma=0.0,
        rate=(rate, 0.0),
        deal_median=1000.0,
        pipeline_stage=1,
        **kw,
    )


def _within(est: float, exact: float, se: float) -> None:
    assert abs(est - exact) <= 4 * se, f"{est} vs {exact} (4 SE = {4 * se})"


def _sample_var_se(x: np.ndarray) -> float:
    m = x.mean()
    m4 = ((x - m) ** 4).mean()
    s2 = x.var()
    return float(np.sqrt(max(m4 - s2**2, 0.0) / x.size))


@pytest.fixture(scope="module")
def same_day_paths():
    params = _same_day(deal_sigma=0.4)
    return run_paths(prepare(params, make_plan(SEGS)), 0, N, seed=11)


def test_won_deals_poisson(same_day_paths) -> None:
    lam = 10.0 * 13 * 0.5 * 0.4  # arrivals per period x product of rates, per segment
    for g, mean in ((0, lam), (1, lam), (2, 2 * lam)):
        won = same_day_paths.scalars[:, g, 3]
        _within(won.mean(), mean, np.sqrt(mean / N))
        _within(won.var(), mean, _sample_var_se(won))
    won = same_day_paths.scalars[:, 0, 3].astype(int)
    ks = np.arange(won.max() + 1)
    expect = stats.poisson.pmf(ks, lam) * N
    obs = np.bincount(won, minlength=ks.size)
    keep = expect >= 5  # pool the tails into one cell
    o = np.append(obs[keep], N - obs[keep].sum())
    e = np.append(expect[keep], N - expect[keep].sum())
    assert stats.chisquare(o, e).pvalue > 1e-3


def test_revenue_compound_poisson(same_day_paths) -> None:
    lam = 10.0 * 13 * 0.5 * 0.4
    mu, s = np.log(1000.0), 0.4
    ex, ex2, ex4 = np.exp(mu + s**2 / 2), np.exp(2 * mu + 2 * s**2), np.exp(4 * mu + 8 * s**2)
    rev = same_day_paths.scalars[:, 0, 0]
    mean, var = lam * ex, lam * ex2
    _within(rev.mean(), mean, np.sqrt(var / N))
    # SE of a sample variance: sqrt((mu4 - sigma^4) / n), mu4 = kappa4 + 3 kappa2^2 (compound Poisson).
    mu4 = lam * ex4 + 3 * var**2
    _within(rev.var(), var, np.sqrt((mu4 - var**2) / N))
    # attainment is revenue / target, path by path
    np.testing.assert_allclose(same_day_paths.scalars[:, 0, 1], rev / 1_000_000.0)


def test_negative_binomial_arrivals() -> None:
    m, alpha = 10.0, 0.5
    params = _same_day(rate=m, dispersion=alpha)
    pm = run_paths(prepare(params, make_plan(SEGS)), 0, N, seed=12)
    entered = pm.scalars[:, 0, 4]  # entered_lead in the period = 13 weekly NB totals
    _within(entered.mean(), 13 * m, np.sqrt(13 * (m + alpha * m**2) / N))
    _within(entered.var(), 13 * (m + alpha * m**2), _sample_var_se(entered))


def test_arrival_trend() -> None:
    m, tr = 10.0, 0.05
    params = _same_day(rate=m, trend=tr)
    pm = run_paths(prepare(params, make_plan(SEGS)), 0, N, seed=13)
    weekly = m * np.exp(tr * np.arange(13))
    entered = pm.scalars[:, 0, 4]
    _within(entered.mean(), weekly.sum(), np.sqrt(weekly.sum() / N))


def test_prob_hit_and_time_to_target_closed_form() -> None:
    """Fixed amounts of 1000: revenue = 1000 x won, won ~ Poisson(26) per segment."""
    params = _same_day(deal_sigma=0.0)
    plan = make_plan(SEGS, target=25_500.0)  # hit <=> won >= 26
    n = 20_000
    fc = simulate(params, plan, paths=n, seed=5, block_size=6_000, threads=2)
    s = fc.summary.set_index(["segment", "metric", "stat"])["value"]
    lam = 26.0
    p_hit = stats.poisson.sf(25, lam)
    _within(s["a", "attainment", "prob_hit"], p_hit, np.sqrt(p_hit * (1 - p_hit) / n))
    p_w5 = stats.poisson.sf(24, lam)  # attainment >= 0.95 <=> revenue >= 24,225 <=> won >= 25
    _within(s["a", "attainment", "prob_within_5pct"], p_w5, np.sqrt(p_w5 * (1 - p_w5) / n))
    assert s["a", "attainment", "prob_hit_se"] == pytest.approx(
        np.sqrt(s["a", "attainment", "prob_hit"] * (1 - s["a", "attainment", "prob_hit"]) / n)
    )
    # Reached by the end of day k (from the start) <=> Poisson((k+1) lam / 91) >= 26.
    _within(s["a", "time_to_target_days", "prob_reached"], p_hit, np.sqrt(p_hit * (1 - p_hit) / n))
    pm = run_paths(prepare(params, plan), 0, n, seed=5)  # the same paths, per path
    ttt = pm.time_to_target[:, 0]
    for k in (60, 75, 90):
        p = stats.poisson.sf(25, (k + 1) * lam / 91)
        _within(np.mean(ttt <= k), p, np.sqrt(p * (1 - p) / n))
    # the sketch-free won-deal quantiles are exact integers
    assert s["a", "won_deals", "p50"] == np.quantile(
        pm.scalars[:, 0, 3], 0.5, method="inverted_cdf"
    )


def _summary(params, plan, paths: int = 2_000):
    fc = simulate(params, plan, paths=paths, seed=3, block_size=700, threads=1)
    return fc, fc.summary.set_index(["segment", "metric", "stat"])["value"]


def test_no_wins_when_last_rate_is_zero() -> None:
    _, s = _summary(_same_day(conv=(0.5, 0.0)), make_plan(SEGS))
    for seg in (*SEGS, "total"):
        assert s[seg, "revenue", "mean"] == 0
        assert s[seg, "revenue", "p95"] == 0
        assert s[seg, "attainment", "prob_hit"] == 0
        assert s[seg, "time_to_target_days", "prob_reached"] == 0
        assert np.isinf(s[seg, "time_to_target_days", "p50"])
        assert np.isinf(s[seg, "time_to_target_days", "mean"])
        assert s[seg, "entered_lead", "mean"] > 0


def test_rates_one_every_unit_wins() -> None:
    pm = run_paths(prepare(_same_day(conv=(1.0, 1.0)), make_plan(SEGS)), 0, 3_000, seed=4)
    np.testing.assert_array_equal(pm.scalars[:, :, 3], pm.scalars[:, :, 4])  # won == entered
    np.testing.assert_array_equal(pm.scalars[:, :, 5], pm.scalars[:, :, 4])


def test_nothing_to_simulate() -> None:
    fc, s = _summary(_same_day(rate=0.0), make_plan(SEGS))
    for seg in (*SEGS, "total"):
        for m in ("revenue", "coverage", "won_deals", "entered_lead"):
            assert s[seg, m, "mean"] == 0
            assert s[seg, m, "sd"] == 0
            assert s[seg, m, "p95"] == 0
    assert float(fc.dataset["cum_revenue"].max()) == 0
    assert float(fc.dataset["coverage"].max()) == 0


def test_tiny_target_met_on_day_zero() -> None:
    params = _same_day(rate=2_000.0, conv=(1.0, 1.0))  # ~286 wins a day per segment
    plan = make_plan(SEGS, target=1.0)
    _, s = _summary(params, plan, paths=150)
    for seg in (*SEGS, "total"):
        assert s[seg, "attainment", "prob_hit"] == 1
        assert s[seg, "time_to_target_days", "prob_reached"] == 1
        assert s[seg, "time_to_target_days", "p50"] == 0
        assert s[seg, "time_to_target_days", "mean"] == 0
        assert s[seg, "time_to_target_days", "sd"] == 0


def test_open_pipeline_coverage_at_start_is_exact() -> None:
    amounts = np.array([10_000.0, 20_000.0, 5_000.0, 7_500.0])
    ou = OpenUnits(
        cell=np.array([0, 0, 1, 1]),
        stage=np.array([1, 1, 1, 0]),
        age_days=np.array([3.0, 0.0, 10.0, 1.0]),
        amount=amounts,
    )
    params = _same_day(rate=0.0, open_units=ou)
    plan = make_plan(SEGS, target=100_000.0)
    pm = run_paths(prepare(params, plan), 0, 200, seed=1)
    # units at the pipeline stage (index 1) on day 0: a = 30k, b = 5k; the lead is not pipeline
    np.testing.assert_allclose(pm.scalars[:, 0, 2], 0.30)
    np.testing.assert_allclose(pm.scalars[:, 1, 2], 0.05)
    np.testing.assert_allclose(pm.scalars[:, 2, 2], 35_000.0 / 200_000.0)
