"""Censoring: with many open units the naive rate is biased low; the cure model is not."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

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


def test_data_containers_carry_all_the_statistics(records_factory, spec_factory):
    # a model built on one data set and given another's containers has exactly
    # the log density of a model built on the other (no statistic left baked in)
    import pymc as pm

    spec = spec_factory(drift=False)
    df, _ = records_factory(1, history_days=200, segments=("ent",), channels=("ads", "web"))
    data_a = build_data(df, spec, AS_OF)
    rng = np.random.default_rng(2)
    # new statistics with the same structure (unit totals per cell and step, and
    # delay/loss counts, decide which levels are centred): move units between
    # converted and lost, change the log sums and the open units' ages
    k = np.minimum(data_a.n_lost, 3)
    data_b = replace(
        data_a,
        n_converted=data_a.n_converted + k,
        n_lost=data_a.n_lost - k,
        delay_sum_log=data_a.delay_sum_log + 2.0,
        delay_sum_log2=data_a.delay_sum_log2 * 1.5,
        loss_sum_log=data_a.loss_sum_log * 1.1,
        loss_sum_log2=data_a.loss_sum_log2 * 1.2,
        open_age=data_a.open_age * rng.uniform(0.5, 2.0, data_a.open_age.size),
    )
    # the centring is fixed when a model is built: build both with data_a's
    fixed = conversion.centring(data_a)
    model_a = conversion.build_model(data_a, centred=fixed)
    model_b = conversion.build_model(data_b, centred=fixed)
    point = {k: v + 0.1 for k, v in model_b.initial_point().items()}  # off the start
    logp_a = model_a.compile_logp()
    before = logp_a(point)
    with model_a:
        pm.set_data(conversion.data_arrays(data_b))
    la = logp_a(point)  # the compiled function sees the new containers
    lb = model_b.compile_logp()(point)
    assert not np.isclose(before, lb)  # the two data sets differ in density
    assert np.isclose(la, lb, rtol=1e-12, atol=1e-9), (la, lb)


def test_delay_centring_option_switches_the_delay_levels(records_factory, spec_factory):
    """``centred_min_delays``: a count rule centres these levels, inf never; same data."""
    spec = spec_factory(drift=False)
    df, _ = records_factory(1, history_days=500, segments=("ent",), channels=("ads", "web"))
    data = build_data(df, spec, AS_OF)
    assert data.delay_n.min() >= conversion.CENTRED_MIN_DELAYS  # the count rule centres them
    count = conversion.CENTRED_MIN_DELAYS
    default = {v.name for v in conversion.build_model(data, centred_min_delays=count).free_RVs}
    never = {v.name for v in conversion.build_model(data, centred_min_delays=float("inf")).free_RVs}
    assert "delay_mu_level" in default
    assert "delay_mu_level_z" not in default
    assert "delay_mu_level_z" in never
    assert "delay_mu_level" not in never
