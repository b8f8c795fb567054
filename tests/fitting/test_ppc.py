"""The fit-time posterior predictive check: silent when the model is right, loud when not.

Each check is fed posterior draws around known true parameters and data
drawn either from the same truth (it must stay silent: the Bonferroni band
holds the rate of false warnings per part below ``ALPHA`` = 5%) or from a
shifted truth in one cell (it must warn, naming that cell). The false-alarm
tests run 100 replications and allow at most 12 warnings (P(X > 12) < 1e-3
for X ~ Binomial(100, 0.05), the worst case allowed); their mutation, the
band without the Bonferroni correction, must exceed that bound.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np
import pytest
from scipy.special import ndtr

from simengine.fitting import ppc
from simengine.fitting.data import RECENT_DAYS, build_data

AS_OF = dt.date(2026, 1, 5)
MAX_FALSE = 12
REPS = 100
DRAWS = 1000
UNITS = 15


@pytest.fixture(scope="module")
def base(records_factory, spec_factory):
    df, _ = records_factory(5, history_days=200, weekly_rate=4.0)
    return build_data(df, spec_factory(drift=False), AS_OF)


def _cohort(base, rng):
    """Recent groups: every (cell, step), every third age up to 91 days, 15 units each."""
    n_cells, n_steps = len(base.cells), len(base.steps)
    c, s, a = np.meshgrid(
        np.arange(n_cells), np.arange(n_steps), np.arange(1, RECENT_DAYS + 1, 3), indexing="ij"
    )
    c, s, a = c.ravel(), s.ravel(), a.ravel().astype(float)
    p = rng.uniform(0.2, 0.6, (n_cells, n_steps))
    mu = np.log(rng.uniform(10.0, 30.0, (n_cells, n_steps)))
    return c, s, a, p, mu


def _posterior(rng, p, mu, sigma):
    """Draws tight around the truth (what a well-specified fit gives)."""
    n_cells, n_steps = p.shape
    pd_ = np.clip(p[None] + rng.normal(0.0, 0.01, (DRAWS, n_cells, n_steps)), 0.01, 0.99)
    mud = mu[None] + rng.normal(0.0, 0.03, (DRAWS, n_cells, n_steps))
    sd = np.full((DRAWS, n_cells, n_steps), sigma)
    return pd_[..., None], mud, sd


def _observe(rng, c, s, a, p, mu, sigma):
    q = p[c, s] * ndtr((np.log(a) - mu[c, s]) / sigma)
    return rng.binomial(UNITS, q).astype(float)


def _conversion_data(base, c, s, a, converted):
    return dataclasses.replace(
        base,
        recent_cell=c,
        recent_step=s,
        recent_period=np.zeros(c.size, np.int64),
        recent_age=a,
        recent_count=np.full(c.size, float(UNITS)),
        recent_converted=converted,
    )


def _false_warnings(base, monkeypatch=None, alpha=None):
    rng = np.random.default_rng(1)
    c, s, a, p, mu = _cohort(base, rng)
    post = _posterior(rng, p, mu, 0.6)
    warned = 0
    for r in range(REPS):
        data = _conversion_data(base, c, s, a, _observe(rng, c, s, a, p, mu, 0.6))
        warned += not ppc.conversion_check(data, *post, seed=r).ok
    return warned


@pytest.mark.slow
def test_conversion_check_is_silent_when_the_model_is_right(base, monkeypatch):
    k = len(base.cells) * len(base.steps)
    assert k >= 6  # enough cells for the Bonferroni correction to matter
    assert _false_warnings(base) <= MAX_FALSE
    # mutation: a 95% band per cell without the correction warns far more often
    monkeypatch.setattr(ppc, "ALPHA", ppc.ALPHA * k)
    assert _false_warnings(base) > MAX_FALSE


def test_conversion_check_warns_naming_the_shifted_cell(base):
    rng = np.random.default_rng(2)
    c, s, a, p, mu = _cohort(base, rng)
    post = _posterior(rng, p, mu, 0.6)
    shifted = p.copy()
    shifted[1, 2] *= 0.5  # the last quarter's won rate of one cell halved
    data = _conversion_data(base, c, s, a, _observe(rng, c, s, a, shifted, mu, 0.6))
    res = ppc.conversion_check(data, *post, seed=0)
    label = f"{base.cells[1]} {base.steps[2]}"
    assert label in [m.cell for m in res.misses]
    assert "WARNING" in res.line()
    assert label in res.line()
    assert res.checked == len(base.cells) * len(base.steps)


def _arrivals(base, rng, mean, weeks=26):
    n_cells = len(base.cells)
    active = np.zeros((n_cells, 1), bool)
    active[:, 0] = True
    disp = 0.05
    # negative binomial as a gamma-Poisson mixture, var = m + disp m²
    g = rng.gamma(1.0 / disp, disp, (n_cells, weeks))
    counts = rng.poisson(mean[:, None] * g)
    gr = rng.gamma(1.0 / disp, disp, (DRAWS, n_cells, weeks))
    reps = rng.poisson(mean[None, :, None] * gr)
    data = dataclasses.replace(
        base,
        entry_stages=(base.stages[0],),
        arrival_counts=counts[:, None, :].astype(np.int64),
        arrival_active=active,
    )
    return data, reps


def test_arrivals_check_silent_then_warns_on_a_level_jump(base):
    """False warnings over 100 replications (<= 12), then a jump in one cell is named."""
    rng = np.random.default_rng(3)
    mean = rng.uniform(20.0, 60.0, len(base.cells))
    warned = 0
    for _ in range(REPS):
        data, reps = _arrivals(base, rng, mean)
        warned += not ppc.arrivals_check(data, reps).ok
    assert warned <= MAX_FALSE
    data, reps = _arrivals(base, rng, mean)
    counts = data.arrival_counts.copy()
    counts[0, 0, -13:] *= 2  # the lead flow doubled in the last quarter
    res = ppc.arrivals_check(dataclasses.replace(data, arrival_counts=counts), reps)
    assert [m.cell for m in res.misses][:1] == [f"{base.cells[0]} {base.stages[0]}"]
    assert res.misses[0].observed > res.misses[0].hi
    # nothing to check when the model offers no replicates
    assert ppc.arrivals_check(data, None).checked == 0


def test_deal_size_check_names_a_cell_whose_deals_moved(base):
    rng = np.random.default_rng(4)
    n_cells = len(base.cells)
    mu, sigma = rng.uniform(8.0, 11.0, n_cells), np.full(n_cells, 0.5)
    n = np.full(n_cells, 40.0)
    logs = mu + sigma / np.sqrt(n) * rng.standard_normal(n_cells)
    logs[2] += 0.5  # that cell's deals grew by 65%
    data = dataclasses.replace(base, recent_deal_n=n, recent_deal_sum_log=logs * n)
    post_mu = mu[None] + rng.normal(0.0, 0.02, (DRAWS, n_cells))
    res = ppc.deal_size_check(data, post_mu, np.broadcast_to(sigma, post_mu.shape), seed=0)
    assert [m.cell for m in res.misses] == [base.cells[2]]


def test_tail_probability_is_two_sided_mid_p():
    reps = np.array([[0.0], [1.0], [2.0], [3.0]])
    np.testing.assert_allclose(ppc.tail_probability([0.0], reps), [0.25])  # 2 x (0 + 1/8)
    np.testing.assert_allclose(ppc.tail_probability([1.5], reps), [1.0])
    np.testing.assert_allclose(ppc.tail_probability([9.0], reps), [0.0])
