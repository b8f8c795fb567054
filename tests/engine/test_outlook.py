"""The per-deal outlook against the engine's own simulation of the open units.

With no new arrivals every simulated won deal and every pipeline unit is an
open unit of the as-of date, so the engine's mean period revenue is the sum
of the outlook's ``expected_revenue_in_period``, its mean won deals the sum
of the won-in-period probabilities, and (with amount 1 and units at or past
the pipeline stage) its mean open pipeline at the period's last week end the
sum of ``p_open_at_period_end``. Each is checked two-sided within
``Z`` Monte Carlo standard errors of the engine's mean (``sd / sqrt(paths)``,
conservative: paths cycle through the draws, so the between-draw part of the
variance is stratified). ``Z = 4``: alpha about 6e-5 per comparison.
Power: the same check on a mutated outlook (ages ignored, i.e. the
unconditional law of a fresh unit) must fail.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from engine_helpers import make_params, make_plan

from simengine.engine import simulate
from simengine.engine.outlook import COLUMNS, deal_outlook
from simengine.params import OpenUnits

Z = 4.0
PATHS = 40_000


def _units(n: int, n_cells: int, stages: list[int], seed: int, amount: float | None) -> OpenUnits:
    rng = np.random.default_rng(seed)
    amt = (
        np.full(n, amount)
        if amount is not None
        else np.where(rng.random(n) < 0.5, rng.lognormal(np.log(25_000), 0.3, n), np.nan)
    )
    return OpenUnits(
        cell=rng.integers(0, n_cells, n).astype(np.int64),
        stage=rng.choice(stages, n).astype(np.int64),
        age_days=rng.integers(0, 90, n).astype(np.float64),
        amount=amt,
    )


def _params(loss: bool, units: OpenUnits, pipeline_stage: int = 2):
    return make_params(
        segments=("smb", "ent"),
        channels=("web", "out"),
        draws=40,
        conversion=(0.3, 0.6, 0.35),
        conversion_sd=0.05,
        delay_median=(6.0, 12.0, 30.0),
        delay_sigma=0.6,
        rate=0.0,
        pipeline_stage=pipeline_stage,
        loss_median=(20.0, 25.0, 40.0) if loss else None,
        open_units=units,
    )


def _z(expected: float, fc, seg: str, metric: str) -> float:
    s = fc.summary.set_index(["segment", "metric", "stat"])["value"]
    mean, sd = s[seg, metric, "mean"], s[seg, metric, "sd"]
    return (expected - mean) / (sd / np.sqrt(PATHS))


@pytest.mark.parametrize("loss", [True, False])
@pytest.mark.parametrize("start_delay", [0, 10])
def test_expected_revenue_and_wins_match_the_engine(loss: bool, start_delay: int) -> None:
    params = _params(loss, _units(300, 4, [0, 1, 2], seed=3, amount=None))
    plan = make_plan(("smb", "ent"), target=1e6, weeks=8, start_delay_days=start_delay,
                     horizon_days=120)
    fc = simulate(params, plan, paths=PATHS, seed=11, block_size=10_000, threads=1)
    deals = deal_outlook(params, plan)
    assert list(deals.columns) == list(COLUMNS)
    np.testing.assert_allclose(
        deals[["p_won_in_period", "p_lost_in_period", "p_open_at_period_end"]].sum(axis=1), 1.0
    )
    # a mutation: the outlook of units that have just entered their stage
    young = dataclasses.replace(
        params, open_units=dataclasses.replace(params.open_units,
                                               age_days=np.zeros(len(params.open_units)))
    )
    wrong = deal_outlook(young, plan)
    for seg in ("smb", "ent", "total"):
        rows = deals if seg == "total" else deals[deals["segment"] == seg]
        bad = wrong if seg == "total" else wrong[wrong["segment"] == seg]
        z_rev = _z(rows["expected_revenue_in_period"].sum(), fc, seg, "revenue")
        assert abs(z_rev) <= Z, (seg, z_rev)
        # won deals in the period: units entering the last stage on a day of it
        won = rows["expected_revenue_in_period"] / rows["amount"]
        z_won = _z(won.sum(), fc, seg, "won_deals")
        assert abs(z_won) <= Z, (seg, z_won)
        assert abs(_z(bad["expected_revenue_in_period"].sum(), fc, seg, "revenue")) > Z


@pytest.mark.parametrize("loss", [True, False])
def test_open_at_period_end_matches_the_engine_pipeline(loss: bool) -> None:
    """Units at or past the pipeline stage, amount 1: the open pipeline at the period's
    last day (a week end) counts the units neither won nor lost by then."""
    params = _params(loss, _units(300, 4, [1, 2], seed=5, amount=1.0), pipeline_stage=1)
    target = 1e6
    plan = make_plan(("smb", "ent"), target=target, weeks=6, horizon_days=90)
    fc = simulate(params, plan, paths=PATHS, seed=13, block_size=10_000, threads=1)
    deals = deal_outlook(params, plan)
    wrong = deal_outlook(
        dataclasses.replace(params, open_units=dataclasses.replace(
            params.open_units, age_days=np.zeros(len(params.open_units)))), plan)
    cov = fc.dataset["coverage"]  # only quantiles per week: use the raw paths instead
    assert cov.sizes["week"] == 6
    from simengine.engine import prepare, run_paths

    pm = run_paths(prepare(params, plan), 0, PATHS, seed=13)
    for g, seg in enumerate(("smb", "ent", "total")):
        # units open at the end of day end_off (coverage = value / target; total: both)
        open_end = pm.week_coverage[:, g, -1] * (2 * target if seg == "total" else target)
        rows = deals if seg == "total" else deals[deals["segment"] == seg]
        bad = wrong if seg == "total" else wrong[wrong["segment"] == seg]
        se = open_end.std(ddof=1) / np.sqrt(PATHS)
        z = (rows["p_open_at_period_end"].sum() - open_end.mean()) / se
        assert abs(z) <= Z, (seg, z)
        assert abs((bad["p_open_at_period_end"].sum() - open_end.mean()) / se) > Z


def test_one_step_closed_form() -> None:
    """A unit one step from won, no uncertainty: P(won by day k) is the truncated law's."""
    from scipy import stats

    ou = OpenUnits(np.zeros(1, np.int64), np.zeros(1, np.int64), np.array([15.0]), np.ones(1))
    params = make_params(stages=("opp", "won"), segments=("a",), channels=(), draws=1,
                         conversion=0.6, delay_median=10.0, delay_sigma=0.5, rate=0.0,
                         pipeline_stage=0, open_units=ou)
    plan = make_plan(("a",), target=1.0, weeks=4)
    row = deal_outlook(params, plan).iloc[0]
    law = stats.lognorm(s=0.5, scale=10.0)
    fa = law.cdf(15.0)
    pc = 0.6 * (1 - fa) / (1 - 0.6 * fa)
    won = pc * (law.cdf(15.0 + 28) - fa) / (1 - fa)
    lost = (1 - pc) * (law.cdf(15.0 + 28) - fa) / (1 - fa)  # no loss law: leaves after F
    assert row["p_won_in_period"] == pytest.approx(won, rel=1e-9)
    assert row["p_lost_in_period"] == pytest.approx(lost, rel=1e-9)
    assert row["p_open_at_period_end"] == pytest.approx(1 - won - lost, rel=1e-9)


def test_ids_must_match_the_units() -> None:
    params = _params(True, _units(3, 4, [2], seed=1, amount=1.0))
    with pytest.raises(ValueError, match="3 open units"):
        deal_outlook(params, make_plan(("smb", "ent")), ids=["a"])


def test_dormant_units_match_the_engine() -> None:
    """With a dormant share (non-converters that stay open), the outlook's revenue,
    won deals and open pipeline at the period's end match the engine (same
    ``Z``, two-sided). Power: the outlook of the same parameters without the
    dormant share (the law before it) must miss the engine's open pipeline."""
    from simengine.engine import prepare, run_paths

    units = _units(300, 4, [1, 2], seed=7, amount=1.0)
    base = _params(True, units, pipeline_stage=1)
    dorm = np.full(base.conversion.shape, 0.35)
    params = dataclasses.replace(base, dormant=dorm)
    target = 1e6
    plan = make_plan(("smb", "ent"), target=target, weeks=6, horizon_days=90)
    fc = simulate(params, plan, paths=PATHS, seed=17, block_size=10_000, threads=1)
    pm = run_paths(prepare(params, plan), 0, PATHS, seed=17)
    deals = deal_outlook(params, plan)
    wrong = deal_outlook(base, plan)
    for g, seg in enumerate(("smb", "ent", "total")):
        rows = deals if seg == "total" else deals[deals["segment"] == seg]
        bad = wrong if seg == "total" else wrong[wrong["segment"] == seg]
        assert abs(_z(rows["expected_revenue_in_period"].sum(), fc, seg, "revenue")) <= Z
        assert abs(_z(rows["p_won_in_period"].sum(), fc, seg, "won_deals")) <= Z
        open_end = pm.week_coverage[:, g, -1] * (2 * target if seg == "total" else target)
        se = open_end.std(ddof=1) / np.sqrt(PATHS)
        z = (rows["p_open_at_period_end"].sum() - open_end.mean()) / se
        assert abs(z) <= Z, (seg, z)
        assert abs((bad["p_open_at_period_end"].sum() - open_end.mean()) / se) > Z
