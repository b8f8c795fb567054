"""Simulation-based calibration of the cure model and the deal-size model (Talts et al. 2018).

Each replication draws true parameters from the model's own prior, simulates
a small censored funnel from them (2 cells x 2 steps; units enter over a year,
convert after a lognormal delay or are lost after a lognormal time, and those
still in a stage at the as-of date are open), fits the model to the
simulated sufficient statistics and records the rank of each true parameter
among 99 thinned posterior draws: the step conversions, the delays' log
medians and log sds, and the loss times' log medians and log sds (20 ranked
quantities); for the deal-size model, each cell's log median and log sd. If
the sampler computes the posterior of the model that generated the data,
each rank is uniform on 0..99.

Alpha and power. Per design, the ranks of each quantity are binned in 10
bins and tested by chi-square (9 dof); the design's family is Bonferroni over
its ranked quantities at a family-wise 1% (``chi2_crit``). Every design has a
mutation that must fail at the same threshold: open units counted as lost
(the naive won/entered ratio: conversions), delays and loss times 1.5x longer
in the data than the truths say (their log medians), a misspecified prior on
thin data (conversions), deal amounts doubled (deal log medians). The
observed chi-square values are in the tests' docstrings and in
docs/validation-tests.md (``scripts/power.py`` gives the null distribution's
size for these thresholds). Every design also requires the fits to be
essentially free of divergences (``MAX_DIVERGENT_SHARE``).

Forms. The conversion and delay levels are sampled non-centred on thin cells
and centred on large ones (``CENTRED_MIN_UNITS``, ``CENTRED_MIN_DELAYS``);
the choice changes the compiled graph, so each design fixes it for all its
replications: non-centred at 300 and 20 units a cell, centred at 1,000 units a
cell (where the library centres them). The deal-size designs (50 deals a cell)
use the centred log-sd levels the library uses at that count.

Run with ``.venv/bin/pytest tests/fitting/test_sbc.py -m slow -q -s`` (one
nutpie compilation per design and fitting prior, every other replication
reuses it through the compiled-model cache and ``with_data``; the run time on
the shared 2-core machine is in the fitting report).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import pymc as pm
import pytest
from scipy import stats

from simengine.fitting import conversion, deal_size
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
FAMILY_ALPHA = 0.01
TRUE_VARS = ("conversion", "delay_mu", "delay_sigma", "loss_mu", "loss_sigma")
RANKED = TRUE_VARS  # 5 variables x 2 cells x 2 steps = 20 ranked quantities
MAX_DIVERGENT_SHARE = 0.02
"""At most this share of a design's transitions (all fits) may be divergent.

Not zero: the deal-size design (2 cells, one segment) has a divergence in
about two fits of three (~1.2% of transitions, 2026-12-06) while its ranks
are uniform; a sampler that fails outright (tens of percent) fails here.
"""


def chi2_crit(n_quantities: int, alpha: float = FAMILY_ALPHA) -> float:
    """Bonferroni chi-square (9 dof) threshold for ``n_quantities`` ranked at family-wise ``alpha``.

    Calibrated ranks exceed it in any quantity with probability <= alpha; for
    20 quantities at 1% it is the upper 0.05% point, about 29.7.
    """
    return float(stats.chi2.ppf(1.0 - alpha / n_quantities, N_BINS - 1))


CHI2_CRIT = chi2_crit(len(RANKED) * len(CELLS) * (len(STAGES) - 1))


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


@dataclass(frozen=True)
class SBCRun:
    """Ranks of one SBC design: per variable an array (rep, ...); divergences per fit."""

    ranks: dict[str, np.ndarray]
    divergences: np.ndarray
    cache: CacheInfo

    @property
    def divergent_share(self) -> float:
        """Share of all the design's transitions that were divergent."""
        return float(self.divergences.sum() / (self.divergences.size * CHAINS * DRAWS))


def _rank_fits(
    truths: list[dict[str, np.ndarray]],
    datasets: list[FunnelData],
    build: Callable[[FunnelData], pm.Model],
    ranked: tuple[str, ...],
    seed: int,
    label: str,
) -> SBCRun:
    """Fit every replication and rank each true value among 99 thinned draws."""
    t0 = time.perf_counter()
    ranks = {v: np.zeros((len(truths), *truths[0][v].shape), np.int64) for v in ranked}
    div = np.zeros(len(truths), np.int64)
    for i, (tr, data) in enumerate(zip(truths, datasets, strict=True)):
        idata = sample_model(
            build(data),
            draws=DRAWS,
            tune=TUNE,
            chains=CHAINS,
            seed=seed * 1000 + i,
            target_accept=0.9,
            label=label,
        )
        div[i] = int(idata["sample_stats"]["diverging"].values.sum())
        for v in ranked:
            draws = idata["posterior"][v].values.reshape(-1, *tr[v].shape)
            keep = np.linspace(0, draws.shape[0] - 1, N_RANK_DRAWS).round().astype(int)
            ranks[v][i] = (draws[keep] < tr[v][None]).sum(axis=0)
        if i % 10 == 9:
            print(
                f"{label}: {i + 1}/{len(truths)} fits, {time.perf_counter() - t0:.0f} s", flush=True
            )
    return SBCRun(ranks, div, compiled_cache_info())


def sbc_run(
    fit_priors: Priors,
    *,
    seed: int,
    n_reps: int = 100,
    transform: Callable[[FunnelData], FunnelData] | None = None,
    n_units: int = N_UNITS,
) -> SBCRun:
    """SBC of the cure model: ranks of every :data:`RANKED` variable, truths from the default prior.

    ``transform`` (optional) alters each simulated data set before the fit;
    ``n_units`` units enter the first stage of each cell.

    Every replication is fitted through :func:`~simengine.fitting.fit.sample_model`,
    whose process cache compiles the model once and refits each replication's
    statistics with ``with_data``.
    """
    rng = np.random.default_rng(seed)
    truths = prior_draws(n_reps, seed)
    datasets = [simulate(tr, rng, n_units) for tr in truths]
    if transform is not None:
        datasets = [transform(d) for d in datasets]
    return _rank_fits(
        truths, datasets, lambda d: conversion.build_model(d, fit_priors), RANKED, seed, "sbc"
    )


def sbc_ranks(
    fit_priors: Priors,
    *,
    seed: int,
    n_reps: int = 100,
    transform: Callable[[FunnelData], FunnelData] | None = None,
    n_units: int = N_UNITS,
) -> tuple[np.ndarray, CacheInfo]:
    """Ranks (rep, cell, step) of the true conversions only (see :func:`sbc_run`)."""
    run = sbc_run(fit_priors, seed=seed, n_reps=n_reps, transform=transform, n_units=n_units)
    return run.ranks["conversion"], run.cache


def chi2_all(run: SBCRun) -> dict[str, np.ndarray]:
    """Chi-square statistic per ranked quantity, by variable."""
    return {v: chi2_uniform(r) for v, r in run.ranks.items()}


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


def slower_events(data: FunnelData) -> FunnelData:
    """Every delay and every loss time 1.5x longer in the data than the truth made them.

    A units error of the kind a wrong date column would make; the true log
    medians then rank at the bottom of posteriors shifted up by log 1.5.
    """
    c = float(np.log(1.5))

    def shift(n: np.ndarray, s1: np.ndarray, s2: np.ndarray):
        return s1 + n * c, s2 + 2 * c * s1 + n * c**2

    ds, ds2 = shift(data.delay_n, data.delay_sum_log, data.delay_sum_log2)
    ls, ls2 = shift(data.loss_n, data.loss_sum_log, data.loss_sum_log2)
    return replace(
        data,
        delay_sum_log=ds,
        delay_sum_log2=ds2,
        loss_sum_log=ls,
        loss_sum_log2=ls2,
        open_age=data.open_age * 1.5,
    )


def _report(label: str, chi2: dict[str, np.ndarray], crit: float) -> None:
    parts = ", ".join(f"{v} {np.round(x, 1).tolist()}" for v, x in chi2.items())
    print(f"{label} (crit {crit:.1f}): {parts}", flush=True)


def assert_calibrated(run: SBCRun, crit: float, label: str) -> None:
    """Every ranked quantity uniform at the design's Bonferroni threshold; few divergent fits."""
    chi2 = chi2_all(run)
    _report(label, chi2, crit)
    print(f"{label}: divergent transitions per fit {run.divergences.tolist()}", flush=True)
    worst = {v: float(x.max()) for v, x in chi2.items()}
    assert all(x < crit for x in worst.values()), (label, worst, crit)
    print(f"{label}: divergent share {run.divergent_share:.4f}", flush=True)
    assert run.divergent_share <= MAX_DIVERGENT_SHARE, (label, run.divergences)


@pytest.mark.slow
@pytest.mark.heavy
def test_sbc_ranks_are_uniform_and_the_censoring_error_is_caught(non_centred):
    """300 units a cell, non-centred levels: all 20 quantities calibrated; two mutations caught.

    Mutations (30 replications each, same threshold): open units counted as
    lost must fail the conversions (the naive ratio biases every rate down;
    earlier runs gave chi-square 124.7, 67.3, 111.3, 43.3 against 25.5 for 4
    quantities); delays and loss times 1.5x longer than the truths must fail
    the delays' and the loss times' log medians. (A misspecified *prior* is not
    caught at 300 units per cell, where the data outweigh it; see the
    thin-data test.)
    """
    clear_compiled_cache()
    good = sbc_run(DEFAULT_PRIORS, seed=11, n_reps=N_REPS)
    # one compilation, every other replication through with_data
    assert (good.cache.misses, good.cache.hits) == (1, N_REPS - 1), good.cache
    assert_calibrated(good, CHI2_CRIT, "SBC 300 units, non-centred")
    lost = chi2_all(sbc_run(DEFAULT_PRIORS, seed=12, n_reps=N_WRONG, transform=open_as_lost))
    _report("open units counted as lost", lost, CHI2_CRIT)
    assert np.any(lost["conversion"] > CHI2_CRIT), lost["conversion"]
    slow = chi2_all(sbc_run(DEFAULT_PRIORS, seed=13, n_reps=N_WRONG, transform=slower_events))
    _report("delays and loss times 1.5x", slow, CHI2_CRIT)
    assert np.all(slow["delay_mu"] > CHI2_CRIT), slow["delay_mu"]
    assert np.all(slow["loss_mu"] > CHI2_CRIT), slow["loss_mu"]


@pytest.fixture
def centred(monkeypatch):
    """Sample every conversion and delay level centred (the library's form on large cells)."""
    monkeypatch.setattr(conversion, "CENTRED_MIN_UNITS", 0.0)
    monkeypatch.setattr(conversion, "CENTRED_MIN_DELAYS", 0.0)


LARGE_UNITS = 1000
"""Units entering each cell in the centred design: every step then has >= 200 units
(``CENTRED_MIN_UNITS``) and >= 30 delays (``CENTRED_MIN_DELAYS``) in nearly every
replication, so the library itself would centre these levels."""


@pytest.mark.slow
@pytest.mark.heavy
def test_sbc_centred_form_on_large_cells(centred):
    """1,000 units a cell, centred levels: all 20 quantities calibrated; the censoring error caught."""
    good = sbc_run(DEFAULT_PRIORS, seed=31, n_reps=N_REPS, n_units=LARGE_UNITS)
    assert_calibrated(good, CHI2_CRIT, "SBC 1,000 units, centred")
    lost = chi2_all(
        sbc_run(
            DEFAULT_PRIORS, seed=32, n_reps=N_WRONG, transform=open_as_lost, n_units=LARGE_UNITS
        )
    )
    _report("centred, open units counted as lost", lost, CHI2_CRIT)
    assert np.any(lost["conversion"] > CHI2_CRIT), lost["conversion"]


N_DEALS = 50
"""Won amounts per cell in the deal-size design (>= ``CENTRED_MIN_DEALS``: centred log sds)."""
DEAL_VARS = ("deal_size_mu", "deal_size_sigma")
DEAL_CRIT = chi2_crit(len(DEAL_VARS) * len(CELLS))


def _deal_data(n: np.ndarray, s1: np.ndarray, s2: np.ndarray) -> FunnelData:
    return replace(_empty_data(), deal_n=n, deal_sum_log=s1, deal_sum_log2=s2)


def deal_prior_draws(n: int, seed: int) -> list[dict[str, np.ndarray]]:
    """Joint prior draws of the cells' deal log medians and log sds.

    The levels are drawn back from their conditionals given the data; with no
    deals (weight 0) those are the prior.
    """
    z = np.zeros(len(CELLS))
    model = deal_size.build_model(_deal_data(z, z, z))
    out = pm.draw([model[v] for v in DEAL_VARS], draws=n, random_seed=seed)
    return [{v: out[j][i] for j, v in enumerate(DEAL_VARS)} for i in range(n)]


def simulate_deals(truth: dict[str, np.ndarray], rng: np.random.Generator) -> FunnelData:
    """``N_DEALS`` lognormal won amounts per cell: their sufficient statistics."""
    x = rng.normal(
        truth["deal_size_mu"][:, None], truth["deal_size_sigma"][:, None], (len(CELLS), N_DEALS)
    )
    return _deal_data(np.full(len(CELLS), float(N_DEALS)), x.sum(axis=1), (x**2).sum(axis=1))


def doubled_amounts(data: FunnelData) -> FunnelData:
    """Every amount doubled (e.g. a currency or cents error): log median up by log 2."""
    c = float(np.log(2.0))
    s1, s2 = data.deal_sum_log, data.deal_sum_log2
    return replace(
        data, deal_sum_log=s1 + data.deal_n * c, deal_sum_log2=s2 + 2 * c * s1 + data.deal_n * c**2
    )


def deal_sbc_run(*, seed: int, n_reps: int, transform=None) -> SBCRun:
    rng = np.random.default_rng(seed)
    truths = deal_prior_draws(n_reps, seed)
    datasets = [simulate_deals(tr, rng) for tr in truths]
    if transform is not None:
        datasets = [transform(d) for d in datasets]
    return _rank_fits(truths, datasets, deal_size.build_model, DEAL_VARS, seed, "sbc deals")


@pytest.mark.slow
@pytest.mark.heavy
def test_sbc_deal_size(monkeypatch):
    """Deal log medians and log sds calibrated (50 deals a cell); doubled amounts caught."""
    monkeypatch.setattr(deal_size, "CENTRED_MIN_DEALS", 30.0)
    good = deal_sbc_run(seed=41, n_reps=N_REPS)
    assert_calibrated(good, DEAL_CRIT, "SBC deal size")
    bad = chi2_all(deal_sbc_run(seed=42, n_reps=N_WRONG, transform=doubled_amounts))
    _report("deal amounts doubled", bad, DEAL_CRIT)
    assert np.all(bad["deal_size_mu"] > DEAL_CRIT), bad["deal_size_mu"]


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
@pytest.mark.heavy
def test_sbc_catches_a_misspecified_prior_on_thin_data(non_centred):
    """With 20 units a cell the prior shapes the posterior: the right one passes, a wrong one fails.

    Same ranks and chi-square check as above. The default prior (100
    replications) must give uniform ranks here too; the misspecified prior
    :data:`WRONG_PRIORS` (30 replications, truths still from the default
    prior) pulls every posterior towards 88%, so the true rates rank at the
    bottom (seed 22, conversions only: chi-square 136.7, 166.0, 166.0, 151.3,
    far above the 20-quantity threshold 29.7; the default prior at seed 21:
    8.4, 10.4, 7.8, 14.0).
    """
    good = sbc_run(DEFAULT_PRIORS, seed=21, n_reps=N_REPS, n_units=THIN_UNITS)
    assert_calibrated(good, CHI2_CRIT, "SBC 20 units, non-centred")
    bad = chi2_all(sbc_run(WRONG_PRIORS, seed=22, n_reps=N_WRONG, n_units=THIN_UNITS))
    _report("thin data, misspecified prior", bad, CHI2_CRIT)
    assert np.all(bad["conversion"] > CHI2_CRIT), (bad["conversion"], CHI2_CRIT)
