"""Simulation-based calibration of the conversion/delay cure model (Talts et al. 2018).

Each replication draws true parameters from the model's own prior, simulates
a small censored funnel from them (2 cells x 2 steps; units enter over a year,
convert after a lognormal delay or are lost after a lognormal time, and those
still in a stage at the as-of date are open), fits the model to the
simulated sufficient statistics and records the rank of each true step
conversion among 99 thinned posterior draws. If the sampler computes the
posterior of the model that generated the data, each rank is uniform on
0..99. The same check with a deliberately misspecified fitting prior must
fail: counting the open units as lost (the naive won/entered ratio) is
that error; it is what makes the check able to fail. A misspecified prior
proper (rates near 88% where the truths come from logit 0 +- 1.5) is caught
on thin data (20 units a cell), where the prior matters, and the default
prior passes the same thin-data check.

Run with ``.venv/bin/pytest tests/fitting/test_sbc.py -m slow -q -s`` (130
fits: one nutpie compilation per fitting prior, every other replication
reuses it through the compiled-model cache and ``with_data``; the run time
on the shared 2-core machine is in the fitting report).
"""

from __future__ import annotations

import datetime as dt
import time
import warnings
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import pandas as pd
import pymc as pm
import pytest
from scipy import stats

from simengine.fitting import conversion
from simengine.fitting.data import FunnelData
from simengine.fitting.fit import (
    CacheInfo,
    clear_compiled_cache,
    compiled_cache_info,
    sample_model,
)
from simengine.fitting.priors import DEFAULT_PRIORS, Priors

CELLS = ("a/x", "a/y")
STAGES = ("lead", "opp", "won")
N_UNITS = 300  # units entering the first stage per cell
HISTORY_DAYS = 365.0
N_REPS = 100
N_WRONG = 30  # replications with open units counted as lost (see the test)
N_RANK_DRAWS = 99  # ranks 0..99: 100 values, 10 equal bins
N_BINS = 10
# 2 chains x 100 draws, thinned to 99 evenly spaced ranks (nearly every 2nd draw). NUTS
# draws of a logit-scale rate in this model are nearly uncorrelated at lag 2; residual
# autocorrelation makes ranks over-dispersed (a U shape), which this test would flag,
# so it cannot make a miscalibrated fit pass.
CHAINS, TUNE, DRAWS = 2, 200, 100
# Bonferroni over the 4 ranked quantities (2 cells x 2 steps) at a family-wise 1%:
# chi-square (9 dof) upper 0.25% point, about 25.5. Calibrated ranks exceed it
# with probability <= 1% in all; the misspecified prior's ranks pile up at one
# end and give chi-square values in the hundreds.
CHI2_CRIT = float(stats.chi2.ppf(1.0 - 0.01 / 4, N_BINS - 1))
RANKED = ("conversion",)
TRUE_VARS = ("conversion", "delay_mu", "delay_sigma", "loss_mu", "loss_sigma")


def _one_open_group(count: float) -> dict[str, np.ndarray]:
    """A single open-unit group (cell 0, step 0, age 1) of ``count`` units."""
    return {
        "open_cell": np.zeros(1, np.int64),
        "open_step": np.zeros(1, np.int64),
        "open_period": np.zeros(1, np.int64),
        "open_age": np.ones(1),
        "open_count": np.full(1, count),
    }


def _empty_data() -> FunnelData:
    """A FunnelData skeleton for the 2 x 2 funnel (statistics filled per replication)."""
    z2 = np.zeros((len(CELLS), len(STAGES) - 1))
    return FunnelData(
        stages=STAGES,
        cells=CELLS,
        segments=("a",),
        cell_segment=np.zeros(len(CELLS), np.int64),
        as_of=dt.date(2026, 1, 5),
        period_days=91,
        n_periods=1,
        n_converted=np.zeros((*z2.shape, 1), np.int64),
        n_lost=np.zeros((*z2.shape, 1), np.int64),
        delay_n=z2,
        delay_sum_log=z2,
        delay_sum_log2=z2,
        loss_n=z2,
        loss_sum_log=z2,
        loss_sum_log2=z2,
        **_one_open_group(1.0),
        entry_stages=("lead",),
        arrival_counts=np.zeros((len(CELLS), 1, 0), np.int64),
        arrival_active=np.zeros((len(CELLS), 1), bool),
        deal_n=np.zeros(len(CELLS)),
        deal_sum_log=np.zeros(len(CELLS)),
        deal_sum_log2=np.zeros(len(CELLS)),
        snapshot=pd.DataFrame(),
    )


def simulate(
    truth: dict[str, np.ndarray], rng: np.random.Generator, n_units: int = N_UNITS
) -> FunnelData:
    """Sufficient statistics of one censored funnel drawn from ``truth``.

    Follows the model's generative story exactly: at each step a unit converts
    with probability ``conversion`` after a lognormal delay or is lost after a
    lognormal time; an event after the as-of date (day 0) leaves it open, at
    its age since entering the stage.
    """
    n_cells, n_steps = truth["conversion"].shape
    conv = np.zeros((n_cells, n_steps, 1), np.int64)
    lost = np.zeros((n_cells, n_steps, 1), np.int64)
    suff = {k: np.zeros((n_cells, n_steps)) for k in ("dn", "ds", "ds2", "ln", "ls", "ls2")}
    # open units: one group per unit still in a stage at the as-of date (the
    # number differs between replications; one compiled model takes any number)
    o_cell: list[int] = []
    o_step: list[int] = []
    o_age: list[np.ndarray] = []
    for c in range(n_cells):
        t = rng.uniform(-HISTORY_DAYS, 0.0, n_units)  # entry into the first stage
        for s in range(n_steps):
            takes = rng.uniform(size=t.size) < truth["conversion"][c, s]
            log_d = rng.normal(truth["delay_mu"][c, s], truth["delay_sigma"][c, s], t.size)
            log_l = rng.normal(truth["loss_mu"][c, s], truth["loss_sigma"][c, s], t.size)
            event = t + np.exp(np.where(takes, log_d, log_l))
            done = event < 0.0
            conv_now, lost_now = takes & done, ~takes & done
            conv[c, s, 0], lost[c, s, 0] = conv_now.sum(), lost_now.sum()
            for key, mask, x in (("d", conv_now, log_d), ("l", lost_now, log_l)):
                suff[f"{key}n"][c, s] = mask.sum()
                suff[f"{key}s"][c, s] = x[mask].sum()
                suff[f"{key}s2"][c, s] = (x[mask] ** 2).sum()
            still = ~done
            o_cell += [c] * int(still.sum())
            o_step += [s] * int(still.sum())
            o_age.append(np.maximum(-t[still], 1e-3))
            t = event[conv_now]
    ages = np.concatenate(o_age)
    if ages.size == 0:  # the model's censored term needs a group: one with count 0
        o_cell, o_step, ages, counts = [0], [0], np.ones(1), np.zeros(1)
    else:
        counts = np.ones(ages.size)
    return replace(
        _empty_data(),
        n_converted=conv,
        n_lost=lost,
        delay_n=suff["dn"],
        delay_sum_log=suff["ds"],
        delay_sum_log2=suff["ds2"],
        loss_n=suff["ln"],
        loss_sum_log=suff["ls"],
        loss_sum_log2=suff["ls2"],
        open_cell=np.asarray(o_cell, np.int64),
        open_step=np.asarray(o_step, np.int64),
        open_period=np.zeros(ages.size, np.int64),
        open_age=ages,
        open_count=counts,
    )


def prior_draws(n: int, seed: int, priors: Priors = DEFAULT_PRIORS) -> list[dict[str, np.ndarray]]:
    """``n`` joint draws of the model's parameters from its prior."""
    model = conversion.build_model(simulate(_fixed_truth(), np.random.default_rng(0)), priors)
    out = pm.draw([model[v] for v in TRUE_VARS], draws=n, random_seed=seed)
    return [{v: out[j][i] for j, v in enumerate(TRUE_VARS)} for i in range(n)]


def _fixed_truth() -> dict[str, np.ndarray]:
    shape = (len(CELLS), len(STAGES) - 1)
    return {
        "conversion": np.full(shape, 0.4),
        "delay_mu": np.full(shape, 3.0),
        "delay_sigma": np.full(shape, 0.8),
        "loss_mu": np.full(shape, 3.0),
        "loss_sigma": np.full(shape, 0.8),
    }


def open_as_lost(data: FunnelData) -> FunnelData:
    """The naive error this model exists to avoid: open units counted as lost.

    Every unit still open at the as-of date joins ``n_lost`` of its cell and
    step (the won/entered ratio), and the censored term gets nothing (one group
    of count 0, so the compiled model is the same).
    """
    lost = data.n_lost.copy()
    np.add.at(lost[:, :, 0], (data.open_cell, data.open_step), data.open_count.astype(np.int64))
    return replace(data, n_lost=lost, **_one_open_group(0.0))


def sbc_ranks(
    fit_priors: Priors,
    *,
    seed: int,
    n_reps: int = 100,
    transform: Callable[[FunnelData], FunnelData] | None = None,
    n_units: int = N_UNITS,
) -> tuple[np.ndarray, CacheInfo]:
    """Ranks (rep, cell, step) of the true conversions, truths from the default prior.

    ``transform`` (optional) alters each simulated data set before the fit;
    ``n_units`` units enter the first stage of each cell.

    Every replication is fitted through :func:`~simengine.fitting.fit.sample_model`,
    whose process cache compiles the model once and refits each replication's
    statistics with ``with_data``. Returns the ranks and the cache counters.
    """
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    truths = prior_draws(n_reps, seed)
    datasets = [simulate(tr, rng, n_units) for tr in truths]
    if transform is not None:
        datasets = [transform(d) for d in datasets]
    ranks = np.zeros((n_reps, len(CELLS), len(STAGES) - 1), np.int64)
    for i, (tr, data) in enumerate(zip(truths, datasets, strict=True)):
        idata = sample_model(
            conversion.build_model(data, fit_priors),
            draws=DRAWS,
            tune=TUNE,
            chains=CHAINS,
            seed=seed * 1000 + i,
            target_accept=0.9,
            label="sbc",
        )
        draws = idata["posterior"]["conversion"].values.reshape(-1, *ranks.shape[1:])
        keep = np.linspace(0, draws.shape[0] - 1, N_RANK_DRAWS).round().astype(int)
        ranks[i] = (draws[keep] < tr["conversion"][None]).sum(axis=0)
        if i % 10 == 9:
            print(f"sbc: {i + 1}/{n_reps} fits, {time.perf_counter() - t0:.0f} s", flush=True)
    return ranks, compiled_cache_info()


def chi2_uniform(ranks: np.ndarray) -> np.ndarray:
    """Chi-square statistic of uniformity per ranked quantity (ranks 0..99, 10 bins)."""
    flat = ranks.reshape(ranks.shape[0], -1)
    counts = np.stack(
        [np.bincount(flat[:, k] // 10, minlength=N_BINS) for k in range(flat.shape[1])]
    )
    expected = flat.shape[0] / N_BINS
    return ((counts - expected) ** 2 / expected).sum(axis=1)


def test_simulator_matches_the_truth():
    # fast check of the generator itself: with a long history nearly all units
    # finish, so converted / (converted + lost) estimates the true rate
    truth = _fixed_truth()
    data = simulate(truth, np.random.default_rng(1))
    n = data.n_converted[:, 0, 0] + data.n_lost[:, 0, 0]
    rate = data.n_converted[:, 0, 0] / n
    # finished units are a censored subsample, so allow a generous 5-sigma band
    # around 0.4 (binomial sd at ~280 units is about 0.03)
    assert np.all(np.abs(rate - 0.4) < 5 * np.sqrt(0.24 / n)), rate
    assert data.open_count.sum() > 0  # censoring is present
    assert np.all(data.delay_n == data.n_converted[:, :, 0])


@pytest.fixture
def non_centred(monkeypatch):
    """Sample every level non-centred, whatever the replication's counts.

    Which levels are centred depends on the data (``conversion.centring``)
    and changes the compiled graph (the model is the same); fixing the choice
    keeps one compilation per fitting prior. The non-centred form is the one
    used for thin data, where SBC is hardest.
    """
    real = conversion.centring

    def never(data, priors=DEFAULT_PRIORS, *, centred_min_delays=None):
        return {k: np.zeros_like(v, bool) for k, v in real(data, priors).items()}

    monkeypatch.setattr(conversion, "centring", never)


@pytest.mark.slow
def test_sbc_ranks_are_uniform_and_the_censoring_error_is_caught(non_centred):
    clear_compiled_cache()
    with warnings.catch_warnings():
        # nutpie/pytensor performance notes are not results
        warnings.simplefilter("ignore", UserWarning)
        good_ranks, info = sbc_ranks(DEFAULT_PRIORS, seed=11, n_reps=N_REPS)
        # one compilation, every other replication through with_data
        assert (info.misses, info.hits) == (1, N_REPS - 1), info
        # the power check: the same fits with open units counted as lost (the
        # naive won/entered ratio) must fail. (A misspecified *prior* is not
        # caught at 300 units per cell, where the data outweigh it: logit 1 +-
        # 0.25 over 100 replications gave chi-square 13.2, 9.4, 15.8, 5.6; see
        # the thin-data test below, where it is.) The naive ratio biases every
        # rate down, so the true rate ranks
        # at the top: 30 ranks in the top bins give chi-square values far above
        # the critical 25.5 (seed 12: 124.7, 67.3, 111.3, 43.3).
        bad_ranks, _ = sbc_ranks(DEFAULT_PRIORS, seed=12, n_reps=N_WRONG, transform=open_as_lost)
    good, bad = chi2_uniform(good_ranks), chi2_uniform(bad_ranks)
    print(
        f"SBC chi-square (crit {CHI2_CRIT:.1f}): default prior {good.round(1)}, open units counted as lost {bad.round(1)}"
    )
    assert np.all(good < CHI2_CRIT), (good, CHI2_CRIT)
    assert np.any(bad > CHI2_CRIT), (bad, CHI2_CRIT)


THIN_UNITS = 20
"""Units entering each cell in the thin-data SBC design, where the prior matters."""

WRONG_PRIORS = replace(
    DEFAULT_PRIORS, conversion_logit_loc=2.0, conversion_logit_sd=0.3, conversion_cell_sd=0.1
)
"""A deliberately misspecified fitting prior: rates near 88% (logit 2 +- 0.3), cells tight.

The truths come from the default prior (logit 0 +- 1.5, cells +- 0.5), so
most true rates lie far below what this prior allows.
"""


@pytest.mark.slow
def test_sbc_catches_a_misspecified_prior_on_thin_data(non_centred):
    """With 20 units a cell the prior shapes the posterior: the right one passes, a wrong one fails.

    Same ranks and chi-square check as above. The default prior (100
    replications) must give uniform ranks here too; the misspecified prior
    :data:`WRONG_PRIORS` (30 replications, truths still from the default
    prior) pulls every posterior towards 88%, so the true rates rank at the
    bottom (seed 22: chi-square 136.7, 166.0, 166.0, 151.3 against 25.5;
    the default prior at seed 21: 8.4, 10.4, 7.8, 14.0).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        good_ranks, _ = sbc_ranks(DEFAULT_PRIORS, seed=21, n_reps=N_REPS, n_units=THIN_UNITS)
        bad_ranks, _ = sbc_ranks(WRONG_PRIORS, seed=22, n_reps=N_WRONG, n_units=THIN_UNITS)
    good, bad = chi2_uniform(good_ranks), chi2_uniform(bad_ranks)
    print(
        f"thin SBC chi-square (crit {CHI2_CRIT:.1f}): default prior {good.round(1)}, "
        f"misspecified prior {bad.round(1)}"
    )
    assert np.all(good < CHI2_CRIT), (good, CHI2_CRIT)
    assert np.all(bad > CHI2_CRIT), (bad, CHI2_CRIT)
