"""forecast.nc / summary.csv follow the contract; writing is atomic; reading round-trips."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from engine_helpers import make_params, make_plan, random_open_units

from simengine.engine import Forecast, prepare, run_paths, simulate
from simengine.engine._sketch import REL_ERROR
from simengine.engine.blocks import scalar_names
from simengine.errors import InputError

STATS = ["mean", "sd", "p05", "p10", "p25", "p50", "p75", "p90", "p95"]
STAGES = ("mql", "sql", "opportunity", "won")
SOURCES = (
    "revenue_from_open",
    "revenue_from_new_mql",
    "revenue_from_new_sql",
    "revenue_from_new_opportunity",
)


@pytest.fixture(scope="module")
def fc_and_paths():
    params = make_params(
        rate=(15.0, 0.0, 0.5),
        dispersion=0.1,
        conversion_sd=0.03,
        open_units=random_open_units(100, 6, 3),
    )
    plan = make_plan(target=300_000.0, start_delay_days=7, horizon_days=120)
    fc = simulate(params, plan, paths=4_000, seed=12, block_size=1_000, threads=2)
    pm = run_paths(prepare(params, plan), 0, 4_000, seed=12)
    return fc, pm, plan


def test_summary_csv_shape(fc_and_paths) -> None:
    fc, _, _ = fc_and_paths
    s = fc.summary
    assert list(s.columns) == ["segment", "metric", "stat", "value"]
    assert list(dict.fromkeys(s.segment)) == ["smb", "mid", "ent", "total"]
    metrics = [
        "revenue",
        "attainment",
        "time_to_target_days",
        "coverage",
        "won_deals",
        "entered_mql",
        "entered_sql",
        "entered_opportunity",
        "entered_won",
        "revenue_from_open",
        "revenue_from_new_mql",
        "revenue_from_new_sql",
        "revenue_from_new_opportunity",
    ]
    assert list(dict.fromkeys(s.metric)) == metrics
    per = s[s.segment == "mid"].groupby("metric", sort=False)["stat"].apply(list)
    assert per["revenue"] == STATS
    assert per["attainment"] == [
        *STATS,
        "prob_hit",
        "prob_hit_se",
        "prob_within_5pct",
        "prob_within_5pct_se",
    ]
    assert per["time_to_target_days"] == [*STATS, "prob_reached"]


def test_dataset_contract(fc_and_paths) -> None:
    fc, _, plan = fc_and_paths
    ds = fc.dataset
    assert list(ds.segment.values) == ["smb", "mid", "ent", "total"]
    np.testing.assert_allclose(
        ds["quantile"].values, [0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.975]
    )
    dates = pd.DatetimeIndex(ds.date.values)
    assert dates[0] == pd.Timestamp(plan.start)
    assert dates[-1] == pd.Timestamp(plan.horizon_end)
    assert len(dates) == (plan.horizon_end - plan.start).days + 1
    weeks = pd.DatetimeIndex(ds.week.values)
    assert weeks[0] == pd.Timestamp(plan.start) + pd.Timedelta(days=6)
    assert weeks[-1] <= pd.Timestamp(plan.end)
    assert len(weeks) == 13
    assert ds["cum_revenue"].dims == ("segment", "date", "quantile")
    assert ds["cum_revenue_mean"].dims == ("segment", "date")
    assert ds["coverage"].dims == ("segment", "week", "quantile")
    assert ds["entered"].dims == ("segment", "stage", "quantile")
    assert ds["summary"].dims == ("segment", "metric", "stat")
    np.testing.assert_allclose(ds["target"].values, [300_000.0] * 3 + [900_000.0])
    for key in (
        "seed",
        "paths",
        "block_size",
        "source",
        "start",
        "end",
        "as_of",
        "horizon_end",
        "versions",
        "input_sha256",
        "sketch_rel_error",
    ):
        assert key in ds.attrs
    assert ds.attrs["paths"] == 4_000
    assert ds.attrs["sketch_rel_error"] == pytest.approx(REL_ERROR)


def test_numbers_match_the_paths(fc_and_paths) -> None:
    """Summary numbers equal exact statistics of the same paths (quantiles within the bound)."""
    fc, pm, _ = fc_and_paths
    s = fc.summary.set_index(["segment", "metric", "stat"])["value"]
    for g, seg in enumerate(["smb", "mid", "ent", "total"]):
        rev = pm.scalars[:, g, 0]
        assert s[seg, "revenue", "mean"] == pytest.approx(rev.mean(), rel=1e-12)
        assert s[seg, "revenue", "sd"] == pytest.approx(rev.std(ddof=1), rel=1e-9)
        for stat, q in (("p05", 0.05), ("p50", 0.5), ("p95", 0.95)):
            exact = np.quantile(rev, q, method="inverted_cdf")
            assert abs(s[seg, "revenue", stat] - exact) <= REL_ERROR * exact * (1 + 1e-9)
        att = pm.scalars[:, g, 1]
        assert s[seg, "attainment", "prob_hit"] == np.mean(att >= 1)
        assert s[seg, "attainment", "prob_within_5pct"] == np.mean(att >= 0.95)
        ttt = pm.time_to_target[:, g]
        assert s[seg, "time_to_target_days", "prob_reached"] == np.isfinite(ttt).mean()
        assert s[seg, "time_to_target_days", "p50"] == np.quantile(ttt, 0.5, method="inverted_cdf")
        won = pm.scalars[:, g, 3]
        assert s[seg, "won_deals", "p90"] == np.quantile(won, 0.9, method="inverted_cdf")
        for name in SOURCES:
            x = pm.scalars[:, g, scalar_names(STAGES).index(name)]
            assert s[seg, name, "mean"] == pytest.approx(x.mean(), rel=1e-12, abs=1e-9)
            assert s[seg, name, "sd"] == pytest.approx(x.std(ddof=1), rel=1e-9, abs=1e-9)
            exact = np.quantile(x, 0.9, method="inverted_cdf")
            assert abs(s[seg, name, "p90"] - exact) <= REL_ERROR * exact * (1 + 1e-9)
    cum = fc.dataset["cum_revenue"].sel(segment="total", quantile=0.5).values
    exact = np.quantile(pm.cum_revenue[:, 3], 0.5, axis=0, method="inverted_cdf")
    np.testing.assert_allclose(cum, exact, rtol=REL_ERROR * (1 + 1e-9))
    np.testing.assert_allclose(
        fc.dataset["cum_revenue_mean"].sel(segment="total").values,
        pm.cum_revenue[:, 3].mean(axis=0),
        rtol=1e-12,
    )
    cov = fc.dataset["coverage"].sel(segment="mid", quantile=0.9).values
    exact = np.quantile(pm.week_coverage[:, 1], 0.9, axis=0, method="inverted_cdf")
    np.testing.assert_allclose(cov, exact, rtol=REL_ERROR * (1 + 1e-9))


def test_write_read_roundtrip_and_atomic(fc_and_paths, tmp_path: Path) -> None:
    fc, _, _ = fc_and_paths
    out = fc.write(tmp_path / "fc")
    assert sorted(p.name for p in out.iterdir()) == ["forecast.nc", "summary.csv"]
    back = Forecast.read(out)
    pd.testing.assert_frame_equal(back.summary, fc.summary)
    xr.testing.assert_identical(back.dataset, fc.dataset)
    csv = pd.read_csv(out / "summary.csv")
    pd.testing.assert_frame_equal(csv, fc.summary)
    before = (out / "summary.csv").read_bytes()
    with pytest.raises(InputError, match="--force"):
        fc.write(out)
    assert (out / "summary.csv").read_bytes() == before
    fc.write(out, force=True)
    assert Forecast.read(out / "forecast.nc").summary.equals(fc.summary)
    assert [p.name for p in tmp_path.iterdir()] == ["fc"]  # no temporary left behind


def test_bad_plan_raises_input_error() -> None:
    params = make_params(rate=(5.0, 0.0, 0.0))
    plan = make_plan(("smb", "mid", "other"))
    with pytest.raises(InputError, match="other"):
        simulate(params, plan, paths=10, seed=1)
    plan = make_plan(new_units={"smb": {"won": 3.0}})
    with pytest.raises(InputError, match="entry stage"):
        simulate(params, plan, paths=10, seed=1)


def test_open_units_out_of_range_rejected() -> None:
    from simengine.params import OpenUnits

    for ou in (
        OpenUnits(np.array([6]), np.array([0]), np.array([1.0]), np.array([np.nan])),
        OpenUnits(np.array([0]), np.array([3]), np.array([1.0]), np.array([np.nan])),
        OpenUnits(np.array([0]), np.array([0]), np.array([-1.0]), np.array([np.nan])),
    ):
        with pytest.raises(ValueError, match="open units"):
            prepare(make_params(open_units=ou), make_plan())


def test_non_finite_parameters_rejected() -> None:
    params = make_params()
    bad = params.delay_mu.copy()
    bad[3, 1, 2] = np.nan
    with pytest.raises(ValueError, match="delay_mu"):
        prepare(params.with_arrays(delay_mu=bad), make_plan())
    rate = params.arrival_rate.copy()
    rate[0, 0, 0] = np.inf
    with pytest.raises(ValueError, match="arrival_rate"):
        prepare(params.with_arrays(arrival_rate=rate), make_plan())
