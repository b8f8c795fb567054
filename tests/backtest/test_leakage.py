"""No leakage: records dated after an origin change nothing the origin's forecast sees.

A canary file is the original synthetic file plus (a) a unit entering after
the origin in an existing cell, won with an absurd amount, (b) a unit in a
cell that only exists after the origin, and (c) later closes of units open
at the origin rewritten (earlier loss dates, all still after the origin).
Both files go through the backtest's own path (written to CSV, read by
``load_records``, cut by ``as_of_view`` at the origin). Every input of the
fit (sufficient statistics, open-unit snapshot, raw rates) and every
baseline must be bitwise the same; the slow test runs the real fit and
simulation at the origin and compares the posterior draws and the forecast
quantiles bitwise.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np
import pandas as pd
import pytest

from simengine.backtest.baselines import BASELINES
from simengine.config.spec import load_spec
from simengine.fitting.data import build_data
from simengine.fitting.raw_rates import raw_rates
from simengine.io.records import as_of_view, load_records
from simengine.synth import SynthConfig, generate

ORIGIN = SynthConfig().as_of - dt.timedelta(days=35)


def _canary(records: pd.DataFrame) -> pd.DataFrame:
    df = records.copy()
    o = pd.Timestamp(ORIGIN)
    day = pd.Timedelta(days=1)
    new = pd.DataFrame(
        {
            "id": ["CANARY-1", "CANARY-2"],
            "segment": ["smb", "zzz"],
            "channel": ["inbound", "inbound"],
            "mql_at": [o + 1 * day, o + 2 * day],
            "sql_at": [o + 3 * day, o + 4 * day],
            "opportunity_at": [o + 5 * day, pd.NaT],
            "won_at": [o + 6 * day, pd.NaT],
            "lost_at": [pd.NaT, o + 9 * day],
            "amount": [1e12, np.nan],
        }
    )
    # Units open at the origin that were lost later: move the loss to the day
    # after the origin (still after it, so still unknown at the origin).
    last_stage = df[["mql_at", "sql_at", "opportunity_at", "won_at"]].max(axis=1)
    later_loss = (df["lost_at"] > o + day) & (last_stage <= o)
    assert later_loss.sum() > 10  # the canary touches real units
    df.loc[later_loss, "lost_at"] = o + day
    return pd.concat([df, new], ignore_index=True)


@pytest.fixture(scope="module")
def files(tmp_path_factory, models_dir):
    spec = load_spec(models_dir / "demo.toml")
    records = generate(11, weeks=30).records
    d = tmp_path_factory.mktemp("leak")
    plain, canary = d / "plain.csv", d / "canary.csv"
    records.to_csv(plain, index=False)
    _canary(records).to_csv(canary, index=False)
    return spec, load_records(plain, spec), load_records(canary, spec)


def _same(a: object, b: object, name: str) -> None:
    if isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray), name
        assert a.dtype == b.dtype, name
        assert a.shape == b.shape, name
        assert np.array_equal(a, b, equal_nan=a.dtype.kind == "f"), name
    elif isinstance(a, pd.DataFrame):
        pd.testing.assert_frame_equal(a, b, check_exact=True, obj=name)
    else:
        assert a == b, name


def test_canary_is_in_the_file(files):
    _spec, plain, canary = files
    assert len(canary) == len(plain) + 2
    assert "CANARY-1" in set(canary["id"])
    assert (canary["lost_at"] != plain.reindex(canary.index)["lost_at"]).any()


def test_fit_inputs_are_bitwise_unchanged(files):
    spec, plain, canary = files
    kp, kc = as_of_view(plain, spec, ORIGIN), as_of_view(canary, spec, ORIGIN)
    for known_p, known_c in ((kp, kc), (plain, canary)):  # via the view, and the fit's own cut
        dp = build_data(known_p, spec, ORIGIN)
        dc = build_data(known_c, spec, ORIGIN)
        for f in dataclasses.fields(dp):
            _same(getattr(dp, f.name), getattr(dc, f.name), f.name)
        for days in (91, 364):
            _same(
                raw_rates(known_p, spec, ORIGIN, days, cells=dp.cells),
                raw_rates(known_c, spec, ORIGIN, days, cells=dc.cells),
                f"raw_rates {days}",
            )
    # Control: a month after the origin the canary is visible, so the
    # comparison above can fail.
    later = ORIGIN + dt.timedelta(days=30)
    dl_p, dl_c = build_data(plain, spec, later), build_data(canary, spec, later)
    assert dl_c.cells != dl_p.cells or not np.array_equal(dl_c.n_lost, dl_p.n_lost)
    assert dl_c.deal_sum_log.sum() > dl_p.deal_sum_log.sum()
    # The view itself: same rows, same values (the new units are dropped).
    pd.testing.assert_frame_equal(
        kp.reset_index(drop=True), kc.reset_index(drop=True), check_exact=True
    )


def test_baselines_are_bitwise_unchanged(files):
    spec, plain, canary = files
    kp, kc = as_of_view(plain, spec, ORIGIN), as_of_view(canary, spec, ORIGIN)
    segments = ["ent", "mid", "smb"]
    for name, baseline in BASELINES.items():
        fp = baseline(kp, spec, ORIGIN, 91, segments)
        fc = baseline(kc, spec, ORIGIN, 91, segments)
        for seg in [*segments, "total"]:
            _same(fp[seg].values, fc[seg].values, f"{name} {seg}")


@pytest.mark.slow
def test_fit_and_forecast_are_bitwise_unchanged(files, tmp_path, no_blas_probe):
    # The real pipeline at the origin (fit with short sampler settings, engine
    # run): the posterior draws and the forecast quantiles must be identical.
    import xarray as xr

    from simengine.backtest.run import BacktestConfig, _plan_for, simengine_forecaster

    spec, plain, canary = files
    cfg = BacktestConfig(period_days=28, paths=20_000, seed=5)
    fc = simengine_forecaster(cfg, fit_overrides={"draws": 60, "tune": 60, "chains": 2})
    plan = _plan_for(ORIGIN, cfg.period_days, dict.fromkeys(("ent", "mid", "smb"), 1.0))
    out = {}
    for name, df in (("plain", plain), ("canary", canary)):
        work = tmp_path / name
        work.mkdir()
        out[name] = fc(as_of_view(df, spec, ORIGIN), spec, plan, work)
    for seg, q in out["plain"].items():
        _same(q.values, out["canary"][seg].values, f"forecast {seg}")
    for group in ("posterior", "constant_data"):
        a = xr.open_dataset(tmp_path / "plain" / "posterior.nc", group=group, engine="h5netcdf")
        b = xr.open_dataset(tmp_path / "canary" / "posterior.nc", group=group, engine="h5netcdf")
        with a, b:
            assert set(a.data_vars) == set(b.data_vars)
            for v in a.data_vars:
                _same(a[v].values, b[v].values, f"{group}.{v}")
