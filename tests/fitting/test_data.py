"""Sufficient statistics vs a brute-force per-unit likelihood, and as-of handling."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pymc as pm
import pytest
from scipy import stats
from scipy.special import gammaln

from simengine.fitting import arrivals, conversion, deal_size
from simengine.fitting.arrivals import week_offsets
from simengine.fitting.data import (
    MIN_DELAY_DAYS,
    build_data,
    cohort_days,
    cohort_log_sd,
    known_at,
    never_leaving_share,
)

AS_OF = dt.date(2026, 1, 5)


def _random_point(model: pm.Model, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    ip = model.initial_point()
    return {k: v + rng.normal(0.0, 0.3, size=np.shape(v)) for k, v in ip.items()}


def _eval(model: pm.Model, names: list[str], point: dict[str, np.ndarray]) -> list[np.ndarray]:
    outs = model.replace_rvs_by_values([model[n] for n in names])
    fn = model.compile_fn(outs, inputs=model.value_vars, on_unused_input="ignore", point_fn=True)
    return [np.asarray(x) for x in fn(point)]


def _potentials_logp(model: pm.Model, point: dict[str, np.ndarray]) -> float:
    fn = model.compile_fn(
        model.logp(vars=model.potentials, jacobian=False),
        inputs=model.value_vars,
        on_unused_input="ignore",
    )
    return float(fn(point))


@pytest.fixture(scope="module")
def tiny(records_factory, spec_factory):
    df, _ = records_factory(3, history_days=300, weekly_rate=3.0)
    spec = spec_factory(drift=True)
    return df, spec


@pytest.mark.parametrize("r", [None, 0.15])
def test_conversion_sufficient_stats_match_brute_force(tiny, r):
    """The potentials equal the per-unit likelihood, with and without a never-leaving share.

    ``r`` None: the share :func:`build_data` estimated (0 on this synthetic
    funnel); 0.15: set per step, so a won unit has ``p``, a lost one
    ``1 - p - r`` and an open one ``p S_F + (1 - p - r) S_G + r``.
    """
    df, spec = tiny
    data = build_data(df, spec, AS_OF)
    assert data.n_periods == 4  # 300 days back, 91-day periods
    if r is not None:
        data = dataclasses.replace(data, never_leaving=np.full(len(data.steps), r))
    r_step = data.never_leaving
    model = conversion.build_model(data)
    point = _random_point(model, 1)
    p_tp, mu, sigma, loss_mu = _eval(
        model, ["conversion_by_period", "delay_mu", "delay_sigma", "loss_mu"], point
    )
    loss_sigma = np.exp(point["loss_log_sigma"])
    got = _potentials_logp(model, point)

    # brute force, one unit and one step at a time, straight from the records
    known = known_at(df, spec, AS_OF)
    cells = list(data.cells)
    cut = pd.Timestamp(AS_OF)
    total = 0.0
    n_terms = {"conv": 0, "lost": 0, "open": 0}
    for _, r in known.iterrows():
        c = cells.index(f"{r['segment']}/{r['channel']}")
        for j in range(1, len(spec.stages)):
            t0 = r[f"{spec.stages[j - 1]}_at"]
            if pd.isna(t0):
                continue
            back = int(np.floor((cut - t0).days / 91))
            per = max(0, data.n_periods - 1 - back)
            p = p_tp[c, j - 1, per]
            t1 = r[f"{spec.stages[j]}_at"]
            if not pd.isna(t1):
                d = max((t1 - t0).days, MIN_DELAY_DAYS)
                total += np.log(p) + stats.lognorm.logpdf(
                    d, s=sigma[c, j - 1], scale=np.exp(mu[c, j - 1])
                )
                n_terms["conv"] += 1
            elif not pd.isna(r["lost_at"]):
                el = max((r["lost_at"] - t0).days, MIN_DELAY_DAYS)
                g = stats.lognorm.logpdf(el, s=loss_sigma[j - 1], scale=np.exp(loss_mu[c, j - 1]))
                total += np.log1p(-p - r_step[j - 1]) + g
                n_terms["lost"] += 1
            else:
                age = max((cut - t0).days, MIN_DELAY_DAYS)
                sf = stats.lognorm.sf(age, s=sigma[c, j - 1], scale=np.exp(mu[c, j - 1]))
                sg = stats.lognorm.sf(age, s=loss_sigma[j - 1], scale=np.exp(loss_mu[c, j - 1]))
                total += np.log(p * sf + (1 - p - r_step[j - 1]) * sg + r_step[j - 1])
                n_terms["open"] += 1
    assert min(n_terms.values()) > 20  # every kind of term is exercised
    assert got == pytest.approx(total, rel=1e-9, abs=1e-6)


def test_deal_size_and_arrivals_match_brute_force(tiny):
    df, spec = tiny
    data = build_data(df, spec, AS_OF)
    known = known_at(df, spec, AS_OF)
    cells = list(data.cells)

    model = deal_size.build_model(data)
    point = _random_point(model, 2)
    mu, sigma, sd_cell = _eval(
        model, ["deal_size_mu", "deal_size_sigma", "deal_size_cell_sd"], point
    )
    won = known[known["won_at"].notna()]
    cell_of = np.array([cells.index(f"{r['segment']}/{r['channel']}") for _, r in won.iterrows()])
    logx = np.log(won["amount"].to_numpy(float))
    assert len(won) > 10
    # the levels are integrated out: the potential is log p(x) = log p(x | mu) +
    # log p(mu) - log p(mu | x) at any mu (here the drawn one), written out with
    # the prior covariance of the levels and the Gaussian posterior of mu given x
    lik = stats.lognorm.logpdf(np.exp(logx), s=sigma[cell_of], scale=np.exp(mu[cell_of])).sum()
    p = deal_size.DEFAULT_PRIORS
    seg = np.asarray(data.cell_segment)
    same = (seg[:, None] == seg[None, :]).astype(float)
    cov = p.deal_size_mu_sd**2 + p.deal_size_segment_sd**2 * same + sd_cell**2 * np.eye(len(cells))
    loc = np.full(len(cells), p.deal_size_mu_loc)
    prior = stats.multivariate_normal(loc, cov).logpdf(mu)
    n = np.bincount(cell_of, minlength=len(cells)).astype(float)
    ybar = np.bincount(cell_of, weights=logx, minlength=len(cells)) / np.maximum(n, 1.0)
    prec = np.linalg.inv(cov) + np.diag(n / sigma**2)
    post_cov = np.linalg.inv(prec)
    post_mean = post_cov @ (np.linalg.solve(cov, loc) + n / sigma**2 * ybar)
    post = stats.multivariate_normal(post_mean, post_cov).logpdf(mu)
    assert _potentials_logp(model, point) == pytest.approx(lik + prior - post, rel=1e-9)

    amodel = arrivals.build_model(data)
    apoint = _random_point(amodel, 3)
    rate, disp, trend = _eval(
        amodel, ["arrival_rate", "arrival_dispersion", "arrival_trend"], apoint
    )
    weeks = data.n_weeks
    assert weeks == 300 // 7 - 1 or weeks == 300 // 7  # complete weeks inside the data
    counts = np.zeros((len(cells), weeks), int)
    for _, r in known.iterrows():
        days_before = (pd.Timestamp(AS_OF) - r["lead_at"]).days
        if 1 <= days_before <= 7 * weeks:
            counts[
                cells.index(f"{r['segment']}/{r['channel']}"), weeks - 1 - (days_before - 1) // 7
            ] += 1
    x = week_offsets(weeks)
    # the local level relative to the last week (the walk's law is checked in
    # tests/fitting/test_arrivals.py)
    (level,) = _eval(amodel, ["arrival_level"], apoint)
    walk = level[0]
    ref_a = 0.0
    for c in range(len(cells)):
        log_m = np.log(rate[c, 0]) + walk + trend[c, 0] * x
        # contract: var = m + d m^2, i.e. NB with size n = 1/d (written out in logs,
        # as scipy's nbinom(n, p) loses p to rounding at extreme means)
        n, k = 1.0 / disp[c, 0], counts[c]
        log_nm = np.logaddexp(np.log(n), log_m)
        ref_a += np.sum(
            gammaln(k + n)
            - gammaln(n)
            - gammaln(k + 1)
            + n * (np.log(n) - log_nm)
            + k * (log_m - log_nm)
        )
    fn = amodel.compile_fn(
        amodel.logp(vars=amodel.observed_RVs, jacobian=False),
        inputs=amodel.value_vars,
        on_unused_input="ignore",
    )
    assert float(fn(apoint)) == pytest.approx(ref_a, rel=1e-8)


def test_as_of_view_ignores_the_future_and_keeps_input(tiny):
    df, spec = tiny
    before = df.copy()
    full = build_data(df, spec, AS_OF)
    cut = pd.Timestamp(AS_OF)
    trimmed = known_at(df, spec, AS_OF)
    again = build_data(trimmed, spec, AS_OF)
    pd.testing.assert_frame_equal(df, before)  # input never modified
    np.testing.assert_array_equal(full.n_converted, again.n_converted)
    np.testing.assert_array_equal(full.open_count, again.open_count)
    # no amount of a unit that closed after as-of leaks into the snapshot
    closed_later = df.loc[(df["won_at"] > cut) | (df["lost_at"] > cut), "id"]
    snap = full.snapshot.set_index("id")
    assert snap.loc[snap.index.intersection(closed_later), "amount"].isna().all()
    # open units: neither won nor lost by as-of, stage never the last
    assert (snap["stage"] != "won").all()
    assert len(snap) == full.open_count.sum()


def test_entry_stages_and_inactive_pairs(records_factory, spec_factory):
    df, _ = records_factory(5, history_days=200, weekly_rate=2.0)
    spec = spec_factory()
    # one cell only ever enters at 'qual' (sales-sourced): drop its lead dates
    df = df.copy()
    sel = (df["segment"] == "smb") & (df["channel"] == "web") & df["qual_at"].notna()
    df = df[~((df["segment"] == "smb") & (df["channel"] == "web")) | sel].copy()
    df.loc[sel, "lead_at"] = pd.NaT
    data = build_data(df, spec, AS_OF)
    assert data.entry_stages == ("lead", "qual")
    c = data.cells.index("smb/web")
    assert data.arrival_active[c].tolist() == [False, True]
    assert data.arrival_active[:, 1].sum() == 1


def _leaving_units(
    rng: np.random.Generator, n: int, r: float, span: float, mu: float, sigma: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Units entered uniformly over ``span`` days before the as-of date.

    A share ``r`` never leaves; the others leave after a lognormal(``mu``,
    ``sigma``) time. Returns (age at leaving or at as-of, left, entry age 0).
    """
    follow = rng.uniform(0.0, span, n)
    stays = rng.random(n) < r
    t = rng.lognormal(mu, sigma, n)
    left = ~stays & (t <= follow)
    return np.where(left, t, follow), left, np.zeros(n)


def test_never_leaving_share_recovers_the_plateau():
    """The estimate of a known never-leaving share sits in its binomial band (alpha 1e-4).

    20,000 units over 600 days, 20% never leave, the others leave after a
    lognormal time of median 20 days (log-sd 0.8: 99.99% within 400 days).
    The units followed more than 400 days (a third) alone give a binomial
    estimate with sd ``sqrt(r (1 - r) / n)``; the product-limit estimate uses
    every unit and is at least as precise, so 4 of those sds (two-sided,
    alpha about 6e-5) bound its error. Also with delayed entry: the units
    entered before a cut 300 days back are kept only if still there at the
    cut, and are at risk from their age at the cut on; counting them from
    age 0 (mutation: no delayed entry) over-states the share beyond the band,
    and so does a test that always refuses the plateau (0).
    """
    rng = np.random.default_rng(16)
    r, n = 0.2, 20_000
    age, left, a0 = _leaving_units(rng, n, r, 600.0, np.log(20.0), 0.8)
    sd = np.sqrt(r * (1 - r) / np.sum(age > 400.0))
    got = never_leaving_share(age, left, a0)
    assert abs(got - r) < 4 * sd
    # left-truncated at a cut 300 days back: a unit entered before it is in the
    # export only if it had not left by then, and is at risk from its age at the cut
    fol = rng.uniform(0.0, 600.0, n)
    stays = rng.random(n) < r
    t = rng.lognormal(np.log(20.0), 0.8, n)
    left3 = ~stays & (t <= fol)
    age3 = np.where(left3, t, fol)
    a0_3 = np.maximum(fol - 300.0, 0.0)  # age at the cut (0 for later entries)
    keep = ~(left3 & (age3 < a0_3))  # left before the cut: not in the export
    got3 = never_leaving_share(age3[keep], left3[keep], a0_3[keep])
    sd3 = np.sqrt(r * (1 - r) / np.sum(keep & (age3 > 400.0)))
    assert abs(got3 - r) < 4 * sd3
    # mutation: the survivors counted from age 0 (no delayed entry) over-state r
    assert never_leaving_share(age3[keep], left3[keep], np.zeros(keep.sum())) - r > 4 * sd3


def test_never_leaving_share_is_zero_without_a_plateau():
    """Follow-up too short to show a plateau: 0, where the raw product limit is not.

    Units followed at most 60 days, leaving after a lognormal time of median
    20 days and log-sd 1.5 (a third still there at 60 days): the product
    limit at the last leaving age is about 0.3, but the leavers' hazard
    just before it predicts many more leavings than the none recorded after
    it only when units are followed well past it. The test at alpha = 1
    (mutation: no plateau test) returns the raw value. With long follow-up
    and no never-leaving units the estimate is (near) 0 as well.
    """
    rng = np.random.default_rng(17)
    age, left, a0 = _leaving_units(rng, 5_000, 0.0, 60.0, np.log(20.0), 1.5)
    assert never_leaving_share(age, left, a0) == 0.0
    assert never_leaving_share(age, left, a0, alpha=1.0) > 0.2
    age, left, a0 = _leaving_units(rng, 5_000, 0.0, 2_000.0, np.log(20.0), 0.6)
    assert never_leaving_share(age, left, a0) < 0.01



def test_never_leaving_share_read_at_a_given_age():
    """``t_max``: the default's value gives the default's result; past every unit's age, 0.

    Deterministic, no alpha. The plateau (20% never leave, followed 600
    days) is taken at the largest leaving age; read at that age given
    explicitly the result is bitwise the default's. Read at an age past
    every unit's age (a subset of units younger than the whole step's
    ``t``), no unit is followed beyond it, so the follow-up cannot show a
    plateau and the share is 0. Mutation that must fail: ``t_max`` ignored
    (the plateau of about 0.2 is returned).
    """
    rng = np.random.default_rng(16)
    age, left, a0 = _leaving_units(rng, 5_000, 0.2, 600.0, np.log(20.0), 0.8)
    got = never_leaving_share(age, left, a0)
    assert got > 0.1
    assert never_leaving_share(age, left, a0, t_max=float(age[left].max())) == got
    assert never_leaving_share(age, left, a0, t_max=float(age.max()) + 1.0) == 0.0

def _cohort_units(
    rng: np.random.Generator,
    tau: float,
    n_periods: int,
    per_cohort: int,
    share0: float = 0.25,
    walk: float = 0.5,
) -> tuple[np.ndarray, np.ndarray]:
    """Units in cohorts of 30 days (3 per 90-day period), known log share of taking the step.

    Each cohort's log share of units that take the step within 30 days is
    ``log(share0) + a_period + e_cohort``, ``a`` uniform on [-walk, walk] per
    period (the walk: a move between periods) and ``e ~ Normal(0, tau)``.
    Takers take it uniformly within 30 days, the others never.
    """
    entry, after = [], []
    for per in range(n_periods):
        a = rng.uniform(-walk, walk)
        for sub in range(3):
            share = share0 * np.exp(a + rng.normal(0.0, tau))
            lo = 90.0 * per + 30.0 * sub
            entry.append(rng.uniform(lo, lo + 30.0, per_cohort))
            took = rng.random(per_cohort) < share
            after.append(np.where(took, rng.uniform(0.0, 30.0, per_cohort), np.nan))
    return np.concatenate(entry), np.concatenate(after)


def _within_period_raw_sd(entry: np.ndarray, after: np.ndarray) -> float:
    """The mutation: sd of the cohorts' log shares around their period's mean, no binomial part."""
    per, sub = np.floor(entry / 90.0), np.floor((entry % 90.0) / 30.0)
    ok = entry >= 30.0
    df = pd.DataFrame({"per": per[ok], "sub": sub[ok], "took": after[ok] <= 30.0})
    g = df.groupby(["per", "sub"])["took"].agg(["sum", "size"]).reset_index()
    g["y"] = np.log((g["sum"] + 0.5) / (g["size"] + 0.5))
    dev = g["y"] - g.groupby("per")["y"].transform("mean")
    dof = len(g) - g["per"].nunique()
    return float(np.sqrt(np.sum(dev**2) / dof))


def test_cohort_log_sd_recovers_a_known_spread():
    """The within-period cohort sd of a known 0.2 sits within 4 standard errors (alpha ~6e-5).

    300 periods of three cohorts of 60 units (share about 0.25, so the
    binomial variance of a log share, about 0.048, is comparable to the
    spread's 0.04): ~600 degrees of freedom. The moment estimate of a
    variance from ``dof`` chi-square degrees of freedom has sd about
    ``sqrt(2 / dof) (tau² + v)``; ``tau`` that over ``2 tau``. Mutations that
    must fall outside: the plain sd of the log shares (binomial noise not
    taken out) and cohorts compared across periods (the walk counted).
    """
    rng = np.random.default_rng(1607)
    tau, v = 0.2, 1.0 / 15.5 - 1.0 / 60.5
    entry, after = _cohort_units(rng, tau, 300, 60)
    dof = 300 * 3 - 300 - 1  # period 0's youngest cohort is too young
    se = np.sqrt(2.0 / dof) * (tau**2 + v) / (2.0 * tau)
    got = cohort_log_sd(entry, after, 30, 90)
    assert abs(got - tau) < 4 * se
    assert _within_period_raw_sd(entry, after) - tau > 4 * se
    assert cohort_log_sd(entry, after, 30, 10**6) - tau > 4 * se


def test_cohort_log_sd_is_zero_without_a_spread():
    """Cohorts equal within each period: 0 (the test's level 1e-3), though the periods move.

    Mutation: periods pooled (one long period), which reads the walk's moves
    between periods as a cohort spread, gives a clearly positive value.
    Too few cohorts to compare (one per period) give 0 as well.
    """
    rng = np.random.default_rng(1608)
    entry, after = _cohort_units(rng, 0.0, 100, 300)
    assert cohort_log_sd(entry, after, 30, 90) == 0.0
    assert cohort_log_sd(entry, after, 30, 10**6) > 0.2
    assert cohort_log_sd(entry, after, 30, 30) == 0.0


def test_cohort_log_sd_with_cohorts_that_all_took_the_step():
    """A step nearly every unit takes: cohorts where all did have a finite weight, and no spread.

    Cohorts of 10 units at a share of 0.9 (drift between periods, none
    within): about a third of them have every unit taking the step, whose
    log share's variance ``1/(w + 0.5) - 1/(n + 0.5)`` is 0. Their failure
    count gets half a unit as well, so the estimate is finite. With no
    spread the homogeneity test (level 1e-3) keeps the estimate at 0: in 50
    replications at most 2 may be positive (P(Bin(50, 1e-3) >= 3) ~ 2e-5,
    the test's alpha). Mutation: the variance without that half unit makes
    every replication NaN (and warns, an error here).
    """
    rng = np.random.default_rng(1609)
    got = []
    for _ in range(50):
        e, t = _cohort_units(rng, 0.0, 50, 10, share0=0.9, walk=0.05)
        ok = e >= 30.0
        key = (np.floor(e[ok] / 30.0)).astype(int)
        n = np.bincount(key)
        w = np.bincount(key, weights=(t[ok] <= 30.0).astype(float))
        assert np.any((n > 0) & (w == n))  # the case in question occurs
        got.append(cohort_log_sd(e, t, 30, 90))
    got_arr = np.array(got)
    assert np.all(np.isfinite(got_arr))
    assert np.sum(got_arr > 0) <= 2


def test_cohort_spread_is_zero_on_synthetic_funnels():
    """``synth.generate`` (demo spec: drift between periods, no cohort effect) gets no spread.

    So its conversion posterior's ``conversion_cohort_sd`` stays 0 and its
    fits and forecasts are the previous model's.
    """
    from simengine.config.spec import load_spec
    from simengine.synth import generate

    spec = load_spec(Path(__file__).resolve().parents[2] / "models" / "demo.toml")
    for seed in range(5):
        res = generate(seed)
        data = build_data(res.records, spec, dt.date.fromisoformat(res.truth["as_of"]))
        assert data.n_periods > 3
        np.testing.assert_array_equal(data.cohort_sd, np.zeros(len(data.steps)))


def test_conversion_cohort_sd_from_the_data(tiny):
    """The posterior's ``conversion_cohort_sd`` is the data's spread mapped to a period's logit sd.

    ``sqrt(mean_s (cohort_sd_s sqrt(L / P) / (1 - mean_c p_cs))^2)`` at a
    random point, ``L`` = :func:`cohort_days`; 0 where the data show none.
    """
    df, spec = tiny
    data = build_data(df, spec, AS_OF)
    np.testing.assert_array_equal(data.cohort_sd, np.zeros(len(data.steps)))
    model = conversion.build_model(data)
    (none,) = _eval(model, ["conversion_cohort_sd"], _random_point(model, 2))
    assert float(none) == 0.0
    spread = np.array([0.3, 0.0, 0.1])[: len(data.steps)]
    model = conversion.build_model(dataclasses.replace(data, cohort_sd=spread))
    tau_c, p = _eval(model, ["conversion_cohort_sd", "conversion"], _random_point(model, 2))
    ratio = cohort_days(data.period_days) / data.period_days
    want = np.sqrt(np.mean((spread * np.sqrt(ratio) / (1.0 - p.mean(axis=0))) ** 2))
    assert float(tau_c) == pytest.approx(want, rel=1e-9)
