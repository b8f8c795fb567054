"""Open units at the as-of date: conditional conversion and truncated remaining delay.

A unit of age ``a`` converts with probability ``p (1 - F(a)) / (1 - p F(a))``
and its next event comes ``X - a`` days later with ``X ~ delay | X > a``. With
amount 1 per unit and the won stage next, the cumulative revenue at the end of
day ``k`` counts the units won by then: a Binomial(U, q_k) per path with
``q_k = pc (F(a + k + 1) - F(a)) / (1 - F(a))``; the pipeline still open at the
end of day ``w`` is Binomial(U, (1 - F(a + w + 1)) / (1 - F(a))) (converters and
leavers share the delay law). Tolerance: 4 standard errors of the mean count.
"""

from __future__ import annotations

import numpy as np
import pytest
from engine_helpers import make_params, make_plan
from scipy import stats

from simengine.engine import prepare, run_paths
from simengine.params import OpenUnits

U, N = 100, 4_000
P, MEDIAN, SIGMA = 0.6, 10.0, 0.5


@pytest.mark.parametrize("age", [0.0, 15.0, 40.0])
def test_conditional_conversion_and_remaining_delay(age: float) -> None:
    ou = OpenUnits(
        cell=np.zeros(U, np.int64),
        stage=np.zeros(U, np.int64),
        age_days=np.full(U, age),
        amount=np.ones(U),
    )
    params = make_params(
        stages=("opp", "won"),
        segments=("a",),
        channels=(),
        conversion=P,
        delay_median=MEDIAN,
        delay_sigma=SIGMA,
        rate=0.0,
        pipeline_stage=0,
        open_units=ou,
    )
    plan = make_plan(("a",), target=1e9, weeks=52)
    pm = run_paths(prepare(params, plan), 0, N, seed=21)
    law = stats.lognorm(s=SIGMA, scale=MEDIAN)
    fa = law.cdf(age)
    pc = P * (1 - fa) / (1 - P * fa)
    for k in (0, 2, 5, 10, 30, 363):
        q = pc * (law.cdf(age + k + 1) - fa) / (1 - fa)
        won_by_k = pm.cum_revenue[:, 0, k]
        se = np.sqrt(U * q * (1 - q) / N)
        assert abs(won_by_k.mean() - U * q) <= 4 * se, (age, k, won_by_k.mean(), U * q)
    for w_idx, w in ((0, 6), (1, 13), (3, 27)):
        r = (1 - law.cdf(age + w + 1)) / (1 - fa)
        open_units = pm.week_coverage[:, 0, w_idx] * 1e9
        se = np.sqrt(U * r * (1 - r) / N)
        assert abs(open_units.mean() - U * r) <= 4 * se, (age, w, open_units.mean(), U * r)
    # at the start every unit is open
    np.testing.assert_allclose(pm.scalars[:, 0, 2] * 1e9, U)


def test_overdue_degenerate_delay_converts_at_once() -> None:
    """sigma 0 and age past the fixed delay: F(a) = 1, so the unit converts only if p = 1."""
    ou = OpenUnits(np.zeros(3, np.int64), np.zeros(3, np.int64), np.full(3, 30.0), np.ones(3))
    for p, won in ((1.0, 3.0), (0.5, 0.0)):
        params = make_params(
            stages=("opp", "won"),
            segments=("a",),
            channels=(),
            conversion=p,
            delay_median=10.0,
            delay_sigma=0.0,
            rate=0.0,
            pipeline_stage=0,
            open_units=ou,
        )
        pm = run_paths(prepare(params, make_plan(("a",), target=1.0)), 0, 50, seed=1)
        np.testing.assert_array_equal(pm.cum_revenue[:, 0, 0], won)


# --------------------------------------------------------------------------- competing risk
# With a fitted time to loss G (lognormal, median LOSS_MEDIAN, log-sd LOSS_SIGMA) an
# open unit aged a converts with pc = p S_F(a) / (p S_F(a) + (1 - p) S_G(a)), then
# takes the step after X - a, X ~ F | X > a, or is lost after X - a, X ~ G | X > a.
LOSS_MEDIAN, LOSS_SIGMA = 30.0, 0.7


def _one_step(p: float, ou: OpenUnits | None = None, rate: float = 0.0, loss: bool = True):
    return make_params(
        stages=("opp", "won"),
        segments=("a",),
        channels=(),
        conversion=p,
        delay_median=MEDIAN,
        delay_sigma=SIGMA,
        rate=rate,
        deal_median=1.0,
        deal_sigma=0.0,
        pipeline_stage=0,
        open_units=ou,
        loss_median=LOSS_MEDIAN if loss else None,
        loss_sigma=LOSS_SIGMA,
    )


@pytest.mark.parametrize("age", [0.0, 15.0, 40.0])
def test_competing_risk_conversion_and_loss_timing(age: float) -> None:
    """Won by day k and still open at week end w, per path, are Binomial(U, q) counts.

    q_k = pc (F(a + k + 1) - F(a)) / S_F(a) (won by the end of day k: its
    continuous time a + k + 1 not yet passed), r_w = pc S_F(a + w + 1) / S_F(a)
    + (1 - pc) S_G(a + w + 1) / S_G(a) (open at the end of day w). Tolerance 4 SE
    of the mean count over N paths (U units each, independent given the fixed
    parameters).
    """
    ou = OpenUnits(np.zeros(U, np.int64), np.zeros(U, np.int64), np.full(U, age), np.ones(U))
    params = _one_step(P, ou)
    pm = run_paths(prepare(params, make_plan(("a",), target=1e9, weeks=52)), 0, N, seed=22)
    f = stats.lognorm(s=SIGMA, scale=MEDIAN)
    g = stats.lognorm(s=LOSS_SIGMA, scale=LOSS_MEDIAN)
    sf, sg = f.sf(age), g.sf(age)
    pc = P * sf / (P * sf + (1 - P) * sg)
    old_pc = P * sf / (1 - P * (1 - sf))  # the never-lost law
    for k in (0, 5, 10, 30, 363):
        q = pc * (f.sf(age) - f.sf(age + k + 1)) / sf
        won = pm.cum_revenue[:, 0, k]
        se = np.sqrt(U * q * (1 - q) / N)
        assert abs(won.mean() - U * q) <= 4 * se, (age, k, won.mean(), U * q)
    if age > 0:
        # power: the simulated wins at the horizon reject the never-lost law
        # (the same 4 SE test, at that law's own SE) -- the check can tell them apart
        won = pm.cum_revenue[:, 0, 363]
        q_old = old_pc * (f.sf(age) - f.sf(age + 364)) / sf
        se_old = np.sqrt(U * q_old * (1 - q_old) / N)
        assert abs(won.mean() - U * q_old) > 4 * se_old, (age, won.mean(), U * q_old)
    for w_idx, w in ((0, 6), (1, 13), (3, 27), (8, 62)):
        r = pc * f.sf(age + w + 1) / sf + (1 - pc) * g.sf(age + w + 1) / sg
        open_n = pm.week_coverage[:, 0, w_idx] * 1e9
        se = np.sqrt(U * r * (1 - r) / N)
        assert abs(open_n.mean() - U * r) <= 4 * se, (age, w, open_n.mean(), U * r)


def test_competing_risk_loss_time_distribution() -> None:
    """p = 0: every open unit is lost, at X - a with X ~ G | X > a (one-sample KS).

    The unit's exit day is the first week end at which it is no longer open;
    with one unit per path and daily resolution we compare the open indicator
    at every week end with S_G(a + w + 1) / S_G(a) (4 SE), and the whole
    distribution of the exit week with a chi-square test (alpha 0.001).
    """
    age = 12.0
    ou = OpenUnits(np.zeros(1, np.int64), np.zeros(1, np.int64), np.full(1, age), np.ones(1))
    params = _one_step(0.0, ou)
    plan = make_plan(("a",), target=1.0, weeks=26)
    pm = run_paths(prepare(params, plan), 0, N, seed=23)
    assert np.all(pm.cum_revenue == 0)
    g = stats.lognorm(s=LOSS_SIGMA, scale=LOSS_MEDIAN)
    week_days = np.arange(6, 7 * 26, 7)
    open_at = pm.week_coverage[:, 0, :]  # 1 while open, then 0
    assert np.all(np.diff(open_at, axis=1) <= 0)
    r = g.sf(age + week_days + 1) / g.sf(age)
    se = np.sqrt(r * (1 - r) / N)
    assert np.all(np.abs(open_at.mean(axis=0) - r) <= 4 * se + 1e-12)
    # exit week: index of the first week end at which the unit is closed (26 = never)
    exit_week = np.where(open_at.min(axis=1) == 0, open_at.argmin(axis=1), 26)
    cdf = np.concatenate([[0.0], 1 - r, [1.0]])
    expect = np.diff(cdf) * N
    obs = np.bincount(exit_week, minlength=27)
    keep = expect >= 5
    o = np.append(obs[keep], N - obs[keep].sum())
    e = np.append(expect[keep], N - expect[keep].sum())
    assert stats.chisquare(o, e).pvalue > 1e-3


def test_new_units_leave_after_the_loss_law() -> None:
    """Arrivals at the pipeline stage: open at the end of day w is Poisson.

    A unit arriving on day j (time j) is open at the end of day w iff its exit
    time X (delay if it converts, time to loss if not) is >= w + 1 - j; daily
    counts are Poisson(rate / 7), so the open count is Poisson with mean
    sum_j rate / 7 (p S_F(w + 1 - j) + (1 - p) S_G(w + 1 - j)). With the
    never-lost law the leavers would follow F instead: the check has power.
    """
    rate, p = 14.0, 0.3
    plan = make_plan(("a",), target=1.0, weeks=13)
    f = stats.lognorm(s=SIGMA, scale=MEDIAN)
    g = stats.lognorm(s=LOSS_SIGMA, scale=LOSS_MEDIAN)
    pm = run_paths(prepare(_one_step(p, rate=rate), plan), 0, N, seed=24)
    for w_idx, w in ((0, 6), (2, 20), (8, 62), (12, 90)):
        x = w + 1 - np.arange(w + 1)
        mean = rate / 7 * np.sum(p * f.sf(x) + (1 - p) * g.sf(x))
        got = pm.week_coverage[:, 0, w_idx]
        assert abs(got.mean() - mean) <= 4 * np.sqrt(mean / N), (w, got.mean(), mean)
        assert abs(got.var() - mean) <= 4 * np.sqrt((mean + 2 * mean**2) / N), (w, got.var())
        old = rate / 7 * np.sum(f.sf(x))
        assert abs(old - mean) > 10 * np.sqrt(mean / N)
    # without the loss law the leavers follow F: a different, also exact, mean
    pm0 = run_paths(prepare(_one_step(p, rate=rate, loss=False), plan), 0, N, seed=24)
    x = 63 - np.arange(63)
    mean0 = rate / 7 * np.sum(f.sf(x))
    got0 = pm0.week_coverage[:, 0, 8]
    assert abs(got0.mean() - mean0) <= 4 * np.sqrt(mean0 / N)


def test_prepare_leaving_law() -> None:
    """Without loss params the leaving law is the step delay law (has_loss 0)."""
    plan = make_plan(("a",))
    with_loss = prepare(_one_step(P), plan)
    assert with_loss.has_loss == 1
    np.testing.assert_allclose(with_loss.leave_mu, np.log(LOSS_MEDIAN))
    np.testing.assert_allclose(with_loss.leave_sigma, LOSS_SIGMA)
    without = prepare(_one_step(P, loss=False), plan)
    assert without.has_loss == 0
    np.testing.assert_array_equal(without.leave_mu, without.delay_mu)
    np.testing.assert_array_equal(without.leave_sigma, without.delay_sigma)


@pytest.mark.parametrize("loss_median", [None, (9.0, 20.0, 40.0)])
def test_tail_cache_gives_bitwise_the_uncached_paths(loss_median: tuple[float, ...] | None) -> None:
    """The per-draw cache of the open runs' tail masses changes no number.

    Paths 0..599 over 20 draws meet each draw 30 times (in runs of 30
    consecutive paths), so almost every path reads its tails from the cache; the same paths with the cache switched
    off (``tail_cache_max = 0``) compute them path by path.
    """
    from simengine.engine import _kernels as K
    from simengine.engine import _rng
    from simengine.engine.blocks import _args, n_scalars

    rng = np.random.default_rng(5)
    n_open = 300
    ou = OpenUnits(
        cell=rng.integers(0, 6, n_open).astype(np.int64),
        stage=rng.integers(0, 3, n_open).astype(np.int64),
        age_days=rng.integers(0, 90, n_open).astype(np.float64),
        amount=np.where(rng.random(n_open) < 0.5, rng.lognormal(10, 0.5, n_open), np.nan),
    )
    params = make_params(
        conversion_sd=0.05, open_units=ou, loss_median=loss_median, pipeline_stage=2
    )
    pr = prepare(params, make_plan(params.segments, target=2e6, weeks=13))
    model, n_streams = _args(pr)
    root = _rng.root_seed(3)
    g1, k, nd, w = pr.n_segments + 1, n_scalars(pr.n_stages), pr.n_dates, pr.week_days.shape[0]
    outs = []
    for cache_max in (K.TAIL_CACHE_MAX_ENTRIES, 0):
        scratch = K._scratch(model, n_streams, cache_max, False)
        assert (scratch.tails.shape[0] > 0) == (cache_max > 0)
        outs.append(_play_paths(K, root, model, scratch, (g1, k, nd, w)))
    for a, b in zip(*outs, strict=True):
        assert np.array_equal(a, b)
    assert outs[0][0][:, -1, 0].std() > 0  # the paths differ from each other


def _play_paths(K, root, model, scratch, dims, n=600):
    """Play paths ``0..n-1`` of an ``n``-path run one by one; return their metric arrays."""
    g1, k, nd, w = dims
    res = (
        np.zeros((n, g1, k)),
        np.zeros((n, g1), np.int64),
        np.zeros((n, g1, nd)),
        np.zeros((n, g1, w)),
    )
    for q in range(n):
        K._one_path(root, q, n, model, scratch, res[0][q], res[1][q], res[2][q], res[3][q])
    return res


def _last_step_units(loss_median: tuple[float, ...] | None):
    """Open units at every stage, many at the last step (ages 1..120 days), and their plan."""
    rng = np.random.default_rng(8)
    n_open = 400
    ou = OpenUnits(
        cell=rng.integers(0, 6, n_open).astype(np.int64),
        stage=rng.choice(3, n_open, p=[0.2, 0.2, 0.6]).astype(np.int64),
        age_days=rng.integers(0, 120, n_open).astype(np.float64),
        amount=np.where(rng.random(n_open) < 0.5, rng.lognormal(10, 0.5, n_open), np.nan),
    )
    params = make_params(
        conversion_sd=0.05, open_units=ou, loss_median=loss_median, pipeline_stage=2
    )
    return params, make_plan(params.segments, target=2e6, weeks=13)


@pytest.mark.parametrize("loss_median", [None, (9.0, 20.0, 40.0)])
def test_day_grids_give_the_days_of_the_continuous_draws(
    loss_median: tuple[float, ...] | None,
) -> None:
    """The per-draw day grids change no number: the same paths with them and without.

    A last-step pipeline unit's win or exit day found on the grid
    (``_grid_day``) from the uniform the truncated lognormal draw inverts is
    that draw's day (up to rounding at a day boundary, probability ~1e-13 a
    unit): 600 paths (30 a draw, in runs) with the grids and without must be
    equal to the bit. Power: an off-by-one in the bisection or a grid of the
    wrong law shifts days and fails the equality.
    """
    from simengine.engine import _kernels as K
    from simengine.engine import _rng
    from simengine.engine.blocks import _args, n_scalars

    params, plan = _last_step_units(loss_median)
    pr = prepare(params, plan)
    model, n_streams = _args(pr)
    root = _rng.root_seed(4)
    g1, k, nd, w = pr.n_segments + 1, n_scalars(pr.n_stages), pr.n_dates, pr.week_days.shape[0]
    outs = []
    for grids in (True, False):
        scratch = K._scratch(model, n_streams, K.TAIL_CACHE_MAX_ENTRIES, grids)
        assert (scratch.grid.shape[2] > 0) == grids
        outs.append(_play_paths(K, root, model, scratch, (g1, k, nd, w)))
    for a, b in zip(*outs, strict=True):
        assert np.array_equal(a, b)
    assert outs[0][0][:, -1, 0].std() > 0  # the paths differ from each other


@pytest.mark.parametrize("loss_median", [None, (9.0, 20.0, 40.0)])
def test_day_grid_law_within_1e6_total_variation(loss_median: tuple[float, ...] | None) -> None:
    """Each grid's day law of ``X - a | X > a`` is within 1e-6 in total variation of SciPy's.

    For every cell, law and age ``a`` of 1..120 days: P(day k) = (S(a + k) -
    S(a + k + 1)) / S(a) for k < horizon, the rest beyond it, from the grid
    (``_fill_grid``) against ``scipy.stats.lognorm`` (direct evaluation of the
    same CDF, an independent implementation). The bound is the issue's
    numerical tolerance; power: the grid of a law with its median off by 1%
    is far outside it.
    """
    from scipy import stats as st

    from simengine.engine import _kernels as K
    from simengine.engine.blocks import _args

    params, plan = _last_step_units(loss_median)
    pr = prepare(params, plan)
    model, _ = _args(pr)
    H = pr.sim_days
    grid = np.empty((6, 2, 121 + H))
    d = 3
    K._fill_grid(model, d, grid)
    laws = [(pr.delay_mu[d, :, 2], pr.delay_sigma[d, :, 2])]
    if loss_median is not None:
        laws.append((pr.leave_mu[d, :, 2], pr.leave_sigma[d, :, 2]))
    worst, mutated = 0.0, np.inf
    for j, (mus, sigmas) in enumerate(laws):
        for c in range(6):
            m = np.arange(121 + H, dtype=float)
            for shift, key in ((0.0, "exact"), (0.01, "mutated")):
                sf = st.lognorm(s=sigmas[c], scale=np.exp(mus[c] + shift)).sf(m)
                for a in range(1, 121):
                    g = grid[c, j, a : a + H + 1] / grid[c, j, a]
                    s = sf[a : a + H + 1] / sf[a]
                    pk_g = np.r_[g[:-1] - g[1:], g[-1]]
                    pk_s = np.r_[s[:-1] - s[1:], s[-1]]
                    tv = 0.5 * np.abs(pk_g - pk_s).sum()
                    if key == "exact":
                        worst = max(worst, tv)
                    else:
                        mutated = min(mutated, tv)
    assert worst <= 1e-6, worst
    assert mutated > 1e-6, mutated
