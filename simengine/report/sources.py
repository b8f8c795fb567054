"""Revenue by source: existing pipeline vs new deals, marketing- vs sales-sourced.

The engine splits each path's period revenue by where the won deal came
from (docs/contracts.md, ``summary.csv``): ``revenue_from_open`` (units open
at the as-of date) and ``revenue_from_new_<entry_stage>`` (units entering the
funnel at that stage during the simulation). Every won deal counts in exactly
one source, so the sources' means add up to the mean revenue; their
quantiles do not add up (a band is that source's own).

The labels a board reads:

* **existing pipeline**: ``revenue_from_open``;
* **new, marketing-sourced**: units entering at the first stage (the MQL of a
  B2B funnel: marketing creates it);
* **new, sales-sourced**: units entering at any later stage (sales creates
  the SQL or opportunity itself, with no MQL before it).

An entry stage no unit enters (mean, P10 and P90 all 0) is left out: it
cannot source revenue.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import xarray as xr

__all__ = ["COLUMNS", "PREFIX", "sources_table"]

#: Prefix of the engine's revenue-by-source metrics.
PREFIX = "revenue_from_"

#: Columns of :func:`sources_table` (and of the ``sources`` export table), in order.
COLUMNS = (
    "segment",
    "source",
    "origin",
    "channel",
    "label",
    "mean",
    "p10",
    "p50",
    "p90",
    "share_of_mean_revenue",
)


def _label(source: str, first_stage: str) -> tuple[str, str, str]:
    """``(origin, channel, label)`` of a source (the metric name without the prefix)."""
    if source == "open":
        return "existing pipeline", "", "existing pipeline (open at the as-of date)"
    stage = source.removeprefix("new_")
    if stage == first_stage:
        return "new", "marketing", f"new, marketing-sourced (entering at {stage})"
    return "new", "sales", f"new, sales-sourced (entering at {stage})"


def sources_table(ds: xr.Dataset) -> pd.DataFrame | None:
    """Mean, P10/P50/P90 and share of revenue of every source, per segment (and total).

    Parameters
    ----------
    ds : xarray.Dataset
        A forecast (``forecast.nc``) with ``summary(segment, metric, stat)``.

    Returns
    -------
    pandas.DataFrame or None
        Columns :data:`COLUMNS`, one row per (segment, source), segments in the
        forecast's order and sources in its metric order (existing pipeline
        first); None when the forecast has no ``revenue_from_*`` metrics (a
        forecast written before the engine split revenue by source).
        ``share_of_mean_revenue`` is the source's mean over the segment's mean
        revenue (NaN when that is 0).
    """
    metrics = [str(m) for m in ds["metric"].values]
    found = [m for m in metrics if m.startswith(PREFIX)]
    if not found:
        return None
    if f"{PREFIX}open" in found:  # existing pipeline first
        found.remove(f"{PREFIX}open")
        found.insert(0, f"{PREFIX}open")
    first_stage = str(ds["stage"].values[0]) if "stage" in ds.coords else ""
    summ = ds["summary"]
    stats = [str(s) for s in ds["stat"].values]
    rows = []
    for seg in (str(s) for s in ds["segment"].values):
        revenue = float(summ.sel(segment=seg, metric="revenue", stat="mean"))
        for m in found:
            source = m.removeprefix(PREFIX)
            v = {st: (float(summ.sel(segment=seg, metric=m, stat=st)) if st in stats else math.nan)
                 for st in ("mean", "p10", "p50", "p90")}
            if source != "open" and all(v[st] == 0 for st in ("mean", "p10", "p90")):
                continue  # nobody enters there
            origin, channel, label = _label(source, first_stage)
            share = v["mean"] / revenue if revenue > 0 else math.nan
            rows.append({"segment": seg, "source": source, "origin": origin, "channel": channel,
                         "label": label, **v, "share_of_mean_revenue": share})
    out = pd.DataFrame(rows, columns=list(COLUMNS))
    for c in ("mean", "p10", "p50", "p90", "share_of_mean_revenue"):
        out[c] = out[c].astype(np.float64)
    return out
