"""The waterfall between two snapshots: exact zeros for no move, and parts that add up."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pytest
import world
from scipy.stats import norm

from simengine.engine._sketch import REL_ERROR
from simengine.history.movement import STEPS, waterfall, with_recorded
from simengine.history.realised import realised_to_date, simulate_to_date

A, B = dt.date(2017, 7, 15), dt.date(2017, 8, 15)


def test_no_move_gives_exact_zeros(wrecords, wspec):
    plan = world.plan()
    p = world.params(wrecords, wspec, A)
    rows = waterfall(wrecords, wspec, plan, p, p, paths=2000, seed=5, batches=2, threads=1)
    steps = rows[rows["step"].isin(STEPS)]
    assert (steps["value"] == 0.0).all()
    start = rows[rows["step"] == "start"].set_index(["segment", "metric"])["value"]
    end = rows[rows["step"] == "end"].set_index(["segment", "metric"])["value"]
    assert start.equals(end)


def _recorded(run):
    out = {}
    for s in run.segments:
        out[(s, "revenue_p50")] = (run.value(s, "revenue", "p50"), run.se(s, "revenue_p50"))
        out[(s, "prob_hit")] = (run.value(s, "attainment", "prob_hit"), run.se(s, "prob_hit"))
    return out


@pytest.fixture(scope="module")
def moved(wrecords, wspec):
    """Snapshots at A and B (own seeds), B refitted (conversion x1.15), and the waterfall."""
    plan = world.plan()
    segs = list(world.SEGMENTS)
    pa = world.params(wrecords, wspec, A, seed=0)
    pb = world.params(wrecords, wspec, B, seed=1, conv_scale=1.15)
    n = 20_000
    snap_a = simulate_to_date(
        pa, plan, realised_to_date(wrecords, wspec, plan, A, segs), paths=n, seed=11
    )
    snap_b = simulate_to_date(
        pb, plan, realised_to_date(wrecords, wspec, plan, B, segs), paths=n, seed=12
    )
    rows = waterfall(wrecords, wspec, plan, pa, pb, paths=n, seed=99)
    return with_recorded(rows, _recorded(snap_a), _recorded(snap_b))


ALPHA = 0.01  # family-wise, Bonferroni over the (segment, metric) pairs


def _z_scores(rows, drop: str | None = None):
    """Residual over its se, after the sketch's bounded quantisation of each P50.

    A P50 is read off a log-histogram sketch, within ``REL_ERROR`` (0.4975%)
    of the exact sample quantile: a bounded, not random, error, so up to
    ``REL_ERROR x level`` per P50 in the residual (four P50s: both recorded
    snapshots and the waterfall's two ends) is taken off before the z-score.
    P(hit) is an exact count: no such term.
    """
    zs = []
    for (_seg, metric), g in rows.groupby(["segment", "metric"]):
        g = g.set_index("step")
        parts = sum(float(g.loc[s, "value"]) for s in STEPS if s != drop)
        change = float(g.loc["recorded change", "value"])
        se = float(g.loc["residual", "se"])
        slack = 0.0
        if metric == "revenue_p50":
            levels = g.loc[["previous", "current", "start", "end"], "value"].abs().sum()
            slack = REL_ERROR * float(levels)
        zs.append(max(abs(change - parts) - slack, 0.0) / se)
    return np.array(zs)


@pytest.mark.slow
def test_parts_add_up_to_the_recorded_change(moved):
    """|recorded change - sum of steps| <= z_(1-alpha/2m) * se, alpha = 0.01 family-wise.

    The residual is the difference of independent Monte Carlo estimates of
    the same quantity (snapshots on their own seeds, waterfall states on a
    common one), so it is zero-mean under a correct decomposition; its se
    combines the four runs' batch-means errors.
    """
    z = _z_scores(moved)
    assert np.isfinite(z).all()
    assert z.size == 6
    crit = norm.ppf(1 - ALPHA / (2 * z.size))
    assert np.all(np.abs(z) <= crit), z
    # each step is recorded with its paired se, and the moves are real (not all ~0)
    g = moved[(moved["segment"] == "total") & (moved["metric"] == "revenue_p50")].set_index("step")
    assert abs(g.loc["refit", "value"]) > 10 * g.loc["refit", "se"]
    assert abs(g.loc["revenue won", "value"]) > 10 * g.loc["revenue won", "se"]


@pytest.mark.slow
@pytest.mark.parametrize("drop", ["refit", "revenue won", "new pipeline"])
def test_mutation_a_missing_step_fails(moved, drop):
    """Power: leaving a step out of the sum is caught by the same test."""
    z = _z_scores(moved, drop=drop)
    crit = norm.ppf(1 - ALPHA / (2 * z.size))
    assert np.any(np.abs(z) > crit), z


@pytest.mark.slow
def test_residual_rows_are_recorded_change_minus_steps(moved):
    for (_s, _m), g in moved.groupby(["segment", "metric"]):
        g = g.set_index("step")
        parts = float(g.loc[list(STEPS), "value"].sum())
        assert g.loc["residual", "value"] == pytest.approx(
            g.loc["recorded change", "value"] - parts, abs=1e-9
        )
        assert g.loc["current", "value"] - g.loc["previous", "value"] == pytest.approx(
            g.loc["recorded change", "value"], abs=1e-9
        )
        assert math.isfinite(g.loc["residual", "se"])
