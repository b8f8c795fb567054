"""Conversion, delay, loss and deal-size cell levels: a Gaussian prior with fixed scales.

The logit conversion rate, the log-median delay, the log delay sd and the
log-median time to loss of a cell are pooled around their step's (and
segment's) level with the fixed scales ``conversion_cell_sd``,
``delay_cell_sd``, ``delay_sigma_cell_sd`` and ``loss_cell_sd``
(:mod:`simengine.fitting.conversion`), and a cell's log deal-size sd around
the global one with ``deal_size_sigma_cell_sd``
(:mod:`simengine.fitting.deal_size`): no learned spread, so the models have
no such free variable, and the difference of two cells' levels of one
segment is ``Normal(0, sqrt(2) * scale)`` a priori (the shared levels
cancel).

Statistics. ``N`` prior draws from the model itself (``pm.draw``). For each
of the three levels two checks: the sample sd of the difference over
``sqrt(2) * scale`` (standard error ``1 / sqrt(2 (N - 1))``) and the sample
excess kurtosis (standard error ``sqrt(24 / N)`` for a normal), each within
``Z`` standard errors, for each of the four levels and three steps, and the
same two for the deal-size log-sd: 26 checks, two-sided, family-wise alpha
1.8e-4 (Bonferroni, ``Z`` = 4.5; the draws are exact and
independent, so the normal approximations of the two statistics are all
that is approximate). Power: a learned spread (the former model: a
gamma-distributed scale of shape 2 with the same root mean square, so the
sd check cannot see it) makes the difference a scale mixture of normals of
excess kurtosis 7, about 200 standard errors; the mutation below draws it
and must fail the kurtosis check. A scale 5% off fails the sd check (about
10 standard errors).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pymc as pm
import pytest
from scipy import stats

from simengine.fitting import conversion, deal_size
from simengine.fitting.data import build_data
from simengine.fitting.priors import DEFAULT_PRIORS, SCALE_PRIOR_SHAPE

N = 20_000
Z = 4.5
SE_SD = 1.0 / np.sqrt(2.0 * (N - 1))
SE_KURT = np.sqrt(24.0 / N)
LEVELS = {
    "conversion": DEFAULT_PRIORS.conversion_cell_sd,
    "delay_mu": DEFAULT_PRIORS.delay_cell_sd,
    "delay_sigma": DEFAULT_PRIORS.delay_sigma_cell_sd,
    "loss_mu": DEFAULT_PRIORS.loss_cell_sd,
}


def _checks(diff: np.ndarray, scale: float) -> tuple[float, float]:
    """(sd ratio - 1, excess kurtosis), each in standard errors."""
    ratio = float(np.std(diff, ddof=1) / (np.sqrt(2.0) * scale))
    kurt = float(stats.kurtosis(diff, fisher=True, bias=False))
    return (ratio - 1.0) / SE_SD, kurt / SE_KURT


@pytest.fixture(scope="module")
def data(records_factory, spec_factory):
    # one segment, two channels: two cells share their step and segment levels
    df, _ = records_factory(3, history_days=300, segments=("ent",), channels=("ads", "web"))
    return build_data(df, spec_factory(drift=False), dt.date(2026, 1, 5))


@pytest.fixture(scope="module")
def model(data):
    return conversion.build_model(data)


def test_logit_centring_compares_each_cell_with_the_fixed_scale(data):
    # centred where the cell's precision times the fixed scale squared is >= 1:
    # a scale far below every cell's standard error centres none, one far above
    # centres every cell with resolved units (the former rule read a spread
    # estimate of the cells instead and ignored conversion_cell_sd here)
    res = (data.n_converted + data.n_lost).sum(axis=2).T
    assert res.min() > 0
    tight = conversion.centring(data, replace(DEFAULT_PRIORS, conversion_cell_sd=1e-3))
    wide = conversion.centring(data, replace(DEFAULT_PRIORS, conversion_cell_sd=10.0))
    assert not tight["conversion_level"].any()
    assert wide["conversion_level"].all()


def test_no_learned_cell_spread(model):
    names = {v.name for v in model.free_RVs}
    spreads = {"conversion_cell_sd", "delay_cell_sd", "delay_sigma_cell_sd", "loss_cell_sd"}
    assert not names & spreads, names


def test_cell_differences_are_normal_with_the_fixed_scale(model):
    draws = pm.draw([model[v] for v in LEVELS], draws=N, random_seed=7)
    for (name, scale), x in zip(LEVELS.items(), draws, strict=True):
        if name == "conversion":
            level = np.log(x) - np.log1p(-x)  # the logit level
        else:
            level = np.log(x) if name == "delay_sigma" else x
        for step in range(level.shape[2]):
            diff = level[:, 0, step] - level[:, 1, step]
            z_sd, z_kurt = _checks(diff, scale)
            assert abs(z_sd) < Z, (name, step, z_sd)
            assert abs(z_kurt) < Z, (name, step, z_kurt)


def test_a_learned_spread_fails_the_kurtosis_check():
    # mutation: the former prior, a gamma(2) scale with the same root mean square
    rng = np.random.default_rng(11)
    scale = DEFAULT_PRIORS.delay_cell_sd
    mean = scale / np.sqrt(1.0 + 1.0 / SCALE_PRIOR_SHAPE)
    s = rng.gamma(SCALE_PRIOR_SHAPE, mean / SCALE_PRIOR_SHAPE, N)
    diff = s * (rng.normal(size=N) - rng.normal(size=N))
    _, z_kurt = _checks(diff, scale)
    assert abs(z_kurt) > Z, z_kurt


def test_deal_size_log_sd_differences_are_normal_with_the_fixed_scale():
    # two cells of one segment, with amounts (the prior draws ignore them)
    data = SimpleNamespace(
        cells=("s/a", "s/b"),
        segments=("s",),
        cell_segment=np.zeros(2, np.int64),
        deal_n=np.array([40.0, 3.0]),
        deal_sum_log=np.array([360.0, 27.0]),
        deal_sum_log2=np.array([3250.0, 244.0]),
    )
    model = deal_size.build_model(data)
    assert "deal_size_sigma_cell_sd" not in {v.name for v in model.free_RVs}
    sigma = pm.draw(model["deal_size_sigma"], draws=N, random_seed=8)
    diff = np.log(sigma[:, 0]) - np.log(sigma[:, 1])
    z_sd, z_kurt = _checks(diff, DEFAULT_PRIORS.deal_size_sigma_cell_sd)
    assert abs(z_sd) < Z, z_sd
    assert abs(z_kurt) < Z, z_kurt
