"""explain_origin: closed forms of a hand-written posterior file, and the realised side."""

from __future__ import annotations

import datetime as dt
import json

import arviz as az
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy import stats

from simengine.backtest.explain import explain_origin
from simengine.config.spec import parse_spec

SPEC = parse_spec(
    'name = "x"\nstages = ["opportunity", "won"]\nsegment_by = ["segment"]\n'
    'pipeline_stage = "opportunity"\n',
    source="x.toml",
)
AS_OF = dt.date(2024, 3, 31)
H = 91
P, MU, SG = 0.6, np.log(30.0), 0.7
RATE = 14.0  # per week
LMU, LSG = np.log(20.0), 0.9
AMU, ASG = np.log(1000.0), 0.2


def _posterior(path, *, loss: bool, ages=(5.0, 40.0), amounts=(np.nan, 2500.0)):
    """A one-cell posterior in the contract's layout: 1 chain, 2 identical draws."""

    def var(v, dims):
        a = np.full((1, 2, *([1] * len(dims))), v, dtype=np.float64)
        return (("chain", "draw", *dims), a)

    cs = ("cell", "step")
    ce = ("cell", "entry_stage")
    data = {
        "conversion": var(P, cs),
        "delay_mu": var(MU, cs),
        "delay_sigma": var(SG, cs),
        "arrival_rate": var(RATE, ce),
        "arrival_dispersion": var(0.0, ce),
        "deal_size_mu": var(AMU, ("cell",)),
        "deal_size_sigma": var(ASG, ("cell",)),
    }
    if loss:
        data["loss_mu"] = var(LMU, cs)
        data["loss_sigma"] = var(LSG, cs)
    post = xr.Dataset(
        data,
        coords={
            "chain": [0],
            "draw": [0, 1],
            "cell": ["a"],
            "step": ["won"],
            "entry_stage": ["opportunity"],
        },
        attrs={
            "simengine_stages": json.dumps(list(SPEC.stages)),
            "simengine_as_of": AS_OF.isoformat(),
        },
    )
    const = xr.Dataset(
        {
            "open_cell": ("unit", np.array(["a"] * len(ages), dtype=object)),
            "open_stage": ("unit", np.array(["opportunity"] * len(ages), dtype=object)),
            "open_age_days": ("unit", np.array(ages)),
            "open_amount": ("unit", np.array(amounts)),
        }
    )
    az.InferenceData(posterior=post, constant_data=const).to_netcdf(str(path), engine="h5netcdf")
    return path


def _records() -> pd.DataFrame:
    o = pd.Timestamp(AS_OF)
    d = pd.Timedelta(days=1)
    return pd.DataFrame(
        {
            "id": ["old-won", "new-won", "new-open", "late-won", "old-lost"],
            "segment": ["a"] * 5,
            "opportunity_at": [o - 10 * d, o + 5 * d, o + 20 * d, o + 80 * d, o - 50 * d],
            "won_at": [o + 3 * d, o + 30 * d, pd.NaT, o + 95 * d, pd.NaT],
            "lost_at": [pd.NaT, pd.NaT, pd.NaT, pd.NaT, o + 2 * d],
            "amount": [100.0, 300.0, np.nan, 50.0, np.nan],
        }
    )


def _int_cdf(h: float) -> float:
    """Closed form of int_0^h F(u) du for the lognormal delay."""
    f = stats.norm.cdf
    return h * f((np.log(h) - MU) / SG) - np.exp(MU + SG**2 / 2) * f((np.log(h) - MU - SG**2) / SG)


@pytest.mark.parametrize("loss", [True, False])
def test_expectations_are_the_closed_forms(tmp_path, loss):
    t = explain_origin(_records(), SPEC, _posterior(tmp_path / "p.nc", loss=loss), H)
    row = t[t["cell"] == "a"].iloc[0]
    assert row["arrivals_model"] == pytest.approx(RATE / 7 * H, rel=1e-12)
    # midpoint rule on 182 nodes of a smooth integrand: relative error << 1e-3
    assert row["wins_new_model"] == pytest.approx(RATE / 7 * P * _int_cdf(H), rel=1e-3)
    ln = stats.lognorm(SG, scale=np.exp(MU))
    lg = stats.lognorm(LSG, scale=np.exp(LMU))
    exp_open = 0.0
    exp_rev_open = 0.0
    deal = np.exp(AMU + ASG**2 / 2)
    for a, amt in ((5.0, deal), (40.0, 2500.0)):
        s_f = ln.sf(a)
        pc = P * s_f / (P * s_f + (1 - P) * lg.sf(a)) if loss else P * s_f / (1 - P * ln.cdf(a))
        w = pc * (ln.cdf(a + H) - ln.cdf(a)) / s_f
        exp_open += w
        exp_rev_open += w * amt
    assert row["wins_open_model"] == pytest.approx(exp_open, rel=1e-9)
    assert row["deal_model"] == pytest.approx(deal, rel=1e-12)
    expect_rev = RATE / 7 * P * _int_cdf(H) * deal + exp_rev_open
    assert row["revenue_model"] == pytest.approx(expect_rev, rel=1e-3)


def test_realised_side_counts_the_period(tmp_path):
    t = explain_origin(_records(), SPEC, _posterior(tmp_path / "p.nc", loss=True), H)
    row = t[t["cell"] == "a"].iloc[0]
    assert row["arrivals_real"] == 3  # entered in (as-of, as-of + 91]
    assert row["wins_new_real"] == 1  # new-won (late-won closes after the period)
    assert row["wins_open_real"] == 1  # old-won
    assert row["revenue_real"] == 400.0
    assert row["deal_real"] == 200.0
    assert row["open_units"] == 2
    total = t[t["cell"] == "total"].iloc[0]
    assert total["revenue_real"] == 400.0


def test_multi_step_funnel_is_refused(tmp_path):
    spec = parse_spec(
        'name = "y"\nstages = ["sql", "opportunity", "won"]\nsegment_by = ["segment"]\n',
        source="y.toml",
    )
    with pytest.raises(ValueError, match="one-step"):
        explain_origin(_records(), spec, tmp_path / "none.nc", H)
