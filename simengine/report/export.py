"""Tidy tables of a forecast for BI tools: Parquet or CSV, no code needed to read.

``simengine export DIR --format parquet|csv`` writes, into ``DIR/export-<format>/``
(atomically: all files or none):

``fan``
    one row per (segment, date, quantile): ``segment`` (str), ``date``
    (calendar date), ``quantile`` (float64, e.g. 0.1), ``cum_revenue``
    (float64: closed-won revenue from period start to the end of that day, at
    that quantile over paths), ``cum_revenue_mean`` (float64, the mean path;
    repeated on each quantile row), ``target`` (float64).
``coverage``
    one row per (segment, week, quantile): ``segment``, ``week_end`` (date),
    ``quantile``, ``coverage`` (float64: open pipeline value at the week end
    / the period target), ``target``.
``funnel``
    one row per (segment, stage, quantile): ``segment``, ``stage``,
    ``quantile``, ``units`` (float64: units entering the stage in the period).
``summary``
    the forecast's summary: ``segment``, ``metric``, ``stat``, ``value``
    (float64; ``inf`` where a time to target is not reached), with missing
    combinations dropped.

Dates are real dates (Parquet ``date32``; ISO ``YYYY-MM-DD`` in CSV), never
day offsets. ``total`` is a segment like the others (simulated jointly).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import xarray as xr

from simengine.errors import InputError
from simengine.io.atomic import atomic_dir, umask_mode
from simengine.report.data import read_forecast

__all__ = ["FORMATS", "SCHEMAS", "export_tables", "write_exports"]

FORMATS = ("parquet", "csv")

#: Column names and Arrow types of every exported table (the documented contract).
SCHEMAS: dict[str, pa.Schema] = {
    "fan": pa.schema([("segment", pa.string()), ("date", pa.date32()),
                      ("quantile", pa.float64()), ("cum_revenue", pa.float64()),
                      ("cum_revenue_mean", pa.float64()), ("target", pa.float64())]),
    "coverage": pa.schema([("segment", pa.string()), ("week_end", pa.date32()),
                           ("quantile", pa.float64()), ("coverage", pa.float64()),
                           ("target", pa.float64())]),
    "funnel": pa.schema([("segment", pa.string()), ("stage", pa.string()),
                         ("quantile", pa.float64()), ("units", pa.float64())]),
    "summary": pa.schema([("segment", pa.string()), ("metric", pa.string()),
                          ("stat", pa.string()), ("value", pa.float64())]),
}


def _tidy(da: xr.DataArray, name: str) -> pd.DataFrame:
    return da.rename(name).to_dataframe().reset_index()


def export_tables(ds: xr.Dataset) -> dict[str, pd.DataFrame]:
    """Turn a forecast dataset into the four tidy tables (see module docstring).

    Parameters
    ----------
    ds : xarray.Dataset
        A forecast following the forecast.nc contract.

    Returns
    -------
    dict of str to pandas.DataFrame
        ``fan``, ``coverage``, ``funnel``, ``summary``; columns in
        :data:`SCHEMAS` order, dates as ``datetime.date``.
    """
    target = ds["target"].to_series()
    fan = _tidy(ds["cum_revenue"].transpose("segment", "date", "quantile"), "cum_revenue")
    mean = _tidy(ds["cum_revenue_mean"], "cum_revenue_mean")
    fan = fan.merge(mean, on=["segment", "date"], how="left", validate="many_to_one")
    fan["target"] = fan["segment"].map(target).astype(np.float64)
    cov = _tidy(ds["coverage"].transpose("segment", "week", "quantile"), "coverage")
    cov = cov.rename(columns={"week": "week_end"})
    cov["target"] = cov["segment"].map(target).astype(np.float64)
    funnel = _tidy(ds["entered"].transpose("segment", "stage", "quantile"), "units")
    summary = _tidy(ds["summary"].transpose("segment", "metric", "stat"), "value")
    summary = summary.dropna(subset=["value"]).reset_index(drop=True)
    tables = {"fan": fan, "coverage": cov, "funnel": funnel, "summary": summary}
    out = {}
    for name, df in tables.items():
        schema = SCHEMAS[name]
        df = df[schema.names].copy()
        for field in schema:
            if field.type == pa.date32():
                df[field.name] = pd.to_datetime(df[field.name]).dt.date
            elif field.type == pa.string():
                df[field.name] = df[field.name].astype(str)
            else:
                df[field.name] = df[field.name].astype(np.float64)
        out[name] = df
    return out


def write_exports(
    forecast_dir: str | Path,
    fmt: str = "parquet",
    out: str | Path | None = None,
    *,
    force: bool = False,
) -> Path:
    """Write the tidy tables of a forecast directory; return the output directory.

    Parameters
    ----------
    forecast_dir : str or Path
        Directory written by ``simengine simulate``.
    fmt : {"parquet", "csv"}
        File format.
    out : str or Path, optional
        Output directory; default ``forecast_dir / f"export-{fmt}"``.
    force : bool
        Replace an existing output directory.

    Raises
    ------
    InputError
        Unknown format, missing or malformed forecast, or existing output
        without ``force``. Nothing is written then.
    """
    if fmt not in FORMATS:
        raise InputError.single("--format", f"must be one of {list(FORMATS)}", value=fmt)
    ds = read_forecast(forecast_dir)
    tables = export_tables(ds)
    base = Path(forecast_dir)
    base = base if base.is_dir() else base.parent
    target = Path(out) if out is not None else base / f"export-{fmt}"
    with atomic_dir(target, force=force) as tmp:
        for name, df in tables.items():
            if fmt == "parquet":
                table = pa.Table.from_pandas(df, schema=SCHEMAS[name], preserve_index=False)
                pq.write_table(table, tmp / f"{name}.parquet")
            else:
                df.to_csv(tmp / f"{name}.csv", index=False, float_format="%.10g")
        tmp.chmod(umask_mode(0o777))  # mkdtemp makes 0700; BI tools run as other users
    return target
