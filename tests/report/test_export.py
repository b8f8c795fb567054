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
    assert sorted(p.name for p in pq_dir.iterdir()) == sorted(f"{n}.parquet" for n in SCHEMAS)
    for name, schema in SCHEMAS.items():
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
    for name in SCHEMAS:
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
