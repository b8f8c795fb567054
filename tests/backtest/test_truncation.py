"""Left-truncated exports: the fit's statistics start at the first recorded exit.

The CRM export holds only deals still open on its first recorded close
(2017-03-01) or engaged later; the deals engaged before that date are the
survivors of their cohorts. These tests build a complete one-step funnel
with known delays, cut it the same way (drop every unit that left before
``T0``), and check that ``build_data(..., observed_from=T0)``

* gives exactly the statistics of the complete file with delayed entry at
  ``T0`` (units that left before ``T0`` contribute nothing; the survivors
  count from ``T0`` on, their ages at ``T0`` in the ``trunc_*`` groups),
* recovers the win share and the delay and loss laws by maximum likelihood
  with the survivors' survival to ``T0`` divided out, where the same
  likelihood without that term is biased by the survivors (so the test can
  fail), and
* the conversion model's ``truncation_loglik`` is that term.

Also: ``first_exit`` finds ``T0`` from the records known at an as-of date,
``detect_left_truncation`` tells a cut export from a complete one, and
``FitSettings.left_truncated`` (true, false, or absent: detected) routes it
into the fit's data.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np
import pandas as pd
import pytest

from simengine.config.spec import parse_spec
from simengine.fitting.data import (
    TRUNCATION_ALPHA,
    build_data,
    detect_left_truncation,
    first_exit,
)

SPEC = parse_spec(
    """
name = "trunc"
stages = ["opportunity", "won"]
segment_by = ["segment"]
pipeline_stage = "opportunity"
[model]
drift = true
arrival_trend = false
arrival_history_weeks = 52
""",
    source="trunc.toml",
)
START = dt.date(2024, 1, 1)
T0 = dt.date(2024, 8, 1)  # the export's first recorded exit
AS_OF = dt.date(2025, 6, 1)
LAST_ENTRY_DAY = 300  # entries over days 0..299 of 2024: every cohort followed >= 217 days
P_WIN, DELAY_MU, DELAY_SIGMA = 0.6, np.log(30.0), 0.8
LOSS_MU, LOSS_SIGMA = np.log(20.0), 0.8


def _complete(seed: int = 3, n: int = 12000) -> pd.DataFrame:
    """A complete export: entries uniform over 300 days of 2024, cure-model outcomes."""
    rng = np.random.default_rng(seed)
    entry = pd.Timestamp(START) + pd.to_timedelta(rng.integers(0, LAST_ENTRY_DAY, n), unit="D")
    won = rng.random(n) < P_WIN
    delay = np.exp(rng.normal(DELAY_MU, DELAY_SIGMA, n))
    loss = np.exp(rng.normal(LOSS_MU, LOSS_SIGMA, n))
    exit_at = entry + pd.to_timedelta(np.floor(np.where(won, delay, loss)), unit="D")
    return pd.DataFrame(
        {
            "id": [f"u{i}" for i in range(n)],
            "segment": np.where(rng.random(n) < 0.5, "a", "b"),
            "opportunity_at": entry.astype("datetime64[ns]"),
            "won_at": pd.Series(exit_at).where(won).astype("datetime64[ns]").to_numpy(),
            "lost_at": pd.Series(exit_at).where(~won).astype("datetime64[ns]").to_numpy(),
            "amount": np.where(won, np.exp(rng.normal(8.0, 0.5, n)), np.nan),
        }
    )


def _truncate(df: pd.DataFrame) -> pd.DataFrame:
    """Keep what a left-truncated export keeps: units not closed before T0."""
    closed = df["won_at"].fillna(df["lost_at"])
    return df.loc[closed.isna() | (closed >= pd.Timestamp(T0))].reset_index(drop=True)


@pytest.fixture(scope="module")
def files() -> tuple[pd.DataFrame, pd.DataFrame]:
    full = _complete()
    return full, _truncate(full)


_STATS = (
    "n_converted",
    "n_lost",
    "delay_n",
    "delay_sum_log",
    "delay_sum_log2",
    "loss_n",
    "loss_sum_log",
    "loss_sum_log2",
    "open_cell",
    "open_step",
    "open_period",
    "open_age",
    "open_count",
    "arrival_counts",
    "trunc_cell",
    "trunc_step",
    "trunc_period",
    "trunc_age",
    "trunc_count",
)


def test_first_exit_is_the_exports_first_close(files):
    full, cut = files
    assert first_exit(cut, SPEC, AS_OF) == T0  # many closes a day at that rate
    assert first_exit(full, SPEC, AS_OF) < T0
    # as known at an as-of date: nothing later counts
    assert first_exit(cut, SPEC, T0 - dt.timedelta(days=1)) is None


def test_truncated_statistics_equal_the_complete_files_from_t0(files):
    """Exact: units closed before T0 contribute nothing, the survivors count from T0."""
    full, cut = files
    before = cut.copy()
    a = build_data(cut, SPEC, AS_OF, observed_from=T0)
    b = build_data(full, SPEC, AS_OF, observed_from=T0)
    pd.testing.assert_frame_equal(cut, before)  # input not modified
    for name in _STATS:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert a.n_periods == b.n_periods == 4  # 304 days back from as-of, 91-day periods
    assert a.n_weeks == 43  # the arrival window starts on/after T0 (304 days)
    # the open-unit snapshot (the engine's pipeline) keeps every open unit
    assert len(a.snapshot) == len(build_data(cut, SPEC, AS_OF).snapshot)


def _pooled_nll(d, delayed_entry: bool):
    """Negative log-likelihood of the conversion model pooled over cells and periods.

    The same terms as :mod:`simengine.fitting.conversion` (wins ``p f``,
    losses ``(1 - p) g``, open ``p S_F + (1 - p) S_G``; survivors' survival at
    their age at T0 divided out when ``delayed_entry``), one ``p``, one
    lognormal delay and one lognormal time to loss.
    """
    from scipy.stats import norm

    nc, nl = d.n_converted.sum(), d.n_lost.sum()

    def suff(n, s1, s2, mu, ls):
        return (
            -n * ls
            - 0.5 * n * np.log(2 * np.pi)
            - s1
            - (s2 - 2 * mu * s1 + n * mu**2) / (2 * np.exp(2 * ls))
        )

    def surv(lp, mu, ls, lmu, lls, log_a):
        return np.logaddexp(
            -np.logaddexp(0, -lp) + norm.logsf(log_a, mu, np.exp(ls)),
            -np.logaddexp(0, lp) + norm.logsf(log_a, lmu, np.exp(lls)),
        )

    def nll(th):
        lp, mu, ls, lmu, lls = th
        ll = nc * -np.logaddexp(0, -lp) + nl * -np.logaddexp(0, lp)
        ll += suff(d.delay_n.sum(), d.delay_sum_log.sum(), d.delay_sum_log2.sum(), mu, ls)
        ll += suff(d.loss_n.sum(), d.loss_sum_log.sum(), d.loss_sum_log2.sum(), lmu, lls)
        ll += np.sum(d.open_count * surv(lp, mu, ls, lmu, lls, np.log(d.open_age)))
        if delayed_entry:
            ll -= np.sum(d.trunc_count * surv(lp, mu, ls, lmu, lls, np.log(d.trunc_age)))
        return -ll

    return nll


def test_delayed_entry_removes_the_survivor_bias(files):
    """Maximum likelihood on the cut file's statistics vs the truth.

    The cut file has about 12,000 units, 7,000 of them wins: the MLE's sd is
    about 0.8 / sqrt(7,000) = 0.01 for the log-median delay and
    sqrt(0.24 / 12,000) = 0.005 for the win share. Tolerances: 5 of those sds
    plus 0.04 on the log scale for the day flooring (it lowers log d by about
    0.5 / d, 0.02 at d = 30), i.e. 0.09 on the log medians, 0.1 on the log sds
    and 0.03 on the share (alpha < 1e-5 each). The same likelihood without the
    delayed-entry term (the survivors read as whole cohorts) must miss the
    delay median by more than its tolerance (power).
    """
    from scipy.optimize import minimize

    _, cut = files
    d = build_data(cut, SPEC, AS_OF, observed_from=T0)
    assert d.trunc_count.sum() > 1000  # the survivors are in, with their ages at T0
    th0 = np.array([0.0, 3.0, 0.0, 3.0, 0.0])
    fit = minimize(_pooled_nll(d, True), th0, method="L-BFGS-B").x
    p = 1.0 / (1.0 + np.exp(-fit[0]))
    assert abs(p - P_WIN) < 0.03
    assert abs(fit[1] - DELAY_MU) < 0.09
    assert abs(np.exp(fit[2]) - DELAY_SIGMA) < 0.1
    assert abs(fit[3] - LOSS_MU) < 0.09
    assert abs(np.exp(fit[4]) - LOSS_SIGMA) < 0.1
    naive = minimize(_pooled_nll(d, False), th0, method="L-BFGS-B").x
    assert abs(naive[1] - DELAY_MU) > 0.09 + 0.05


def test_conversion_model_divides_out_the_survival_to_t0(files):
    """The model's truncation_loglik equals the brute-force term at its initial point."""
    import dataclasses as dc

    from scipy.stats import norm

    from simengine.fitting import conversion

    _, cut = files
    d = build_data(cut, SPEC, AS_OF, observed_from=T0, drift=False)
    model = conversion.build_model(d)
    pt0 = model.initial_point()
    names = ("conversion", "delay_mu", "delay_sigma", "loss_mu", "loss_sigma")
    # one compiled function: the term and the parameters at the same point
    out = model.compile_fn(
        [model["truncation_loglik"], *[model[n] for n in names]],
        inputs=model.value_vars,
        on_unused_input="ignore",
    )(pt0)
    got = float(out[0])
    p, mu, sg, lmu, lsg = (np.asarray(v)[:, 0] for v in out[1:])
    c, la = d.trunc_cell, np.log(d.trunc_age)
    surv = p[c] * norm.sf(la, mu[c], sg[c]) + (1 - p[c]) * norm.sf(la, lmu[c], lsg[c])
    np.testing.assert_allclose(got, -np.sum(d.trunc_count * np.log(surv)), rtol=1e-9)
    # without survivors the model has no such term
    empty = dc.replace(
        d,
        trunc_cell=d.trunc_cell[:0],
        trunc_step=d.trunc_step[:0],
        trunc_period=d.trunc_period[:0],
        trunc_age=d.trunc_age[:0],
        trunc_count=d.trunc_count[:0],
    )
    assert "truncation_loglik" not in conversion.build_model(empty).named_vars


def test_fit_settings_route_left_truncation(files):
    """FitSettings(left_truncated=True): the fit's data start at first_exit(as-of)."""
    from simengine.fitting.fit import FitSettings, fit_data

    full, cut = files
    st = FitSettings(drift=True, arrival_history_weeks=52)
    on = fit_data(cut, SPEC, AS_OF, dataclasses.replace(st, left_truncated=True))
    off = fit_data(cut, SPEC, AS_OF, dataclasses.replace(st, left_truncated=False))
    auto = fit_data(cut, SPEC, AS_OF, st)  # absent: detected (the cut file is truncated)
    auto_full = fit_data(full, SPEC, AS_OF, st)  # the complete file is not
    expect_full = build_data(full, SPEC, AS_OF)
    expect_on = build_data(cut, SPEC, AS_OF, observed_from=T0)
    expect_off = build_data(cut, SPEC, AS_OF)
    for name in _STATS:
        np.testing.assert_array_equal(getattr(on, name), getattr(expect_on, name), err_msg=name)
        np.testing.assert_array_equal(getattr(off, name), getattr(expect_off, name), err_msg=name)
        np.testing.assert_array_equal(getattr(auto, name), getattr(expect_on, name), err_msg=name)
        np.testing.assert_array_equal(
            getattr(auto_full, name), getattr(expect_full, name), err_msg=name
        )
    # the survivors count with delayed entry when truncated, as whole cohorts when not
    assert on.trunc_count.sum() > 0
    assert off.trunc_count.size == 0


N_SEEDS = 20


def test_detection_tells_cut_exports_from_complete_ones():
    """Size and power of ``detect_left_truncation`` over independent exports.

    Each complete export (2,000 units, other seeds than the fixture) is
    called truncated with probability at most about ``TRUNCATION_ALPHA`` =
    1e-3 (the Poisson bound of its docstring; the expected number of early
    exits of a complete export is below 1, so it is far smaller): over 20
    seeds, any false call has probability <= 2%, the test's alpha. Each cut
    export (the same file without the exits before T0) hides about
    ``sum_i H(t_i)``, several hundred, early exits here: every one must be
    detected, at T0's date, also at an as-of date only 30 days after T0
    (short follow-up). Mutation (power of the size check): the same test run
    on the cut files must call them truncated, so a detector that always
    says "complete" fails the second assertion, and one that always says
    "truncated" fails the first.
    """
    as_of_soon = T0 + dt.timedelta(days=30)
    false_calls = []
    misses = []
    for seed in range(100, 100 + N_SEEDS):
        full = _complete(seed=seed, n=2000)
        cut = _truncate(full)
        if detect_left_truncation(full, SPEC, AS_OF) is not None:
            false_calls.append(seed)
        for as_of in (AS_OF, as_of_soon):
            if detect_left_truncation(cut, SPEC, as_of) != first_exit(cut, SPEC, as_of):
                misses.append((seed, as_of))
    assert TRUNCATION_ALPHA <= 1e-3
    assert false_calls == []
    assert misses == []


def test_detection_on_the_crm_export():
    """The shared CRM export is left-truncated at its first close at every origin."""
    from pathlib import Path

    from simengine.config.spec import load_spec
    from simengine.io.records import load_records

    root = Path(__file__).resolve().parents[2]
    data = root.parent / "shared/data/crm-opportunities/sales_pipeline.csv"
    if not data.exists():
        pytest.skip("shared CRM export not available")
    spec = load_spec(root / "models/crm-opportunities.toml")
    recs = load_records(data, spec)
    for month_end in ("2017-04-30", "2017-06-30", "2017-09-30"):
        as_of = dt.date.fromisoformat(month_end)
        assert detect_left_truncation(recs, spec, as_of) == dt.date(2017, 3, 1)
