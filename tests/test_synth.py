"""Tests of the synthetic CRM: bytes, contract, and its statistics against the truth.

Tolerances: every statistical check is a z-score against the truth's closed
form, with the standard error stated next to it, and must lie within 4
standard errors (two-sided probability 6e-5 per check under the truth; a few
dozen checks give a family-wise false-alarm rate below 0.5 %). Seeds are
fixed, so the tests are deterministic; the bands say why they should pass for
any seed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import integrate
from scipy.stats import norm

from simengine.cli import main
from simengine.config.plan import parse_plan
from simengine.config.spec import load_spec
from simengine.errors import InputError
from simengine.io.records import as_of_view, load_records
from simengine.synth import ENTRY_STAGES, STAGES, SynthConfig, SynthResult, generate, write

AS_OF = dt.date(2027, 1, 4)
STEPS = STAGES[1:]
Z = 4.0


@pytest.fixture(scope="module")
def result() -> SynthResult:
    return generate(7)


@pytest.fixture(scope="module")
def long_result() -> SynthResult:
    """Ten years of weekly counts: enough weeks to pin the NB dispersion down."""
    return generate(11, weeks=520)


@pytest.fixture(scope="module")
def spec(models_dir):
    return load_spec(models_dir / "demo.toml")


def _days_before(dates: pd.Series) -> np.ndarray:
    return (pd.Timestamp(AS_OF) - dates).dt.days.to_numpy(dtype=float)


# ---------------------------------------------------------------- bytes and contract


def test_same_seed_same_bytes_different_seed_differs(tmp_path):
    a = write(tmp_path / "a", generate(5, weeks=30))
    b = write(tmp_path / "b", generate(5, weeks=30))
    c = write(tmp_path / "c", generate(6, weeks=30))
    for name in ("records.csv", "plan.toml", "truth.json"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    assert (a / "records.csv").read_bytes() != (c / "records.csv").read_bytes()
    assert (a / "truth.json").read_bytes() != (c / "truth.json").read_bytes()


def test_records_follow_the_canonical_contract(result, spec):
    df = result.records
    assert tuple(df.columns) == spec.canonical_columns
    for c in (*spec.stage_columns, "lost_at"):
        assert df[c].dtype == np.dtype("datetime64[ns]"), c
    assert df["amount"].dtype == np.float64
    assert df["id"].is_unique
    cells = sorted(set(df["segment"] + "/" + df["channel"]))
    assert cells == sorted(result.truth["cells"])
    # Reached stages contiguous and dated in order; entry at mql or opportunity.
    reached = df[list(spec.stage_columns)].notna().to_numpy()
    first = reached.argmax(axis=1)
    last = reached.shape[1] - 1 - reached[:, ::-1].argmax(axis=1)
    span = np.arange(reached.shape[1])[None, :]
    assert np.array_equal(reached, (span >= first[:, None]) & (span <= last[:, None]))
    assert set(np.asarray(STAGES)[first]) == set(ENTRY_STAGES)
    days = np.stack([-_days_before(df[c]) for c in spec.stage_columns], axis=1)
    diffs = np.diff(days, axis=1)
    assert np.all(np.isnan(diffs) | (diffs >= 0))
    won = df["won_at"].notna()
    assert not (won & df["lost_at"].notna()).any()
    assert df["amount"].notna().equals(won)  # amounts exactly on won units


def test_nothing_known_after_as_of_and_open_units_exist(result, spec):
    df = result.records
    dates = df[[*spec.stage_columns, "lost_at"]]
    assert dates.max().max() == pd.Timestamp(AS_OF) - pd.Timedelta(days=1)
    assert dates.min().min() == pd.Timestamp(result.truth["history_start"])
    is_open = df["won_at"].isna() & df["lost_at"].isna()
    last_stage = df[list(spec.stage_columns[:-1])].notna().to_numpy().cumsum(axis=1).argmax(axis=1)
    open_by_stage = pd.Series(
        np.asarray(STAGES[:-1])[last_stage[is_open.to_numpy()]]
    ).value_counts()
    # Recent cohorts and slow units: every non-final stage holds open units.
    for s in STAGES[:-1]:
        assert open_by_stage.get(s, 0) > 50, (s, open_by_stage)
    # Slow ones too: some open units entered their stage more than 90 days ago.
    opp_open = df.loc[is_open & df["opportunity_at"].notna(), "opportunity_at"]
    assert (_days_before(opp_open) > 90).any()


def test_records_pass_load_records_and_as_of_view(result, spec, tmp_path):
    out = write(tmp_path / "synth", result)
    loaded = load_records(out / "records.csv", spec)
    pd.testing.assert_frame_equal(loaded, result.records, check_dtype=False)
    view = as_of_view(loaded, spec, AS_OF)
    pd.testing.assert_frame_equal(
        view.reset_index(drop=True), loaded.reset_index(drop=True), check_dtype=False
    )


def test_plan_parses_and_targets_follow_expected_revenue(result):
    plan = parse_plan(result.plan, source="plan.toml")
    assert plan.start == plan.as_of == AS_OF
    assert plan.end == AS_OF + dt.timedelta(days=90)  # 13 weeks
    assert plan.horizon_days == 180
    segments = result.truth["segments"]
    assert list(plan.targets) == segments
    plan.check_segments(segments, ENTRY_STAGES)
    expected = result.truth["period"]["expected"]
    for seg, target in plan.targets.items():
        assert target % 1000 == 0
        assert 1.0 <= target / expected[seg]["revenue"] <= 1.1


def test_period_is_the_benchmark_workload(result):
    # The engine's standard workload: ~6,000 new MQLs and ~250 wins a quarter.
    total = result.truth["period"]["expected"]["total"]
    assert 5400 <= total["new_mql"] <= 6600
    assert 220 <= total["won_deals"] <= 300


def test_truth_is_complete_and_json_ready(result):
    t = json.loads(json.dumps(result.truth, allow_nan=False))
    cells = t["cells"]
    assert len(cells) == 6
    for key in ("arrival_rate", "arrival_dispersion", "arrival_trend"):
        assert set(t[key]) == set(cells)
        assert all(set(v) == set(ENTRY_STAGES) for v in t[key].values())
    for key in ("conversion", "delay_mu", "delay_sigma"):
        assert all(set(v) == set(STEPS) for v in t[key].values())
    n_periods = len(t["drift_periods"])
    assert n_periods == math.ceil(104 * 7 / 91)
    assert t["drift_periods"][-1]["end"] == "2027-01-03"
    for c in cells:
        for s in STEPS:
            series = t["conversion_by_period"][c][s]
            assert len(series) == n_periods
            assert series[-1] == t["conversion"][c][s]  # the current rate is the last period's
    assert t["as_of"] == AS_OF.isoformat()
    assert t["seed"] == 7


def test_bad_config_and_existing_output_are_rejected(result, tmp_path):
    with pytest.raises(ValueError, match="shape"):
        SynthConfig(conversion=(0.3, 0.6))
    with pytest.raises(ValueError, match="weeks"):
        generate(1, weeks=0)
    out = write(tmp_path / "o", result)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(InputError, match="exists"):
        write(out, generate(2, weeks=10))
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_cli_synth(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["synth", "--out", str(out), "--seed", "3", "--weeks", "20"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["plan.toml", "records.csv", "truth.json"]
    first = (out / "records.csv").read_bytes()
    assert main(["synth", "--out", str(out), "--seed", "4", "--weeks", "20"]) == 2
    assert (out / "records.csv").read_bytes() == first
    assert main(["synth", "--out", str(out), "--seed", "4", "--weeks", "20", "--force"]) == 0
    assert (out / "records.csv").read_bytes() != first
    assert json.loads((out / "truth.json").read_text())["weeks"] == 20
    capsys.readouterr()


# ---------------------------------------------------------------- statistics vs truth


def test_weekly_arrivals_match_negative_binomial(long_result):
    df, t = long_result.records, long_result.truth
    weeks = t["weeks"]
    stage_cols = [f"{s}_at" for s in STAGES]
    entry_date = df[stage_cols].bfill(axis=1).iloc[:, 0]
    entry_stage = np.asarray(STAGES)[df[stage_cols].notna().to_numpy().argmax(axis=1)]
    # Week j = -1 ends the day before as-of; week index 0 is the oldest.
    week = weeks - 1 - (_days_before(entry_date).astype(int) - 1) // 7
    cell = (df["segment"] + "/" + df["channel"]).to_numpy()
    j = np.arange(-weeks, 0) + 0.5
    for c in t["cells"]:
        for e in ENTRY_STAGES:
            sel = (cell == c) & (entry_stage == e)
            n = np.bincount(week[sel], minlength=weeks).astype(float)
            m = t["arrival_rate"][c][e] * np.exp(t["arrival_trend"][c][e] * j)
            alpha = t["arrival_dispersion"][c][e]
            var = m + alpha * m**2
            # Mean: sum of independent NB counts, sd sqrt(sum var).
            z_mean = (n.sum() - m.sum()) / math.sqrt(var.sum())
            assert abs(z_mean) < Z, (c, e, z_mean)
            # Dispersion: E[(N - m)^2 - N] = alpha m^2, so alpha_hat = sum T / sum m^2
            # is unbiased; its SE from the empirical spread of T (sandwich).
            tt = (n - m) ** 2 - n
            alpha_hat = tt.sum() / (m**2).sum()
            se = math.sqrt(((tt - alpha_hat * m**2) ** 2).sum()) / (m**2).sum()
            assert abs(alpha_hat - alpha) < Z * se, (c, e, alpha_hat, alpha, se)
            if e == "mql":  # the overdispersion is real, not Poisson (alpha = 0 rejected)
                assert alpha_hat > Z * se, (c, alpha_hat, se)


def _period_rate(t: dict, cell: str, step: str, dates: pd.Series) -> np.ndarray:
    """The truth's conversion for units entering the from-stage on ``dates``."""
    starts = pd.to_datetime([p["start"] for p in t["drift_periods"]]).to_numpy()
    k = np.clip(np.searchsorted(starts, dates.to_numpy(), side="right") - 1, 0, len(starts) - 1)
    return np.asarray(t["conversion_by_period"][cell][step])[k]


def _resolved(df: pd.DataFrame, stage: str, days: int = 364) -> pd.DataFrame:
    """Units that entered ``stage`` at least ``days`` before as-of (fully resolved).

    With the default delays, P(step or loss delay > 364 days) < 0.002, so
    censoring in this cohort biases counts by far less than one SE.
    """
    at = df[f"{stage}_at"]
    return df[at.notna() & (_days_before(at) >= days)]


def test_step_conversion_within_binomial_band(result):
    df, t = result.records, result.truth
    cell = df["segment"] + "/" + df["channel"]
    checks = 0
    for k, step in enumerate(STEPS):
        frm = STAGES[k]
        for c in t["cells"]:
            sub = _resolved(df[cell == c], frm)
            p = _period_rate(t, c, step, sub[f"{frm}_at"])
            converted = sub[f"{step}_at"].notna().sum()
            # Sum of independent Bernoulli(p_i): mean sum p, var sum p(1-p).
            z = (converted - p.sum()) / math.sqrt((p * (1 - p)).sum())
            assert abs(z) < Z, (c, step, converted, p.sum(), z)
            checks += 1
    assert checks == 18


def _floored_cdf(mu: float, sigma: float, j: int) -> float:
    """P(floor(u + D) - floor(u) <= j) for D ~ lognormal(mu, sigma), u ~ U(0, 1).

    The date difference is <= j iff D < j + 1 - frac, so the probability is the
    integral of F over [j, j + 1].
    """

    def cdf(x: float) -> float:
        return float(norm.cdf((math.log(x) - mu) / sigma)) if x > 0 else 0.0

    return float(integrate.quad(cdf, j, j + 1)[0])


def test_step_delays_match_lognormal_truth(result):
    df, t = result.records, result.truth
    cell = df["segment"] + "/" + df["channel"]
    for k, step in enumerate(STEPS):
        frm = STAGES[k]
        for c in t["cells"]:
            sub = _resolved(df[cell == c], frm)
            sub = sub[sub[f"{step}_at"].notna()]
            x = (sub[f"{step}_at"] - sub[f"{frm}_at"]).dt.days.to_numpy()
            mu, sigma = t["delay_mu"][c][step], t["delay_sigma"][c][step]
            j = math.floor(math.exp(mu))  # around the median
            p = _floored_cdf(mu, sigma, j)
            # Binomial proportion: SE sqrt(p(1-p)/n).
            se = math.sqrt(p * (1 - p) / x.size)
            assert abs((x <= j).mean() - p) < Z * se, (c, step, (x <= j).mean(), p, se)


def test_loss_delays_match_lognormal_truth(result):
    df, t = result.records, result.truth
    stage_cols = [f"{s}_at" for s in STAGES[:-1]]
    lost = df[df["lost_at"].notna()]
    last = np.asarray(STAGES)[lost[stage_cols].notna().to_numpy().cumsum(axis=1).argmax(axis=1)]
    for s in STAGES[:-1]:
        sub = lost[last == s]
        sub = sub[_days_before(sub[f"{s}_at"]) >= 364]
        x = (sub["lost_at"] - sub[f"{s}_at"]).dt.days.to_numpy()
        mu, sigma = t["loss_delay_mu"][s], t["loss_delay_sigma"][s]
        j = math.floor(math.exp(mu))
        p = _floored_cdf(mu, sigma, j)
        se = math.sqrt(p * (1 - p) / x.size)
        assert abs((x <= j).mean() - p) < Z * se, (s, (x <= j).mean(), p, se)


def test_won_amounts_match_lognormal_truth(result):
    df, t = result.records, result.truth
    won = df[df["won_at"].notna()]
    cell = won["segment"] + "/" + won["channel"]
    for c in t["cells"]:
        y = np.log(won.loc[cell == c, "amount"].to_numpy())
        n = y.size
        mu, sigma = t["deal_size_mu"][c], t["deal_size_sigma"][c]
        # Normal log-amounts: SE of the mean sigma/sqrt(n), of the sd sigma/sqrt(2(n-1)).
        # (Rounding to cents moves log amounts by < 1e-6.)
        assert abs(y.mean() - mu) < Z * sigma / math.sqrt(n), (c, y.mean(), mu)
        assert abs(y.std(ddof=1) - sigma) < Z * sigma / math.sqrt(2 * (n - 1)), (c, y.std(), sigma)


def test_expected_period_figures_match_realised_quarters():
    """The plan's expected wins equal the average realised quarter of the same process.

    In a stationary world (no drift, no trend) the last 13 weeks of a
    117-week history are a realised "period" after 104 weeks of history, so
    their mean over seeds estimates what ``generate(weeks=104)`` computes as
    expected (from the open pipeline's conditional law plus new arrivals).
    SE from the spread of both samples over seeds.
    """
    cfg = SynthConfig(
        drift_sd=0.0,
        mql_trend_per_week=(0.0, 0.0),
        opportunity_trend_per_week=0.0,
        expectation_paths=5000,
        expectation_reps=5,
    )
    late = dataclasses.replace(cfg, as_of=AS_OF + dt.timedelta(days=91))
    reps = 24
    expected = np.empty((reps, 4))
    realised = np.empty((reps, 4))
    segs = cfg.segments
    for r in range(reps):
        e = generate(100 + r, weeks=104, config=cfg).truth["period"]["expected"]
        expected[r] = [e[s]["won_deals"] for s in segs] + [e["total"]["won_deals"]]
        df = generate(500 + r, weeks=117, config=late).records
        in_period = df["won_at"] >= pd.Timestamp(AS_OF)
        counts = df.loc[in_period, "segment"].value_counts()
        realised[r] = [counts.get(s, 0) for s in segs] + [in_period.sum()]
    se = np.sqrt(expected.var(axis=0, ddof=1) / reps + realised.var(axis=0, ddof=1) / reps)
    z = (expected.mean(axis=0) - realised.mean(axis=0)) / se
    assert np.all(np.abs(z) < Z), (expected.mean(axis=0), realised.mean(axis=0), z)


@pytest.mark.parametrize(("stage", "age"), [(1, 60.0), (2, 40.0), (2, 150.0)])
def test_open_units_continue_from_their_conditional_law(stage, age):
    """Continuing an open unit equals running it from its entry and keeping the open ones.

    Reference by rejection: units entered ``stage`` at ``-age`` and run forward
    unconditionally; those neither converted nor lost before day 0 are draws
    from the conditional law. Compare P(won within the 91-day period) and
    P(won at all); SE from both binomial samples.
    """
    from simengine import synth

    rng = np.random.default_rng(1)
    tr = synth._build_truth(SynthConfig(), rng, 104)
    c = tr.cells.index("ent/inbound")
    n = 400_000
    cell = np.full(n, c, dtype=np.int64)
    st = np.full(n, stage, dtype=np.int64)
    t0 = np.full(n, -age)
    times, lost = synth._forward(rng, tr, cell, st, t0)
    nxt = times[:, stage + 1]
    still_open = ~(nxt < 0) & ~(lost < 0)
    ref = times[still_open, -1]
    cont, _ = synth._continue_open(rng, tr, cell[:200_000], st[:200_000], t0[:200_000])
    got = cont[:, -1]
    for name, hit in (("period", lambda w: (w >= 0) & (w < 91)), ("ever", lambda w: w >= 0)):
        p_ref, p_got = hit(ref).mean(), hit(got).mean()
        se = math.sqrt(p_ref * (1 - p_ref) / ref.size + p_got * (1 - p_got) / got.size)
        assert abs(p_got - p_ref) < Z * se, (name, p_got, p_ref, se)
    # Not vacuous: the open units' win chance differs from a fresh unit's.
    fresh = times[:, -1]
    assert abs((fresh >= 0).mean() - (ref >= 0).mean()) > 10 * se


# ---------------------------------------------------------------- regime shifts


SHIFTED = SynthConfig(
    drift_sd=0.0,
    arrival_jump_week=-30,
    arrival_jump_factor=1.8,
    conversion_step_week=-60,
    conversion_step_stage="won",
    conversion_step_factor=0.55,
)


@pytest.fixture(scope="module")
def shifted() -> SynthResult:
    return generate(13, weeks=156, config=SHIFTED)


def test_regime_shifts_same_bytes_and_recorded(tmp_path, shifted):
    a = write(tmp_path / "a", generate(5, weeks=40, config=SHIFTED))
    b = write(tmp_path / "b", generate(5, weeks=40, config=SHIFTED))
    plain = write(tmp_path / "c", generate(5, weeks=40))
    for name in ("records.csv", "plan.toml", "truth.json"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    assert (a / "records.csv").read_bytes() != (plain / "records.csv").read_bytes()
    shifts = json.loads((a / "truth.json").read_text())["regime_shifts"]
    assert shifts["arrival_jump"]["week"] == -30
    assert shifts["arrival_jump"]["factor"] == 1.8
    assert shifts["arrival_jump"]["from"] == (AS_OF - dt.timedelta(weeks=30)).isoformat()
    assert shifts["conversion_step"]["step"] == "won"
    assert shifts["conversion_step"]["factor"] == 0.55
    assert json.loads((plain / "truth.json").read_text())["regime_shifts"] == {
        "arrival_jump": None,
        "conversion_step": None,
    }
    with pytest.raises(ValueError, match="conversion_step_stage"):
        SynthConfig(conversion_step_week=-3, conversion_step_stage="mql")
    with pytest.raises(ValueError, match="to 1 or above"):
        generate(1, weeks=10, config=SynthConfig(conversion_step_week=-3, conversion_step_factor=5))


def test_arrival_jump_scales_the_weekly_means(shifted):
    """Totals before and after the jump against the NB truth (4 SE; alpha 6e-5 each).

    The mutation (the jump ignored) must fail: the after-jump total is
    compared with the unjumped mean too and must be far outside its band.
    """
    df, t = shifted.records, shifted.truth
    weeks = t["weeks"]
    stage_cols = [f"{s}_at" for s in STAGES]
    entry_date = df[stage_cols].bfill(axis=1).iloc[:, 0]
    entry_stage = np.asarray(STAGES)[df[stage_cols].notna().to_numpy().argmax(axis=1)]
    week = -1 - (_days_before(entry_date).astype(int) - 1) // 7  # -1 = the last week
    cell = (df["segment"] + "/" + df["channel"]).to_numpy()
    j = np.arange(-weeks, 0)
    after = j >= -30
    for c in t["cells"]:
        sel = (cell == c) & (entry_stage == "mql")
        n = np.bincount(week[sel] + weeks, minlength=weeks).astype(float)
        base = t["arrival_rate"][c]["mql"] * np.exp(t["arrival_trend"][c]["mql"] * (j + 0.5))
        m = base * np.where(after, 1.8, 1.0)
        var = m + t["arrival_dispersion"][c]["mql"] * m**2
        for part in (after, ~after):
            z = (n[part].sum() - m[part].sum()) / math.sqrt(var[part].sum())
            assert abs(z) < Z, (c, z)
        z_unjumped = (n[after].sum() - base[after].sum()) / math.sqrt(var[after].sum())
        assert z_unjumped > Z, (c, z_unjumped)


def test_conversion_step_changes_the_rate_from_its_week(shifted):
    """Wins by as-of of the units entering opportunity, before and after the step (4 SE).

    Given its entry day, a unit has won by the as-of date with probability
    ``p F(a)`` (``p`` its rate, ``F`` the truth's lognormal delay, ``a`` its
    age), so the count is a sum of independent Bernoullis: mean ``sum q``,
    variance ``sum q (1 - q)``. Drift is off, so ``p`` is the baseline rate
    before the step and 0.55 times it after. Mutation: the step ignored.
    """
    df, t = shifted.records, shifted.truth
    at = df["opportunity_at"]
    cell = (df["segment"] + "/" + df["channel"]).to_numpy()
    age = _days_before(at)
    step_day = 60 * 7  # week -60 begins 420 days before as-of
    won = df["won_at"].notna().to_numpy()
    for c in t["cells"]:
        sel = at.notna().to_numpy() & (cell == c)
        p0 = t["conversion"][c]["won"]
        # the entry's continuous time lies within its day: take the day's middle
        log_a = np.log(age[sel] + 0.5)
        f = norm.cdf((log_a - t["delay_mu"][c]["won"]) / t["delay_sigma"][c]["won"])
        late = age[sel] <= step_day
        q = np.where(late, 0.55 * p0, p0) * f
        for part in (late, ~late):
            z = (won[sel][part].sum() - q[part].sum()) / math.sqrt((q * (1 - q))[part].sum())
            assert abs(z) < Z, (c, z)
        q_unstepped = p0 * f[late]
        z_mut = (won[sel][late].sum() - q_unstepped.sum()) / math.sqrt(
            (q_unstepped * (1 - q_unstepped)).sum()
        )
        assert z_mut < -Z, (c, z_mut)


def test_cli_synth_regime_shift_options(tmp_path, capsys):
    out = tmp_path / "shifted"
    args = ["synth", "--out", str(out), "--seed", "3", "--weeks", "20"]
    assert main([*args, "--arrival-jump-week", "-5", "--arrival-jump-factor", "2"]) == 0
    truth = json.loads((out / "truth.json").read_text())
    assert truth["regime_shifts"]["arrival_jump"]["factor"] == 2.0
    assert truth["regime_shifts"]["conversion_step"] is None
    bad = ["--conversion-step-week", "-3", "--conversion-step-stage", "lead", "--force"]
    assert main([*args, *bad]) == 2
    assert "conversion_step_stage" in capsys.readouterr().err
