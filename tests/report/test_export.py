from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from report_sim import QUANTILES, START, SimPaths

from simengine.cli import main
from simengine.errors import InputError
from simengine.io.provenance import file_sha256
from simengine.report.export import SCHEMAS, export_tables, write_exports


def test_tables_match_the_simulated_paths(forecast_ds, sim_paths: SimPaths):
    t = export_tables(forecast_ds)
    fan = t["fan"]
    # one row per (segment, date, quantile)
    assert len(fan) == 4 * forecast_ds.sizes["date"] * len(QUANTILES)
    assert not fan.duplicated(["segment", "date", "quantile"]).any()
    # Rows land on the right (segment, date, quantile): recompute from the raw paths.
    day = 30
    row = fan[(fan.segment == "mid") & (fan.date == START + dt.timedelta(days=day))
              & (fan["quantile"] == 0.9)]
    assert row.cum_revenue.item() == pytest.approx(np.quantile(sim_paths.cum["mid"][:, day], 0.9))
    assert row.cum_revenue_mean.item() == pytest.approx(sim_paths.cum["mid"][:, day].mean())
    assert row.target.item() == 400_000.0
    # total is the joint sum of segment paths, not a sum of quantiles
    tot = fan[(fan.segment == "total") & (fan.date == START + dt.timedelta(days=day))
              & (fan["quantile"] == 0.5)].cum_revenue.item()
    joint = sum(sim_paths.cum[s][:, day] for s in ("smb", "mid", "ent"))
    assert tot == pytest.approx(np.quantile(joint, 0.5))
    cov = t["coverage"]
    first = cov[(cov.segment == "ent") & (cov["quantile"] == 0.5)].sort_values("week_end")
    assert first.week_end.iloc[0] == START + dt.timedelta(days=6)
    assert first.coverage.iloc[0] == pytest.approx(np.median(sim_paths.coverage["ent"][:, 0]))
    fun = t["funnel"]
    assert fun[(fun.segment == "smb") & (fun.stage == "sql") & (fun["quantile"] == 0.5)
               ].units.item() == pytest.approx(np.median(sim_paths.entered["smb"][:, 1]))
    summ = t["summary"]
    assert not summ.value.isna().any()
    assert set(summ.columns) == {"segment", "metric", "stat", "value"}


def test_parquet_and_csv_files(forecast_dir):
    before = file_sha256(forecast_dir / "forecast.nc")
    pq_dir = write_exports(forecast_dir, "parquet")
    csv_dir = write_exports(forecast_dir, "csv")
    assert file_sha256(forecast_dir / "forecast.nc") == before  # input untouched
    # no deals.csv beside this forecast, and no revenue_from_* metrics in it (an older
    # forecast): no deals or sources table (tests/report/test_sources.py has the latter)
    names = [n for n in SCHEMAS if n not in ("deals", "sources")]
    assert sorted(p.name for p in pq_dir.iterdir()) == sorted(f"{n}.parquet" for n in names)
    for name in names:
        schema = SCHEMAS[name]
        got = pq.read_schema(pq_dir / f"{name}.parquet")
        assert got.names == schema.names
        assert [str(f.type) for f in got] == [str(f.type) for f in schema]
        a = pd.read_parquet(pq_dir / f"{name}.parquet")
        b = pd.read_csv(csv_dir / f"{name}.csv")
        assert len(a) == len(b)
        assert list(b.columns) == schema.names
    fan_csv = pd.read_csv(csv_dir / "fan.csv")
    assert fan_csv.date.iloc[0] == START.isoformat()  # real dates, not offsets
    # inf survives the CSV round trip (time to target not reached)
    s = pd.read_csv(csv_dir / "summary.csv")
    assert np.isinf(s[s.metric == "time_to_target_days"].value).any()


def test_export_is_reproducible(forecast_dir, tmp_path):
    a = write_exports(forecast_dir, "csv", tmp_path / "a")
    b = write_exports(forecast_dir, "csv", tmp_path / "b")
    for name in (n for n in SCHEMAS if n not in ("deals", "sources")):
        assert file_sha256(a / f"{name}.csv") == file_sha256(b / f"{name}.csv")


def test_bad_input_writes_nothing(forecast_dir, tmp_path):
    with pytest.raises(InputError, match="must be one of"):
        write_exports(forecast_dir, "xlsx")
    with pytest.raises(InputError, match="no forecast here"):
        write_exports(tmp_path / "missing", "csv", tmp_path / "out")
    assert not (tmp_path / "out").exists()
    write_exports(forecast_dir, "csv")
    with pytest.raises(InputError, match="--force"):
        write_exports(forecast_dir, "csv")
    write_exports(forecast_dir, "csv", force=True)


def test_cli_export(forecast_dir, capsys):
    assert main(["export", str(forecast_dir), "--format", "csv"]) == 0
    assert "fan.csv" in capsys.readouterr().out
    assert main(["export", str(forecast_dir), "--format", "json"]) == 2


def test_outputs_are_readable_by_others(forecast_dir):
    """tempfile makes 0600 files and 0700 dirs; the outputs follow the umask instead."""
    import os

    mask = os.umask(0o022)
    try:
        out = write_exports(forecast_dir, "csv")
        assert out.stat().st_mode & 0o777 == 0o755
    finally:
        os.umask(mask)


_PLAN = """start = 2027-01-04
end = 2027-04-04
as_of = 2027-01-04
[targets]
smb = 600000
mid = 1500000
ent = 2000000
"""

_RECORDS = """id,segment,channel,mql_at,sql_at,opportunity_at,won_at,lost_at,amount
A-1,mid,web,2026-11-01,2026-11-05,2026-11-20,,,25000
A-2,mid,out,2026-12-01,2026-12-10,,,,
A-3,smb,web,2026-12-20,,,,,
A-4,ent,web,2026-12-01,2026-12-03,2026-12-10,,,150000
A-5,ent,web,2026-10-01,2026-10-03,2026-10-10,2026-12-20,,90000
"""


def test_simulate_writes_deals_and_export_has_them(models_dir, tmp_path):
    """The per-deal outlook from `simulate --pipeline` to deals.parquet (issue 19)."""
    import xarray as xr

    plan = tmp_path / "plan.toml"
    plan.write_text(_PLAN)
    rec = tmp_path / "r.csv"
    rec.write_text(_RECORDS)
    out = tmp_path / "fc"
    argv = ["simulate", "--assumptions", str(models_dir / "assumptions.toml"), "--plan",
            str(plan), "--paths", "400", "--seed", "7", "--block-size", "200", "--out", str(out),
            "--pipeline", str(rec), "--model", str(models_dir / "demo.toml")]
    assert main(argv) == 0
    deals = pd.read_csv(out / "deals.csv")
    assert list(deals["id"]) == ["A-1", "A-2", "A-3", "A-4"]  # A-5 was won before the as-of
    assert list(deals["stage"]) == ["opportunity", "sql", "mql", "opportunity"]
    assert deals.loc[3, "amount"] == 150000.0
    assert bool(deals.loc[3, "amount_known"]) is True
    assert bool(deals.loc[1, "amount_known"]) is False
    with xr.open_dataset(out / "forecast.nc", group="deals", engine="h5netcdf") as g:
        assert list(g["id"].values) == ["A-1", "A-2", "A-3", "A-4"]
    assert main(["export", str(out), "--format", "parquet"]) == 0
    table = pq.read_table(out / "export-parquet" / "deals.parquet")
    assert table.schema.equals(SCHEMAS["deals"])
    d = table.to_pandas()
    total = d["p_won_in_period"] + d["p_lost_in_period"] + d["p_open_at_period_end"]
    np.testing.assert_allclose(total, 1.0, rtol=0, atol=1e-12)
    assert (d[["p_won_in_period", "p_lost_in_period", "p_open_at_period_end"]] >= 0).all().all()
    assert main(["export", str(out), "--format", "csv"]) == 0
    csv = pd.read_csv(out / "export-csv" / "deals.csv")
    assert list(csv.columns) == SCHEMAS["deals"].names
