"""Goal seek against a closed form, and monotonicity on common random numbers."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math

import numpy as np
import pytest
from scipy.special import gammaincinv
from scipy.stats import poisson

from simengine.config.plan import Plan
from simengine.params import FunnelParameters
from simengine.planning import _runs
from simengine.planning.goalseek import (
    expected_units,
    goal_seek,
    goal_seek_table,
    hit_probabilities,
)
from simengine.planning.scenarios import Shock, apply_shock

P_WIN = 0.4
RATE = 10.0  # per week
K = 20  # target: 20 deals of amount 1
DAYS = 28


def closed_form_inputs(target: float = K) -> tuple[FunnelParameters, Plan]:
    """Fixed rates, Poisson arrivals, no delays, amounts of exactly 1.

    One draw; conversion 0.4; delay median 1e-6 days with sd 0 (a unit wins on
    the day it enters); deal size exp(0 + 0 z) = 1; dispersion 0 and trend 0;
    no open units; the period is the 28 days from the as-of date. Then won
    deals in the period ~ Poisson(4 weeks x rate x m x 0.4) and
    P(won >= k) = P(Gamma(k, 1) <= lambda) = gammainc(k, lambda), so the lambda
    with P(hit) = q is gammaincinv(k, q).
    """
    one = np.ones((1, 1, 1))
    params = FunnelParameters(
        stages=("lead", "won"),
        cells=("a",),
        segments=("a",),
        cell_segment=np.array([0], np.int64),
        pipeline_stage=0,
        as_of=dt.date(2027, 1, 4),
        conversion=P_WIN * one,
        delay_mu=np.log(1e-6) * one,
        delay_sigma=0 * one,
        arrival_rate=RATE * one,
        arrival_dispersion=0 * one,
        arrival_trend=0 * one,
        deal_size_mu=np.zeros((1, 1)),
        deal_size_sigma=np.zeros((1, 1)),
    )
    plan = Plan(
        start=dt.date(2027, 1, 4),
        end=dt.date(2027, 1, 4) + dt.timedelta(days=DAYS - 1),
        as_of=dt.date(2027, 1, 4),
        targets={"a": float(target)},
    )
    return params, plan


def test_expected_units_of_the_closed_form():
    params, plan = closed_form_inputs()
    assert expected_units(params, plan, "a", "lead") == pytest.approx(DAYS / 7 * RATE, rel=1e-12)


def test_hit_probability_matches_the_poisson_tail():
    params, plan = closed_form_inputs()
    n = 10_000
    ms = [0.8, 1.0, 1.25, 1.5]
    got = [hit_probabilities(params, plan, "lead", {"a": m}, paths=n, seed=5)["a"] for m in ms]
    for m, p_hat in zip(ms, got, strict=True):
        p = poisson.sf(K - 1, DAYS / 7 * RATE * m * P_WIN)
        # binomial band: 4 standard errors of a proportion over n paths
        assert abs(p_hat - p) <= 4 * math.sqrt(p * (1 - p) / n)
    # on common random numbers the estimates rise with the volume
    assert got == sorted(got)


@pytest.mark.parametrize("q", [0.5, 0.8])
def test_goal_seek_finds_the_closed_form_volume(q):
    params, plan = closed_form_inputs()
    n, rel_tol = 10_000, 0.005
    (res,) = goal_seek(params, plan, stage="lead", q=q, paths=n, seed=7, rel_tol=rel_tol)
    exact_needed = gammaincinv(K, q) / P_WIN  # leads needed in the period
    assert res.status == "ok"
    assert res.baseline_units == pytest.approx(40.0)
    # Error budget: Monte Carlo (4 reported standard errors, delta method) plus the
    # bisection's bracket (the answer is its upper end, at most rel_tol above the crossing).
    assert abs(res.needed - exact_needed) <= 4 * res.needed_se + rel_tol * res.needed
    # the reported error is the delta-method value: sqrt(q(1-q)/n) / (dP/dunits)
    lam = gammaincinv(K, q)
    slope = poisson.pmf(K - 1, lam) * P_WIN  # dP/dunits of the exact curve
    assert res.needed_se == pytest.approx(math.sqrt(q * (1 - q) / n) / slope, rel=0.35)
    assert res.prob_hit >= q
    # issue 19: no gap where the plan gives no volume (it was needed - baseline)
    assert math.isnan(res.planned)
    assert math.isnan(res.gap)


def test_goal_seek_edge_cases():
    params, plan = closed_form_inputs(target=1)
    (res,) = goal_seek(params, plan, stage="lead", q=0.5, paths=2000, seed=1)
    # target of one deal with 16 expected: but with no leads at all nothing is won
    assert res.status == "ok"
    assert res.multiplier < 0.2
    params, plan = closed_form_inputs(target=10_000)
    (res,) = goal_seek(params, plan, stage="lead", q=0.5, paths=500, seed=1, max_multiplier=4)
    assert res.status == "unreachable"
    assert math.isinf(res.needed)


def test_goal_seek_already_with_open_pipeline():
    from simengine.params import OpenUnits

    params, plan = closed_form_inputs(target=3)
    # 50 open leads, each 40 % to win at once: P(won >= 3) ~ 1 without new leads
    params = dataclasses.replace(
        params,
        open_units=OpenUnits(
            cell=np.zeros(50, np.int64),
            stage=np.zeros(50, np.int64),
            age_days=np.zeros(50),
            amount=np.full(50, np.nan),
        ),
    )
    (res,) = goal_seek(params, plan, stage="lead", q=0.8, paths=1000, seed=1)
    assert res.status == "already"
    assert res.needed == 0


def test_more_mqls_never_lower_p_hit_on_common_random_numbers(params, plan):
    """Each step up in MQL volume changes P(hit) by at least -3 paired standard errors.

    The engine's Poisson and binomial samplers switch to rejection methods for
    large means, so a path's outcome is not guaranteed monotone in the volume;
    the estimate is, in expectation. On common random numbers the paired error
    is small, so a real decrease would show.
    """
    runs = []
    for m in (0.5, 0.75, 1.0, 1.5, 2.0):
        p, pl = apply_shock(params, plan, Shock("arrivals", "scale", m, stage="mql"))
        runs.append(_runs.run(p, pl, paths=2000, seed=9, batches=8))
    for seg in ("smb", "mid", "ent", "total"):
        for a, b in zip(runs[1:], runs[:-1], strict=True):
            d = _runs.paired(a, b, seg, "attainment", "prob_hit")
            assert d.delta >= -3 * d.se, (seg, d)
        first = runs[0].value(seg, "attainment", "prob_hit")
        last = runs[-1].value(seg, "attainment", "prob_hit")
        assert last >= first


def test_goal_seek_table_with_a_planned_volume(params):
    from planning_factories import make_plan

    plan = make_plan({"mid": {"mql": 400.0}})
    df = goal_seek_table(params, plan, quantiles=(0.5,), paths=1000, seed=2, stages=["mql"])
    assert list(df.segment) == ["smb", "mid", "ent"]
    mid = df[df.segment == "mid"].iloc[0]
    assert mid.planned == 400.0
    assert mid.baseline_units == 400.0
    assert mid.gap == pytest.approx(mid.needed - 400.0)
    assert np.isnan(df[df.segment == "smb"].iloc[0].planned)
    assert np.isnan(df[df.segment == "smb"].iloc[0].gap)
