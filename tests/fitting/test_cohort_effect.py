"""Recovery of the cohort effect's sd (``conversion_cohort_sd``) by the conversion model.

Synthetic statistics with a known truth: the layout (4 cells, 3 steps, 8
quarterly drift periods) and the number of units that left each (cell, step,
period) come from the test generator; their outcomes are redrawn as
binomials with logit ``base[c, s] + u[s, t]``, ``u`` normal draws shared by
the cells and rescaled to sample sd exactly ``tau`` (no walk, no open
units). 24 cohort effects pin ``tau`` to
about +-0.1 at ``tau`` = 0.5.

Statistical check: the central 95% posterior interval of ``tau`` holds the
truth (0.5). For a calibrated posterior this fails with probability about
0.05 over data sets (alpha = 0.05; the seed is fixed, so the test is
reproducible). Power (the mutation that must fail): the same check on data
without cohort effects (``tau`` = 0, the model's prior mean is 0.2) must
exclude 0.5, i.e. the interval is informative and follows the data. The
term is on with prior mean 0.2 (``cohort_sd``; off by default).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import numpy as np
import pytest

from simengine.fitting import conversion
from simengine.fitting.data import build_data
from simengine.fitting.fit import sample_model
from simengine.fitting.priors import DEFAULT_PRIORS

AS_OF = dt.date(2026, 1, 5)
TAU = 0.5
ON = replace(DEFAULT_PRIORS, cohort_sd=0.2)  # the term is off by default (cohort_sd = 0)


def _data_with_cohorts(records_factory, spec_factory, tau: float, seed: int):
    df, truth = records_factory(3, history_days=640, weekly_rate=20.0)
    data = build_data(df, spec_factory(drift=True), AS_OF)
    _, n_s, n_p = data.n_converted.shape
    assert n_p == 8
    rng = np.random.default_rng(seed)
    logit = np.log(truth.conversion) - np.log1p(-truth.conversion)
    # effects with sample sd exactly tau: 24 free draws scatter their sd by
    # about +-0.07 at tau = 0.5 (seed 1 drew 0.31), and the model can only
    # recover the spread the effects have
    z = rng.standard_normal((n_s, n_p))
    u = tau * z / z.std()
    p = 1.0 / (1.0 + np.exp(-(logit[:, :, None] + u[None, :, :])))
    n = data.n_converted + data.n_lost
    conv = rng.binomial(n, p)
    empty_i = np.zeros(0, np.int64)
    return replace(
        data,
        n_converted=conv,
        n_lost=n - conv,
        open_cell=empty_i,
        open_step=empty_i,
        open_period=empty_i,
        open_age=np.zeros(0),
        open_count=np.zeros(0),
    )


def _tau_interval(data) -> tuple[float, float]:
    idata = sample_model(
        conversion.build_model(data, ON),
        draws=500,
        tune=500,
        chains=2,
        target_accept=0.9,
        seed=11,
    )
    x = idata["posterior"]["conversion_cohort_sd"].values.ravel()
    lo, hi = np.quantile(x, [0.025, 0.975])
    return float(lo), float(hi)


def test_the_term_is_off_by_default_and_on_with_a_positive_prior(records_factory, spec_factory):
    data = _data_with_cohorts(records_factory, spec_factory, TAU, seed=1)
    off = conversion.build_model(data)
    assert "cohort_z" not in off.named_vars
    assert "conversion_cohort_sd" in off.named_vars  # written as 0: no effect ahead
    on = conversion.build_model(data, ON)
    assert {"cohort_z", "cohort_sd"} <= set(on.named_vars)


@pytest.mark.slow
def test_cohort_sd_is_recovered_and_follows_the_data(records_factory, spec_factory):
    lo, hi = _tau_interval(_data_with_cohorts(records_factory, spec_factory, TAU, seed=1))
    assert lo <= TAU <= hi, (lo, TAU, hi)
    # power: without cohort effects in the data the interval leaves 0.5 out
    lo0, hi0 = _tau_interval(_data_with_cohorts(records_factory, spec_factory, 0.0, seed=1))
    assert hi0 < TAU, (lo0, hi0)
