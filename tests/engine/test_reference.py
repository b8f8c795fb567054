"""The Numba engine and the plain NumPy reference agree in distribution.

Both simulate the same path model with different random numbers (one
configuration has the fitted time to loss, the competing-risk law of open
units and of leavers). Per configuration, n = m = 3000 paths each:

* two-sample KS on total revenue and on the coverage at the period start,
  alpha = 0.001: the critical distance is 1.95 * sqrt(2 / 3000) = 0.050, so a
  location shift of ~0.13 sd is caught half the time and one of 0.2 sd almost
  always (power ~0.97);
* chi-square two-sample test on the won-deal counts (bins with >= 5 expected);
* means of revenue, won deals, entered counts and coverage per segment within
  4 standard errors of the difference (sqrt(s1^2/n + s2^2/m)).
"""

from __future__ import annotations

import numpy as np
import pytest
from engine_helpers import make_params, make_plan, random_open_units
from scipy import stats

from simengine.engine import prepare, run_paths
from simengine.engine.reference import reference_paths

N = 3_000


def _configs():
    yield (
        "demo-like",
        (
            make_params(
                rate=(20.0, 0.0, 0.5),
                dispersion=0.1,
                conversion_sd=0.03,
                open_units=random_open_units(200, 6, 3),
            ),
            make_plan(target=400_000.0),
        ),
    )
    yield (
        "sales-sourced, trend, later start, long horizon",
        (
            make_params(
                rate=(15.0, 0.0, 2.0),
                trend=0.02,
                pipeline_stage=1,
                deal_sigma=0.6,
                open_units=random_open_units(150, 6, 3, seed=1),
                delay_median=(5.0, 10.0, 30.0),
            ),
            make_plan(target=600_000.0, start_delay_days=14, horizon_days=140),
        ),
    )
    yield (
        "fitted time to loss, open units in every stage, sales-sourced pipeline",
        (
            make_params(
                rate=(20.0, 0.0, 1.5),
                dispersion=0.1,
                conversion_sd=0.03,
                pipeline_stage=1,
                open_units=random_open_units(300, 6, 3, seed=2),
                loss_median=(12.0, 20.0, 35.0),
                loss_sigma=0.8,
            ),
            make_plan(target=400_000.0, start_delay_days=7),
        ),
    )
    yield (
        # the engine thins a week's arrivals at once and counts the units that
        # stop at their entry stage by a binomial over the week's days inside
        # the period: a start, an end and a horizon off the weekly grid
        "period and horizon off the weekly grid",
        (
            make_params(
                rate=(20.0, 0.0, 1.0),
                dispersion=0.1,
                open_units=random_open_units(100, 6, 3, seed=3),
            ),
            make_plan(target=300_000.0, start_delay_days=10, weeks=12, horizon_days=100),
        ),
    )
    yield (
        "planned new units",
        (
            make_params(rate=(20.0, 0.0, 0.5), conversion_sd=0.05, draws=7),
            make_plan(
                target=300_000.0, new_units={"smb": {"mql": 400.0}, "mid": {"opportunity": 30.0}}
            ),
        ),
    )


def _chi2_two_sample(a: np.ndarray, b: np.ndarray) -> float:
    k = np.arange(int(max(a.max(), b.max())) + 1)
    ca = np.bincount(a.astype(int), minlength=k.size)
    cb = np.bincount(b.astype(int), minlength=k.size)
    # pool sparse bins from both tails so every expected count is >= 5
    table, acc = [], np.zeros(2)
    for x, y in zip(ca, cb, strict=True):
        acc += (x, y)
        if acc.sum() >= 10:
            table.append(acc.copy())
            acc[:] = 0
    if acc.sum():
        table[-1] += acc
    return float(stats.chi2_contingency(np.array(table).T).pvalue)


@pytest.mark.parametrize(
    ("name", "config"), list(_configs()), ids=lambda v: v if isinstance(v, str) else ""
)
def test_engine_matches_reference(name: str, config) -> None:
    params, plan = config
    pr = prepare(params, plan)
    a = run_paths(pr, 0, N, seed=31)
    b = reference_paths(pr, N, seed=32)
    g_total = pr.n_segments
    assert stats.ks_2samp(a.scalars[:, g_total, 0], b.scalars[:, g_total, 0]).pvalue > 1e-3, name
    assert stats.ks_2samp(a.scalars[:, g_total, 2], b.scalars[:, g_total, 2]).pvalue > 1e-3, name
    assert _chi2_two_sample(a.scalars[:, g_total, 3], b.scalars[:, g_total, 3]) > 1e-3, name
    for g in range(pr.n_segments + 1):
        for k in range(a.scalars.shape[2]):
            x, y = a.scalars[:, g, k], b.scalars[:, g, k]
            se = np.sqrt(x.var() / N + y.var() / N)
            if se == 0:
                assert x.mean() == y.mean()
            else:
                assert abs(x.mean() - y.mean()) <= 4 * se, (name, g, k, x.mean(), y.mean())
        for w in range(a.week_coverage.shape[2]):
            x, y = a.week_coverage[:, g, w], b.week_coverage[:, g, w]
            assert abs(x.mean() - y.mean()) <= 4 * np.sqrt(x.var() / N + y.var() / N) + 1e-12
    pa = np.isfinite(a.time_to_target).mean(axis=0)
    pb = np.isfinite(b.time_to_target).mean(axis=0)
    p = (pa + pb) / 2
    assert np.all(np.abs(pa - pb) <= 4 * np.sqrt(2 * p * (1 - p) / N) + 1e-12)


@pytest.mark.parametrize("which", [1, 3])
def test_engine_matches_reference_after_the_period(which: int) -> None:
    """Revenue after the period's end (the fan and time to target) has the reference's law.

    The engine plays only the winners of weeks that start after the period's
    end; the reference plays every unit. KS at alpha 0.001 on the cumulative
    revenue of the total at three days after the period's end (the last is
    the horizon's) and on the day the target is reached, among the paths
    that reach it.
    """
    params, plan = list(_configs())[which][1]
    pr = prepare(params, plan)
    a = run_paths(pr, 0, N, seed=33)
    b = reference_paths(pr, N, seed=34)
    after = pr.end_off - pr.start_off + 1  # first day index after the period
    assert pr.n_dates - after >= 9, "the horizon must reach past the period"
    days = (after, (after + pr.n_dates - 1) // 2, pr.n_dates - 1)
    for i in days:
        x, y = a.cum_revenue[:, -1, i], b.cum_revenue[:, -1, i]
        assert stats.ks_2samp(x, y).pvalue > 1e-3, (which, i)
    gain_a = a.cum_revenue[:, -1, -1] - a.cum_revenue[:, -1, after - 1]
    gain_b = b.cum_revenue[:, -1, -1] - b.cum_revenue[:, -1, after - 1]
    assert gain_a.mean() > 0
    assert stats.ks_2samp(gain_a, gain_b).pvalue > 1e-3, which
    ta, tb = a.time_to_target[:, -1], b.time_to_target[:, -1]
    assert stats.ks_2samp(ta[np.isfinite(ta)], tb[np.isfinite(tb)]).pvalue > 1e-3, which


def test_after_period_comparison_has_power() -> None:
    """Post-period arrivals 15% lower in the engine: the same KS checks on the gain fail."""
    params, plan = list(_configs())[1][1]
    pr = prepare(params, plan)
    scaled = params.with_arrays(arrival_rate=params.arrival_rate * 0.85)
    a = run_paths(prepare(scaled, plan), 0, N, seed=33)
    b = reference_paths(pr, N, seed=34)
    after = pr.end_off - pr.start_off + 1
    gain_a = a.cum_revenue[:, -1, -1] - a.cum_revenue[:, -1, after - 1]
    gain_b = b.cum_revenue[:, -1, -1] - b.cum_revenue[:, -1, after - 1]
    assert stats.ks_2samp(gain_a, gain_b).pvalue < 1e-3


def test_planned_new_units_set_the_period_total() -> None:
    """new_units: the segment's expected arrivals in the period equal the plan's number."""
    params = make_params(rate=(20.0, 0.0, 0.5), conversion_sd=0.05, draws=7)
    plan = make_plan(target=300_000.0, new_units={"smb": {"mql": 400.0}})
    pr = prepare(params, plan)
    np.testing.assert_allclose(pr.arrival_rate[:, 0:2, 0].sum(axis=1) * 13, 400.0)
    np.testing.assert_allclose(pr.arrival_rate[:, 2:, 0], 20.0)  # other segments untouched
    pm = run_paths(pr, 0, N, seed=2)
    x = pm.scalars[:, 0, 4]
    assert abs(x.mean() - 400.0) <= 4 * np.sqrt(400.0 / N)  # Poisson arrivals


def test_comparison_has_power() -> None:
    """A 10% lower last-step rate in the engine is caught by the same checks."""
    params = make_params(rate=(20.0, 0.0, 0.5), draws=7)
    plan = make_plan(target=300_000.0)
    shifted = params.with_arrays(conversion=params.conversion * np.array([1.0, 1.0, 0.9]))
    a = run_paths(prepare(shifted, plan), 0, N, seed=31)
    b = reference_paths(prepare(params, plan), N, seed=32)
    assert stats.ks_2samp(a.scalars[:, 3, 0], b.scalars[:, 3, 0]).pvalue < 1e-3
    assert _chi2_two_sample(a.scalars[:, 3, 3], b.scalars[:, 3, 3]) < 1e-3


@pytest.mark.slow
def test_engine_matches_reference_large() -> None:
    """20,000 paths each: KS critical distance at alpha 0.001 is 1.95 sqrt(2 / 20000) = 0.0195."""
    params, plan = next(iter(_configs()))[1]
    pr = prepare(params, plan)
    n = 20_000
    a = run_paths(pr, 0, n, seed=41)
    b = reference_paths(pr, n, seed=42)
    for g in range(pr.n_segments + 1):
        for k in (0, 2, 3, 5, 6):  # revenue, coverage, won, entered sql/opportunity
            assert stats.ks_2samp(a.scalars[:, g, k], b.scalars[:, g, k]).pvalue > 1e-3, (g, k)
    for day in (30, 60, 90):
        assert stats.ks_2samp(a.cum_revenue[:, -1, day], b.cum_revenue[:, -1, day]).pvalue > 1e-3


def test_comparison_detects_the_loss_law() -> None:
    """The engine with a time to loss against the reference without one differs."""
    with_loss = make_params(
        rate=(20.0, 0.0, 1.5),
        draws=7,
        pipeline_stage=1,
        open_units=random_open_units(300, 6, 3, seed=2),
        loss_median=(12.0, 20.0, 35.0),
        loss_sigma=0.8,
    )
    without = with_loss.with_arrays(loss_mu=None, loss_sigma=None)  # type: ignore[arg-type]
    plan = make_plan(target=400_000.0, start_delay_days=7)
    a = run_paths(prepare(with_loss, plan), 0, N, seed=31)
    b = reference_paths(prepare(without, plan), N, seed=32)
    assert stats.ks_2samp(a.scalars[:, 3, 2], b.scalars[:, 3, 2]).pvalue < 1e-3  # coverage
    assert stats.ks_2samp(a.scalars[:, 3, 0], b.scalars[:, 3, 0]).pvalue < 1e-3  # revenue
