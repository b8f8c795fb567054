"""The drift ahead (conversion and arrival-level random walks) and dormant units.

Statistical checks, each at alpha = 0.001 per comparison:

* engine vs the NumPy reference (:mod:`simengine.engine.reference`), n = m =
  3000 paths: two-sample KS on total revenue and on coverage at the period
  start (critical distance 1.95 * sqrt(2 / 3000) = 0.050), chi-square on the
  won-deal counts, means within 4 standard errors of the difference (two-sided,
  alpha ~6e-5 each);
* a closed form: with Poisson arrivals at rate ``r`` and a level walk of sd
  ``s``, week ``w`` has mean ``r exp(s^2 (w + 1) / 2)``; the engine's mean
  count of units entering in the period is within 4 standard errors of the sum;
* power: the same KS checks must reject an engine that drops the walks or the
  dormant share (each mutation shifts the law by far more than the critical
  distance).

Plus layout checks: per-path streams give bitwise the same paths whatever the
block split, and zero scales give bitwise the paths of a posterior without
them.
"""

from __future__ import annotations

import numpy as np
from engine_helpers import make_params, make_plan, random_open_units
from scipy import stats

from simengine.engine import prepare, run_paths
from simengine.engine.reference import reference_paths

N = 3_000
ALPHA = 1e-3


def _params(drift: float = 0.5, level: float = 0.08, dormant: float = 0.4, **kw):
    p = make_params(
        rate=(20.0, 0.0, 1.5),
        dispersion=0.05,
        conversion_sd=0.03,
        pipeline_stage=1,
        open_units=random_open_units(300, 6, 3, seed=2),
        loss_median=(12.0, 20.0, 35.0),
        loss_sigma=0.8,
        **kw,
    )
    d = p.n_draws
    return p.with_arrays(
        conversion_drift_sd=np.full(d, drift),
        arrival_level_sd=np.full((d, 3), level),
        dormant=np.full(p.conversion.shape, dormant),
        drift_period_days=30,  # type: ignore[arg-type]
    )


def _plan(**kw):
    return make_plan(target=400_000.0, horizon_days=120, **kw)


def _same_law(a, b, g: int) -> list[float]:
    """KS p-values of total revenue and coverage at start, chi-square p of won deals."""
    won_a, won_b = a.scalars[:, g, 3].astype(int), b.scalars[:, g, 3].astype(int)
    k = np.arange(max(won_a.max(), won_b.max()) + 1)
    ca, cb = np.bincount(won_a, minlength=k.size), np.bincount(won_b, minlength=k.size)
    table, acc = [], np.zeros(2)
    for x, y in zip(ca, cb, strict=True):
        acc += (x, y)
        if acc.sum() >= 10:
            table.append(acc.copy())
            acc[:] = 0
    if acc.sum():
        table[-1] += acc
    return [
        float(stats.ks_2samp(a.scalars[:, g, 0], b.scalars[:, g, 0]).pvalue),
        float(stats.ks_2samp(a.scalars[:, g, 2], b.scalars[:, g, 2]).pvalue),
        float(stats.chi2_contingency(np.array(table).T).pvalue),
    ]


def test_engine_matches_reference_with_drift_ahead_and_dormant_units() -> None:
    params, plan = _params(), _plan()
    pr = prepare(params, plan)
    assert pr.has_drift
    assert pr.has_level
    assert pr.has_dormant
    assert pr.n_drift == 4
    a = run_paths(pr, 0, N, seed=41)
    b = reference_paths(pr, N, seed=42)
    g = pr.n_segments
    assert min(_same_law(a, b, g)) > ALPHA
    for gg in range(g + 1):
        for k in range(a.scalars.shape[2]):
            x, y = a.scalars[:, gg, k], b.scalars[:, gg, k]
            se = np.sqrt(x.var() / N + y.var() / N)
            assert abs(x.mean() - y.mean()) <= 4 * se + 1e-12, (gg, k, x.mean(), y.mean())
    for i in (pr.end_off - pr.start_off, pr.n_dates - 1):  # end of period, horizon
        x, y = a.cum_revenue[:, g, i], b.cum_revenue[:, g, i]
        assert stats.ks_2samp(x, y).pvalue > ALPHA, i


def test_planned_new_units_switch_the_level_walk_off() -> None:
    """Cells whose arrivals the plan fixes do not follow the walk (engine = reference)."""
    params = _params(drift=0.0, dormant=0.0, level=0.15)
    plan = _plan(new_units={"smb": {"mql": 400.0}})
    pr = prepare(params, plan)
    assert pr.level_on[0:2, 0].sum() == 0
    assert pr.level_on[2:, 0].all()
    a = run_paths(pr, 0, N, seed=43)
    b = reference_paths(pr, N, seed=44)
    x, y = a.scalars[:, 0, 4], b.scalars[:, 0, 4]  # smb: units entering mql
    assert abs(x.mean() - 400.0) <= 4 * np.sqrt(x.var() / N)
    assert stats.ks_2samp(x, y).pvalue > ALPHA
    assert min(_same_law(a, b, pr.n_segments)) > ALPHA


def test_level_walk_matches_its_closed_form_mean() -> None:
    """E[units in week w] = r exp(s^2 (w + 1) / 2) (lognormal mean of the walk)."""
    s, r = 0.1, 20.0
    params = make_params(rate=(r, 0.0, 0.0), draws=5)
    d = params.n_draws
    params = params.with_arrays(arrival_level_sd=np.full((d, 3), s))
    pr = prepare(params, make_plan(target=1e6))
    x = run_paths(pr, 0, 20_000, seed=45).scalars[:, -1, 4]  # all cells, entering mql
    want = len(params.cells) * r * np.exp(s * s * (np.arange(13) + 1) / 2).sum()
    assert abs(x.mean() - want) <= 4 * x.std() / np.sqrt(x.size), (x.mean(), want)
    flat = len(params.cells) * r * 13
    assert want - flat > 8 * x.std() / np.sqrt(x.size)  # the check can tell it from no walk


def test_comparison_catches_a_missing_walk_or_dormant_share() -> None:
    """Power: the reference with the walks (or dormancy) against an engine without them."""
    params, plan = _params(), _plan()
    b = reference_paths(prepare(params, plan), N, seed=42)
    d = params.n_draws
    for mutation in (
        {"conversion_drift_sd": np.zeros(d), "arrival_level_sd": np.zeros((d, 3))},
        {"dormant": np.zeros(params.conversion.shape)},
    ):
        pr = prepare(params.with_arrays(**mutation), plan)
        a = run_paths(pr, 0, N, seed=41)
        assert min(_same_law(a, b, pr.n_segments)) < ALPHA, list(mutation)


def test_paths_do_not_depend_on_the_block_split() -> None:
    pr = prepare(_params(), _plan())
    whole = run_paths(pr, 0, 600, seed=7)
    parts = [run_paths(pr, 0, 250, seed=7), run_paths(pr, 250, 350, seed=7)]
    np.testing.assert_array_equal(whole.scalars, np.concatenate([p.scalars for p in parts], axis=0))
    np.testing.assert_array_equal(
        whole.cum_revenue, np.concatenate([p.cum_revenue for p in parts], axis=0)
    )


def test_zero_scales_draw_the_paths_of_a_posterior_without_them() -> None:
    base = make_params(
        rate=(20.0, 0.0, 1.5),
        pipeline_stage=1,
        open_units=random_open_units(100, 6, 3, seed=3),
        loss_median=(12.0, 20.0, 35.0),
    )
    d = base.n_draws
    zero = base.with_arrays(
        conversion_drift_sd=np.zeros(d),
        arrival_level_sd=np.zeros((d, 3)),
        dormant=np.zeros(base.conversion.shape),
    )
    a = run_paths(prepare(base, _plan()), 0, 400, seed=9)
    b = run_paths(prepare(zero, _plan()), 0, 400, seed=9)
    np.testing.assert_array_equal(a.scalars, b.scalars)
    np.testing.assert_array_equal(a.week_coverage, b.week_coverage)


def test_common_random_numbers_across_a_conversion_scenario() -> None:
    """A lower rate in one cell leaves the other cells' walks and paths untouched."""
    params, plan = _params(dormant=0.0), _plan()
    conv = params.conversion.copy()
    conv[:, 0, :] *= 0.8
    a = run_paths(prepare(params, plan), 0, 300, seed=11)
    b = run_paths(prepare(params.with_arrays(conversion=conv), plan), 0, 300, seed=11)
    # segments 1 and 2 (cells 2..5) are bitwise the same
    np.testing.assert_array_equal(a.scalars[:, 1:3], b.scalars[:, 1:3])
    assert not np.array_equal(a.scalars[:, 0], b.scalars[:, 0])
