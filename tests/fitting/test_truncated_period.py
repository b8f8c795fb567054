"""The left-truncated units' own drift period (delayed entry with a free offset).

A left-truncated export holds the units still open at its first recorded
exit ``T0`` (or entered later). The units that entered before ``T0`` are
the survivors of their cohorts; ``build_data(..., observed_from=T0)`` puts
them in period 0, ahead of the observed drift periods, and the conversion
model gives that period a free logit offset per step instead of tying it to
the next cohorts by a drift step. These tests build one-step funnels whose
cohorts before ``T0`` convert at another rate than the later ones, cut them
at ``T0``, and check

* the layout: period 0 holds exactly the survivors, the later periods
  exactly the units that entered from ``T0`` on; an export that is not
  truncated keeps the old layout;
* that the model's maximum a posteriori rate of the current cohorts is the
  later cohorts' rate, and the survivors' period the earlier one's, where
  the same model with the offset held at 0 (its prior sd 1e-4) must miss
  the current rate (power).
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np
import pandas as pd
import pymc as pm
import pytest

from simengine.config.spec import parse_spec
from simengine.fitting import conversion
from simengine.fitting.data import build_data
from simengine.fitting.priors import DEFAULT_PRIORS

SPEC = parse_spec(
    """
name = "trunc-period"
stages = ["opportunity", "won"]
segment_by = ["segment"]
pipeline_stage = "opportunity"
[model]
drift = true
arrival_trend = false
arrival_history_weeks = 13
""",
    source="trunc-period.toml",
)
START = dt.date(2024, 1, 1)
T0 = dt.date(2024, 8, 1)  # the cut export's first recorded exit
AS_OF = dt.date(2025, 6, 1)
LAST_ENTRY_DAY = 300
P_OLD, P_NEW = 0.85, 0.45  # win share of the cohorts before / from T0
DELAY_MU, DELAY_SIGMA = np.log(30.0), 0.8
LOSS_MU, LOSS_SIGMA = np.log(20.0), 0.8


def _cut_export(seed: int = 11, n: int = 12000) -> pd.DataFrame:
    """A complete cure-model export with a rate change at T0, cut at T0."""
    rng = np.random.default_rng(seed)
    day = rng.integers(0, LAST_ENTRY_DAY, n)
    entry = pd.Timestamp(START) + pd.to_timedelta(day, unit="D")
    p = np.where(entry < pd.Timestamp(T0), P_OLD, P_NEW)
    won = rng.random(n) < p
    delay = np.exp(rng.normal(DELAY_MU, DELAY_SIGMA, n))
    loss = np.exp(rng.normal(LOSS_MU, LOSS_SIGMA, n))
    exit_at = entry + pd.to_timedelta(np.floor(np.where(won, delay, loss)), unit="D")
    df = pd.DataFrame(
        {
            "id": [f"u{i}" for i in range(n)],
            "segment": np.where(rng.random(n) < 0.5, "a", "b"),
            "opportunity_at": entry.astype("datetime64[ns]"),
            "won_at": pd.Series(exit_at).where(won).astype("datetime64[ns]").to_numpy(),
            "lost_at": pd.Series(exit_at).where(~won).astype("datetime64[ns]").to_numpy(),
            "amount": np.where(won, np.exp(rng.normal(8.0, 0.5, n)), np.nan),
        }
    )
    closed = df["won_at"].fillna(df["lost_at"])
    return df.loc[closed.isna() | (closed >= pd.Timestamp(T0))].reset_index(drop=True)


@pytest.fixture(scope="module")
def cut() -> pd.DataFrame:
    return _cut_export()


def _units(d) -> np.ndarray:
    """Units per period: converted + lost + open, summed over cells and steps."""
    out = (d.n_converted + d.n_lost).sum(axis=(0, 1)).astype(np.float64)
    np.add.at(out, d.open_period, d.open_count)
    return out


def test_survivors_have_period_zero_to_themselves(cut):
    """Period 0 = the survivors (trunc groups), periods 1.. = entries from T0 on."""
    d = build_data(cut, SPEC, AS_OF, observed_from=T0)
    assert d.truncated_period
    n_surv = int((cut["opportunity_at"] < pd.Timestamp(T0)).sum())
    n_new = len(cut) - n_surv
    assert n_surv > 1000
    assert np.all(d.trunc_period == 0)
    per = _units(d)
    assert per[0] == n_surv == d.trunc_count.sum()
    assert per[1:].sum() == n_new
    # the observed periods are the drift periods of the entries from T0 on
    # (304 days before AS_OF: 4 periods of 91 days)
    span = (AS_OF - T0).days
    assert d.n_periods == 1 + int(min(np.floor(span / 91) + 1, 12))
    # drift off: one observed period after the survivors'
    d1 = build_data(cut, SPEC, AS_OF, observed_from=T0, drift=False)
    assert d1.truncated_period
    assert d1.n_periods == 2
    np.testing.assert_array_equal(_units(d1), [n_surv, n_new])
    # not truncated: no such period, every unit in the drift periods as before
    d2 = build_data(cut, SPEC, AS_OF, drift=False)
    assert not d2.truncated_period
    assert d2.n_periods == 1
    assert _units(d2)[0] == len(cut)


def _map_rates(d, priors) -> tuple[float, float]:
    """MAP of the current rate and the survivors' rate (mean over the two cells)."""
    model = conversion.build_model(d, priors)
    with model:
        mp = pm.find_MAP(progressbar=False, seed=1)
    by_period = np.asarray(mp["conversion_by_period"])[:, 0, :]
    return float(np.mean(by_period[:, -1])), float(np.mean(by_period[:, 0]))


@pytest.mark.slow
def test_current_rate_is_not_the_survivors(cut):
    """MAP rates against the truth; without the offset the current rate is biased.

    About 3,500 units entered from T0 on (all but the last weeks resolved):
    the sd of their win share is sqrt(0.45 * 0.55 / 3,500) = 0.0084, and the
    survivors' (about 2,000, conditioned on their survival to T0) about
    0.012. Tolerances: 4 sds (alpha about 1e-4 each, two-sided), 0.034 and
    0.05; the MAP's shrinkage to the prior (logit 0 +- 1.5 against
    thousands of units) is below 0.001. With the offset held at 0, the
    survivors' high rate leaks into the current one: it must miss P_NEW by
    more than twice the tolerance.
    """
    d = build_data(cut, SPEC, AS_OF, observed_from=T0, drift=False)
    p_new, p_old = _map_rates(d, DEFAULT_PRIORS)
    assert abs(p_new - P_NEW) < 0.034
    assert abs(p_old - P_OLD) < 0.05
    tied = dataclasses.replace(DEFAULT_PRIORS, truncated_offset_sd=1e-4)
    p_tied, _ = _map_rates(d, tied)
    assert abs(p_tied - P_NEW) > 2 * 0.034
