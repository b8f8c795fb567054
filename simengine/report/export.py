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
``deals``
    the per-deal outlook of the units open at the as-of date (when the
    forecast has it: ``deals.csv`` beside ``forecast.nc``), one row per unit:
    ``id``, ``segment``, ``cell``, ``stage`` (str), ``age_days``, ``amount``
    (float64; the unit's own, else its cell's mean won deal),
    ``amount_known`` (bool), ``p_won_in_period``, ``p_lost_in_period``,
    ``p_open_at_period_end`` (float64, summing to 1),
    ``expected_revenue_in_period`` (float64), ``close_date_p50`` (date: the
    median close date given a win within the horizon; null if none). See
    :mod:`simengine.engine.outlook`.
``sources``
    revenue won in the period by source (when the forecast has the engine's
    ``revenue_from_*`` metrics), one row per (segment, source): ``segment``,
    ``source`` (``open`` or ``new_<entry_stage>``), ``origin`` (``existing
    pipeline`` or ``new``), ``channel`` (``marketing`` for new units entering
    at the first stage, ``sales`` at a later one, empty for the existing
    pipeline), ``label`` (str), ``mean``, ``p10``, ``p50``, ``p90``,
    ``share_of_mean_revenue`` (float64). The means of a segment's sources add
    up to its mean revenue; the quantiles are each source's own. See
    :mod:`simengine.report.sources`.

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
from simengine.report.data import read_deals, read_forecast
from simengine.report.sources import sources_table

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
    "deals": pa.schema([("id", pa.string()), ("segment", pa.string()), ("cell", pa.string()),
                        ("stage", pa.string()), ("age_days", pa.float64()),
                        ("amount", pa.float64()), ("amount_known", pa.bool_()),
                        ("p_won_in_period", pa.float64()), ("p_lost_in_period", pa.float64()),
                        ("p_open_at_period_end", pa.float64()),
                        ("expected_revenue_in_period", pa.float64()),
                        ("close_date_p50", pa.date32())]),
    "sources": pa.schema([("segment", pa.string()), ("source", pa.string()),
                          ("origin", pa.string()), ("channel", pa.string()),
                          ("label", pa.string()), ("mean", pa.float64()), ("p10", pa.float64()),
                          ("p50", pa.float64()), ("p90", pa.float64()),
                          ("share_of_mean_revenue", pa.float64())]),
}


def _tidy(da: xr.DataArray, name: str) -> pd.DataFrame:
    return da.rename(name).to_dataframe().reset_index()


def export_tables(
    ds: xr.Dataset, deals: pd.DataFrame | None = None
) -> dict[str, pd.DataFrame]:
    """Turn a forecast dataset into its tidy tables (see module docstring).

    Parameters
    ----------
    ds : xarray.Dataset
        A forecast following the forecast.nc contract.
    deals : pandas.DataFrame, optional
        The forecast's per-deal outlook (``deals.csv``).

    Returns
    -------
    dict of str to pandas.DataFrame
        ``fan``, ``coverage``, ``funnel``, ``summary`` and, when given,
        ``deals``, and ``sources`` when the forecast has the
        ``revenue_from_*`` metrics; columns in :data:`SCHEMAS` order, dates as
        ``datetime.date``.
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
    if deals is not None:
        tables["deals"] = deals
    sources = sources_table(ds)
    if sources is not None:
        tables["sources"] = sources
    out = {}
    for name, df in tables.items():
        schema = SCHEMAS[name]
        df = df[schema.names].copy()
        for field in schema:
            if field.type == pa.date32():
                d = pd.to_datetime(df[field.name])
                df[field.name] = [None if pd.isna(v) else v.date() for v in d]
            elif field.type == pa.bool_():
                df[field.name] = df[field.name].astype(bool)
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
    base = Path(forecast_dir)
    base = base if base.is_dir() else base.parent
    tables = export_tables(ds, read_deals(base))
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
