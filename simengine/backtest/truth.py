"""What really happened in a period, computed from the full records file.

The truth of a backtest origin is computed by the same loader as the fit's
input (canonical records), from the *whole* file: closed-won revenue and deals
per reporting segment and in total, for units whose last-stage date falls in
the period.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from simengine.config.spec import FunnelSpec

__all__ = ["realised", "won_in"]


def won_in(records: pd.DataFrame, spec: FunnelSpec, first: dt.date, last: dt.date) -> pd.Series:
    """Boolean mask of units won on a day in ``[first, last]`` (inclusive)."""
    won = records[f"{spec.last_stage}_at"]
    lo = pd.Timestamp(first)
    hi = pd.Timestamp(last) + pd.Timedelta(days=1)
    return (won >= lo) & (won < hi)


def realised(
    records: pd.DataFrame, spec: FunnelSpec, start: dt.date, end: dt.date, segments: list[str]
) -> pd.DataFrame:
    """Closed-won revenue and deals per segment and ``total`` in a period.

    Parameters
    ----------
    records : DataFrame
        Canonical records (the full file, not an as-of view).
    spec : FunnelSpec
        The funnel spec.
    start, end : datetime.date
        First and last (inclusive) day of the period.
    segments : list of str
        Reporting segments to report (a segment with no wins gets 0).

    Returns
    -------
    DataFrame
        Index ``segments + ["total"]``, columns ``revenue`` and ``won_deals``.
    """
    mask = won_in(records, spec, start, end)
    won = records.loc[mask]
    by = won.groupby(spec.segment_column, observed=True)
    revenue = by["amount"].sum().reindex(segments, fill_value=0.0).astype(float)
    deals = by.size().reindex(segments, fill_value=0).astype(np.int64)
    out = pd.DataFrame({"revenue": revenue, "won_deals": deals})
    out.loc["total"] = [float(won["amount"].sum()), len(won)]
    out["won_deals"] = out["won_deals"].astype(np.int64)
    out.index.name = "segment"
    return out
