"""Censoring: with many open units the naive rate is biased low; the cure model is not."""

from __future__ import annotations

import datetime as dt

import numpy as np

from simengine.fitting import conversion
from simengine.fitting.data import build_data
from simengine.fitting.fit import sample_model
from simengine.fitting.raw_rates import raw_rates

AS_OF = dt.date(2026, 1, 5)


def test_open_units_are_censored_not_lost(records_factory, spec_factory):
    # one cell, slow steps (median 45-60 days) over 180 days of history: a large
    # share of the units that entered a from-stage are still open at as-of
    df, truth = records_factory(
        7,
        history_days=180,
        segments=("ent",),
        channels=("ads",),
        weekly_rate=25.0,
        delay_median_days=(45.0, 50.0, 60.0),
        lost_median_days=20.0,
    )
    spec = spec_factory(drift=False)
    data = build_data(df, spec, AS_OF)
    assert data.open_count.sum() > 0.3 * (data.n_converted.sum() + data.n_lost.sum())
    naive = raw_rates(df, spec, AS_OF, 364)["rate"].to_numpy()
    true_p = truth.conversion[0]
    # the naive won/entered ratio is badly biased low on every step (by >25% of the truth)
    assert np.all(naive < 0.75 * true_p)

    model = conversion.build_model(data)
    idata = sample_model(
        model, draws=500, tune=500, chains=2, target_accept=0.95, seed=5, sampler="nutpie"
    )
    draws = idata["posterior"]["conversion"].values.reshape(-1, 3)
    # one check at the stated 90% level: the end-to-end (lead -> won) conversion,
    # the product of the steps; plus per-step 99% intervals (3 checks, Bonferroni)
    end = draws.prod(axis=1)
    lo90, hi90 = np.quantile(end, [0.05, 0.95])
    assert lo90 <= true_p.prod() <= hi90, (lo90, true_p.prod(), hi90)
    lo, hi = np.quantile(draws, [0.005, 0.995], axis=0)
    assert np.all((lo <= true_p) & (true_p <= hi)), (lo, true_p, hi)
    # and the model does not share the naive bias: its median is above the naive
    # ratio on every step, and the naive end-to-end rate is below its 90% interval
    assert np.all(naive < np.median(draws, axis=0))
    assert naive.prod() < lo90
