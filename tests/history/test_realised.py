"""Whole-period forecasts from an as-of date inside the period: realised-to-date + the rest."""

from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np
import pandas as pd
import pytest
import world

from simengine.engine import prepare, simulate
from simengine.engine._sketch import REL_ERROR
from simengine.engine.blocks import run_paths
from simengine.errors import InputError
from simengine.history.realised import realised_to_date, remaining_plan, simulate_to_date

AS_OF = dt.date(2017, 8, 15)


def test_realised_to_date_counts_wins_in_the_window(wrecords, wspec):
    plan = world.plan()
    rt = realised_to_date(wrecords, wspec, plan, AS_OF, list(world.SEGMENTS))
    won = wrecords["won_at"]
    inside = (won >= "2017-07-01") & (won <= "2017-08-15")
    for seg in world.SEGMENTS:
        sel = inside & (wrecords["segment"] == seg)
        assert rt.revenue[seg] == pytest.approx(wrecords.loc[sel, "amount"].sum(), rel=1e-12)
        assert rt.won_deals[seg] == int(sel.sum())
    assert rt.revenue["total"] == pytest.approx(sum(rt.revenue[s] for s in world.SEGMENTS))
    assert rt.cumulative.index[0] == pd.Timestamp("2017-07-01")
    assert rt.cumulative.index[-1] == pd.Timestamp(AS_OF)
    assert rt.cumulative["total"].iloc[-1] == pytest.approx(rt.revenue["total"])
    assert rt.revenue["total"] > 0  # the window holds wins: the test is not vacuous


def test_whole_period_is_realised_plus_the_simulated_rest_path_by_path(wrecords, wspec):
    """P(hit) is the exact share of paths with R + X >= T; the mean and P50 are R + those of X."""
    plan = world.plan()
    params = world.params(wrecords, wspec, AS_OF)
    rt = realised_to_date(wrecords, wspec, plan, AS_OF, list(world.SEGMENTS))
    n, seed = 4000, 7
    run = simulate_to_date(params, plan, rt, paths=n, seed=seed, batches=4, threads=1)
    sub = remaining_plan(plan, AS_OF)
    assert sub.start == AS_OF + dt.timedelta(days=1)
    assert sub.end == plan.end
    x = run_paths(prepare(params, sub), 0, n, seed).scalars[:, :, 0]  # (path, g) revenue
    segs = [*world.SEGMENTS, "total"]
    r = np.array([rt.revenue[s] for s in segs])
    t = np.array([*world.TARGETS.values(), sum(world.TARGETS.values())])
    full = x + r
    hit = (full >= t).mean(axis=0)
    assert 0.05 < hit[-1] < 0.95  # targets in the body of the distribution: a real check
    for g, s in enumerate(segs):
        assert run.value(s, "attainment", "prob_hit") == pytest.approx(hit[g], abs=1e-12)
        assert run.value(s, "revenue", "mean") == pytest.approx(full[:, g].mean(), rel=1e-9)
        exact = np.quantile(full[:, g], 0.5, method="inverted_cdf")
        # the sketch's relative error is on the simulated part X only
        tol = REL_ERROR * np.quantile(x[:, g], 0.5, method="inverted_cdf") + 1e-6
        assert abs(run.value(s, "revenue", "p50") - exact) <= tol
        assert run.value(s, "attainment", "p50") == pytest.approx(
            run.value(s, "revenue", "p50") / t[g], rel=1e-12
        )
    fan = run.forecast.dataset["cum_revenue"]
    # before the as-of date the fan is the known cumulative revenue, one line
    known = fan.sel(segment="total", date=str(AS_OF)).values
    assert np.all(known == pytest.approx(rt.revenue["total"]))


def test_before_the_period_it_is_the_engine_forecast(wrecords, wspec):
    d = dt.date(2017, 6, 30)
    plan = world.plan()
    params = world.params(wrecords, wspec, d)
    rt = realised_to_date(wrecords, wspec, plan, d, list(world.SEGMENTS))
    assert rt.revenue["total"] == 0.0
    run = simulate_to_date(params, plan, rt, paths=3000, seed=3, batches=3, threads=1)
    ref = simulate(
        params, dataclasses.replace(plan, as_of=d), paths=3000, seed=3, block_size=1000, threads=1
    )
    a = run.forecast.summary.set_index(["segment", "metric", "stat"])["value"]
    b = ref.summary.set_index(["segment", "metric", "stat"])["value"]
    for metric in ("revenue", "time_to_target_days", "won_deals", "coverage"):
        np.testing.assert_array_equal(a.xs(metric, level=1), b.xs(metric, level=1))
    ph = ("total", "attainment", "prob_hit")
    assert a[ph] == b[ph]


def test_met_target_has_prob_one_and_the_day_it_was_reached(wrecords, wspec):
    plan = world.plan({"east": 50_000.0, "west": 50_000.0})
    params = world.params(wrecords, wspec, AS_OF)
    rt = realised_to_date(wrecords, wspec, plan, AS_OF, list(world.SEGMENTS))
    assert rt.revenue["east"] >= 50_000.0
    run = simulate_to_date(params, plan, rt, paths=2000, seed=1, batches=2, threads=1)
    assert run.value("east", "attainment", "prob_hit") == 1.0
    day = int(np.flatnonzero(rt.cumulative["east"].to_numpy() >= 50_000.0)[0])
    assert run.value("east", "time_to_target_days", "p50") == day
    assert run.value("east", "time_to_target_days", "prob_reached") == 1.0


def test_as_of_at_the_period_end_is_refused():
    with pytest.raises(InputError, match="leaves nothing of the period"):
        remaining_plan(world.plan(), world.END)
