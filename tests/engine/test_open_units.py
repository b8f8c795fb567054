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
