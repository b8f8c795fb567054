from __future__ import annotations

import datetime as dt
import json
import warnings

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy import stats

from simengine.backtest.baselines import run_rate
from simengine.backtest.run import BacktestConfig, simengine_forecaster, threads_per_worker
from simengine.backtest.scoring import DENSE_LEVELS, QuantileForecast, score
from simengine.backtest.synthetic import (
    CALIBRATION_FIT,
    PERIOD_DAYS,
    _worker_init,
    calibration,
    random_shifts,
    recovery,
    run_synthetic,
    synthetic_case,
)
from simengine.backtest.truth import realised
from simengine.config.spec import load_spec
from simengine.io.records import as_of_view
from simengine.synth import SynthConfig


def test_random_shifts_are_the_seeds_own_and_change_the_data():
    # Same seed, same shifts; other seeds, other shifts, inside the documented
    # ranges, on both sides of the origin (week -13) and of factor 1.
    assert random_shifts(5) == random_shifts(5)
    cfgs = [random_shifts(s) for s in range(1, 41)]
    jumps = np.array([c.arrival_jump_week for c in cfgs])
    steps = np.array([c.conversion_step_week for c in cfgs])
    afac = np.array([c.arrival_jump_factor for c in cfgs])
    cfac = np.array([c.conversion_step_factor for c in cfgs])
    for weeks in (jumps, steps):
        assert weeks.min() >= -26
        assert weeks.max() <= -2
        assert (weeks < -13).any()
        assert (weeks >= -13).any()
    assert 0.6 <= afac.min() < 1 < afac.max() <= 1.6
    assert 0.75 <= cfac.min() < 1 < cfac.max() <= 1.15
    assert {c.conversion_step_stage for c in cfgs} == {"sql", "opportunity", "won"}
    # The shifted world is the one recorded in truth.json and generated.
    plain, _, _ = synthetic_case(7, history_weeks=20)
    shifted, _, truth = synthetic_case(7, history_weeks=20, config=random_shifts(7))
    shifts = truth["regime_shifts"]
    assert shifts["arrival_jump"]["week"] == random_shifts(7).arrival_jump_week
    assert shifts["conversion_step"]["factor"] == random_shifts(7).conversion_step_factor
    assert len(shifted) != len(plain)


def test_synthetic_case_has_its_whole_period_in_the_file(models_dir):
    spec = load_spec(models_dir / "demo.toml")
    records, origin, truth = synthetic_case(4, history_weeks=20)
    as_of = SynthConfig().as_of
    assert origin == as_of - dt.timedelta(days=91)
    # The generator records every event before its as-of date, so the period
    # origin+1 .. origin+90 = as_of-90 .. as_of-1 is complete.
    last = records[[*spec.stage_columns, "lost_at"]].max().max()
    assert last < pd.Timestamp(as_of)
    assert origin + dt.timedelta(days=PERIOD_DAYS) == as_of - dt.timedelta(days=1)
    # There is something to forecast and it is unknown at the origin.
    period = realised(
        records, spec, origin + dt.timedelta(days=1), origin + dt.timedelta(days=90), ["ent"]
    )
    assert period.loc["total", "won_deals"] > 50
    known = as_of_view(records, spec, origin)
    assert known[[*spec.stage_columns, "lost_at"]].max().max() <= pd.Timestamp(origin)
    # The origin is on a drift-period boundary of the generator: its current
    # period (0) starts on the origin, period 1 ends the day before.
    periods = truth["drift_periods"]
    assert dt.date.fromisoformat(periods[-1]["start"]) == origin
    assert dt.date.fromisoformat(periods[-2]["end"]) == origin - dt.timedelta(days=1)


def _run_rate_forecast(known, spec, plan, workdir):
    """Module-level (picklable) run-rate forecaster for the worker-process test."""
    return run_rate(known, spec, plan.start, plan.period_days, sorted(plan.targets))


@pytest.mark.slow  # two spawned processes importing the stack: ~100 s on the loaded machine
def test_cases_in_workers_score_like_serial(models_dir, tmp_path):
    """workers=2 gives the serial scores in seed order, each case in its seed's folder."""
    spec = load_spec(models_dir / "demo.toml")
    cfg = BacktestConfig(period_days=PERIOD_DAYS, paths=1000, seed=0)
    seeds = [3, 4]
    kw = {"history_weeks": 20, "config": random_shifts}
    serial = run_synthetic(seeds, spec, tmp_path / "s", cfg, _run_rate_forecast, **kw)
    events: list[tuple[int, str]] = []
    par = run_synthetic(
        seeds,
        spec,
        tmp_path / "p",
        cfg,
        _run_rate_forecast,
        on_case=lambda s, st: events.append((s, st)),
        workers=2,
        **kw,
    )
    pd.testing.assert_frame_equal(par, serial)
    assert list(dict.fromkeys(par["seed"])) == seeds
    assert [e for e in events if e[1] == "scored"] == [(s, "scored") for s in seeds]
    for s in seeds:
        truth = json.loads((tmp_path / "p" / f"seed-{s}" / "truth.json").read_text())
        assert truth["regime_shifts"]["arrival_jump"]["week"] == random_shifts(s).arrival_jump_week
    with pytest.raises(ValueError, match="workers must be"):
        run_synthetic(seeds, spec, tmp_path / "z", cfg, _run_rate_forecast, workers=0, **kw)


def test_case_workers_keep_the_callers_warning_filters():
    # A worker starts with the filters of the process that spawned it (here:
    # warnings are errors) plus the ignored PyTensor BLAS notice.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", message="not ours", category=DeprecationWarning)
        theirs = list(warnings.filters)
        with warnings.catch_warnings():
            warnings.resetwarnings()
            _worker_init(theirs)
            with pytest.raises(UserWarning, match="a warning"):
                warnings.warn("a warning", UserWarning, stacklevel=1)
            warnings.warn("not ours", DeprecationWarning, stacklevel=1)  # ignored
            warnings.warn("PyTensor could not link to a BLAS library", UserWarning, stacklevel=1)
            assert list(warnings.filters)[1:] == theirs


def _scores(pits_total: np.ndarray, seed: int = 0) -> pd.DataFrame:
    # Real scores of N(0, 1) forecasts at outcomes with the given PITs.
    fc = QuantileForecast(DENSE_LEVELS, stats.norm.ppf(DENSE_LEVELS))
    rows = []
    for i, p in enumerate(pits_total):
        y = float(stats.norm.ppf(p))
        rows.append({"seed": i, "method": "simengine", "segment": "total", **score(fc, y)})
    return pd.DataFrame(rows)


def test_calibration_accepts_uniform_and_flags_too_narrow():
    rng = np.random.default_rng(2)
    good = calibration(_scores(rng.uniform(size=300))).set_index("rows").loc["total"]
    # 300 uniform PITs: KS p-value is U(0,1) under H0; > 1e-3 fails 0.1% of seeds
    # (this one is fixed).
    assert good["pit_ks_p"] > 1e-3
    lo, hi = (float(x) for x in good["cover_80_band"].strip("[]").split(","))
    assert lo <= good["cover_80"] <= hi
    # Outcomes from N(0, 2) scored against N(0, 1): PITs pile up at 0 and 1.
    wide = stats.norm.cdf(rng.normal(0, 2, size=300))
    bad = calibration(_scores(wide)).set_index("rows").loc["total"]
    assert bad["pit_ks_p"] < 1e-6
    assert bad["cover_80"] < lo
    # P(hit) < 10% <=> Z*2 > 1.2816 <=> Z > 0.64: probability 0.26 for sd 2.
    assert bad["phit_lt_10"] > 0.2


SYNTH_SEEDS = 20
SYNTH_ALPHA = 0.01
SYNTH_MAX_UNCONVERGED = 1
"""Fits of the calibration that may miss the convergence gate (after its one retry).

The project's standard for the gate on new data (issue 16: a plain spec
passes on at least 19 of 20 synthetic data sets); a second miss fails the
test, since a calibration of unconverged fits tests the sampler, not the
model.
"""


def pit_dispersion(pit: np.ndarray) -> float:
    """Mean squared distance of the PITs from 1/2: 1/12 if calibrated.

    Larger when the forecast is too narrow (PITs pile at 0 and 1), smaller
    when it is too wide (PITs pile at 1/2): a two-sided check of the spread.
    """
    return float(np.mean((np.asarray(pit, float) - 0.5) ** 2))


def dispersion_band(n: int, alpha: float = SYNTH_ALPHA, reps: int = 200_000) -> tuple[float, float]:
    """The (alpha/2, 1 - alpha/2) quantiles of :func:`pit_dispersion` of n uniform PITs.

    By Monte Carlo with a fixed seed (the band's own error is ~1e-4).
    """
    u = np.random.default_rng(12345).uniform(size=(reps, n))
    d = ((u - 0.5) ** 2).mean(axis=1)
    lo, hi = np.quantile(d, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def normal_score(pit: np.ndarray) -> float:
    """Mean squared normal score ``Phi^-1(PIT)^2``: 1 if calibrated, two-sided in the spread.

    Above 1 when the forecast is too narrow, below when too wide; for a normal
    forecast off by a scale factor it is the most powerful statistic there is
    (a chi-square on the scores), far more than a KS test on a handful of
    PITs. A PIT outside the forecast's quantile grid (0 or 1: below
    ``DENSE_LEVELS[0]`` or above ``DENSE_LEVELS[-1]``) counts as the middle
    of that tail, so the score stays finite.
    """
    p = np.asarray(pit, float)
    lo, hi = DENSE_LEVELS[0], DENSE_LEVELS[-1]
    p = np.where(p < lo, lo / 2, np.where(p > hi, (1 + hi) / 2, p))
    return float(np.mean(stats.norm.ppf(p) ** 2))


def normal_score_band(
    n: int, alpha: float = SYNTH_ALPHA, reps: int = 200_000
) -> tuple[float, float]:
    """The (alpha/2, 1 - alpha/2) quantiles of :func:`normal_score` of n uniform PITs.

    By Monte Carlo with a fixed seed, through the same tail rule (about
    ``chi2_n / n``).
    """
    u = np.random.default_rng(54321).uniform(size=(reps, n))
    lo, hi = DENSE_LEVELS[0], DENSE_LEVELS[-1]
    p = np.where(u < lo, lo / 2, np.where(u > hi, (1 + hi) / 2, u))
    s = (stats.norm.ppf(p) ** 2).mean(axis=1)
    a, b = np.quantile(s, [alpha / 2, 1 - alpha / 2])
    return float(a), float(b)


def rescaled_pits(pit: np.ndarray, factor: float) -> np.ndarray:
    """PITs of the same outcomes under a forecast ``factor`` times as wide (location-scale).

    For a forecast F((y - m) / s), scaling s by ``factor`` maps a PIT p to
    Phi(Phi^-1(p) / factor) when F is normal; this is the mutation the power
    script applies (factor 1/2: twice too narrow; 2: twice too wide).
    """
    return stats.norm.cdf(stats.norm.ppf(np.clip(pit, 1e-12, 1 - 1e-12)) / factor)


def test_pit_dispersion_band_has_its_size_and_power():
    """The band's size is alpha on uniform PITs; it rejects forecasts 2x too narrow or too wide.

    3 x SYNTH_SEEDS PITs (3 segments a case), 4,000 simulated sets each: the
    rejection rate under U(0, 1) is within 3 binomial sds of 1%; a forecast
    twice too narrow (PIT = Phi(2 Z)) and twice too wide (PIT = Phi(Z / 2))
    are rejected in more than 80% of sets.
    """
    n, reps = 3 * SYNTH_SEEDS, 4000
    lo, hi = dispersion_band(n)
    rng = np.random.default_rng(7)
    z = rng.normal(size=(reps, n))

    def rejects(p: np.ndarray) -> float:
        d = ((p - 0.5) ** 2).mean(axis=1)
        return float(np.mean((d < lo) | (d > hi)))

    size = rejects(stats.norm.cdf(z))
    assert abs(size - SYNTH_ALPHA) < 3 * np.sqrt(SYNTH_ALPHA * (1 - SYNTH_ALPHA) / reps), size
    assert rejects(stats.norm.cdf(2 * z)) > 0.8
    assert rejects(stats.norm.cdf(z / 2)) > 0.8
    # the rescaling helper is that mutation
    np.testing.assert_allclose(rescaled_pits(stats.norm.cdf(z[0]), 0.5), stats.norm.cdf(2 * z[0]))


def test_normal_score_band_has_its_size_and_power():
    """The totals' check: size alpha on uniform PITs, power > 80% against 2x too narrow/wide.

    SYNTH_SEEDS total PITs at the check's own alpha (0.5%, its half of the
    family), 4,000 simulated sets: the size is within 3 binomial sds of 0.5%;
    a forecast twice too narrow (PIT = Phi(2 Z)) and twice too wide
    (PIT = Phi(Z / 2)) are rejected in more than 80% of sets (about 93% and
    86% at 20 cases). The KS test this replaces had power 0.05 and 0.00 at 8
    cases (``scripts/power.py``, docs/validation-tests.md).
    """
    n, reps, alpha = SYNTH_SEEDS, 4000, SYNTH_ALPHA / 2
    lo, hi = normal_score_band(n, alpha=alpha)
    z = np.random.default_rng(8).normal(size=(reps, n))

    def rejects(p: np.ndarray) -> float:
        s = np.array([normal_score(row) for row in p])
        return float(np.mean((s < lo) | (s > hi)))

    size = rejects(stats.norm.cdf(z))
    assert abs(size - alpha) < 3 * np.sqrt(alpha * (1 - alpha) / reps), size
    assert rejects(stats.norm.cdf(2 * z)) > 0.8
    assert rejects(stats.norm.cdf(z / 2)) > 0.8
    # a calibrated set scores about 1 (chi2_n / n); the tails count as their middle
    assert normal_score(np.array([0.0, 1.0])) == pytest.approx(
        stats.norm.ppf(DENSE_LEVELS[0] / 2) ** 2
    )


@pytest.mark.slow
@pytest.mark.heavy
# 20 fits + 20 x 20,000 paths on two worker processes (its time on this machine:
# docs/validation-tests.md); past the suite's 1800 s default on a loaded machine.
@pytest.mark.timeout(10800)
def test_synthetic_truth_calibration(models_dir, tmp_path, no_blas_probe):
    """P(hit the realised revenue) is uniform over synthetic histories: two-sided checks.

    Each seed is one independent case; its 3 reporting segments are forecast
    from disjoint cells with independent drift (their forecasts share the
    fit's hyperparameters, so their PITs are close to, not exactly,
    independent). Family (alpha 1% in all, Bonferroni over 2 checks at 0.5%):

    * the spread of the 60 segment PITs (:func:`pit_dispersion`) inside its
      two-sided 99.5% band (power against a forecast twice too narrow or
      twice too wide in ``scripts/power.py``, docs/validation-tests.md);
    * the mean squared normal score of the 20 total PITs
      (:func:`normal_score`) inside its two-sided 99.5% band: power ~0.93
      against twice too narrow and ~0.86 against twice too wide
      (``test_normal_score_band_has_its_size_and_power``). It replaces a KS
      test of 8 totals whose power against either was under 5%; 20 cases are
      what a scale error of 2 needs at this alpha (at 8 no test of the totals
      reaches 80%: even an exact chi-square's power is 0.65 and 0.18).

    The 80%/90% coverages of the totals and the totals' KS p-value are
    printed, not tested.

    Convergence is required: the fits use :data:`CALIBRATION_FIT` and at most
    :data:`SYNTH_MAX_UNCONVERGED` of them may miss the project's gate
    (:mod:`simengine.fitting.diagnostics`: r_hat, bulk and tail ESS,
    divergences, BFMI, after the fit's one automatic retry).
    """
    spec = load_spec(models_dir / "demo.toml")
    cfg = BacktestConfig(period_days=PERIOD_DAYS, paths=20_000, seed=0)
    # Two cases at a time in worker processes (one engine thread each): the
    # serial parts of a case (compilation, set-up, predictive checks) keep a
    # core busy while the other case samples; the scores are bitwise the
    # serial ones (test_cases_in_workers_score_like_serial).
    workers = 2
    fc = simengine_forecaster(
        cfg,
        fit_overrides=CALIBRATION_FIT,
        threads=threads_per_worker(workers),
    )
    seeds = list(range(1, SYNTH_SEEDS + 1))
    scores = run_synthetic(seeds, spec, tmp_path, cfg, fc, history_weeks=52, workers=workers)
    # The backtest's forecaster records the gate (and its one retry) in
    # posterior.nc instead of stopping; here convergence is required
    # (SYNTH_MAX_UNCONVERGED), asserted last so that a run shows and checks
    # its statistics either way.
    missed = []
    for s in seeds:
        post = next((tmp_path / f"seed-{s}" / "origins").glob("*/posterior.nc"))
        with xr.open_dataset(post, group="posterior", engine="h5netcdf") as ds:
            ok = str(ds.attrs["simengine_converged"]).lower() == "true"
            attempts = json.loads(ds.attrs["simengine_fit_attempts"])
        if not ok:
            missed.append(s)
        passed = {part: [a["passed"] for a in tries] for part, tries in attempts.items()}
        print(f"seed {s}: gate passed {ok}, attempts passed per part {passed}")
        for part, tries in attempts.items():
            if not tries[-1]["passed"]:
                print(f"  {part}: {tries[-1]['failures']}")
    print(f"fits that missed the convergence gate: {len(missed)} of {len(seeds)} {missed}")
    cal = calibration(scores).set_index("rows").loc["total"]
    sim = scores[scores["method"] == "simengine"]
    tot = sim[sim["segment"] == "total"]
    seg = sim[sim["segment"] != "total"]
    print(tot[["seed", "realised", "p10", "p50", "p90", "pit"]].to_string(index=False))
    print(seg[["seed", "segment", "pit"]].to_string(index=False))
    print(cal.to_string())
    assert len(tot) == SYNTH_SEEDS
    lo, hi = dispersion_band(len(seg), alpha=SYNTH_ALPHA / 2)
    d = pit_dispersion(seg["pit"].to_numpy())
    print(f"segment PIT dispersion {d:.4f}, band [{lo:.4f}, {hi:.4f}] (1/12 = {1 / 12:.4f})")
    assert lo <= d <= hi, (d, lo, hi)
    t_lo, t_hi = normal_score_band(len(tot), alpha=SYNTH_ALPHA / 2)
    ns = normal_score(tot["pit"].to_numpy())
    print(f"total PIT normal score {ns:.3f}, band [{t_lo:.3f}, {t_hi:.3f}] (calibrated: 1)")
    assert t_lo <= ns <= t_hi, (ns, t_lo, t_hi)
    rec = recovery(tmp_path, seeds)
    won = rec[rec["step"] == "won"]
    # The cure model with a competing loss delay recovers the current won-step
    # rate without the ~0.77 bias of treating open units as 'maybe later won';
    # the mean ratio over 6 seeds x 6 cells had sd ~0.03 (two-sided band).
    assert 0.88 < won["ratio"].mean() < 1.12, won
    assert len(missed) <= SYNTH_MAX_UNCONVERGED, missed
