"""Trailing raw step rates: the naive numbers revenue teams look at.

For a window of ``window_days`` days ending on the as-of date, a step's raw
rate in a cell is ``converted / entered``: among units that entered the
step's from-stage (``stages[s-1]``) within the window, the share that had
entered ``stages[s]`` by the as-of date. Open units count as not converted,
which is why these numbers are biased low for recent cohorts; the fitted
cure model is not.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from simengine.config.spec import FunnelSpec
from simengine.fitting.data import cell_labels, known_at, relative_days

__all__ = ["raw_rates"]


def raw_rates(
    df: pd.DataFrame,
    spec: FunnelSpec,
    as_of: dt.date,
    window_days: int,
    cells: tuple[str, ...] | None = None,
) -> pd.DataFrame:
    """Return trailing raw step rates per cell and step.

    Parameters
    ----------
    df : pandas.DataFrame
        Canonical records (not modified); anything after ``as_of`` is ignored.
    spec : FunnelSpec
        The funnel.
    as_of : datetime.date
        End of the window (inclusive).
    window_days : int
        Window length in days (364 for four quarters, 91 for 13 weeks).
    cells : tuple of str, optional
        Cells to report (default: every cell present, sorted).

    Returns
    -------
    pandas.DataFrame
        Columns ``cell``, ``step``, ``entered``, ``converted`` (int64) and
        ``rate`` (float64; NaN where nothing entered), one row per cell and
        step, in cell then step order.
    """
    known = known_at(df, spec, as_of)
    label = cell_labels(known, spec) if len(known) else pd.Series([], dtype=str)
    if cells is None:
        cells = tuple(sorted(set(label)))
    rel = {c: relative_days(known[c], as_of) for c in spec.stage_columns}
    rows = []
    lab = label.to_numpy()
    for cell in cells:
        in_cell = lab == cell
        for j, step in enumerate(spec.steps, start=1):
            t_from = rel[spec.stage_columns[j - 1]]
            entered = in_cell & (t_from > -window_days) & (t_from <= 0)
            conv = entered & ~np.isnan(rel[spec.stage_columns[j]])
            n_e, n_c = int(entered.sum()), int(conv.sum())
            rows.append((cell, step, n_e, n_c, n_c / n_e if n_e else np.nan))
    out = pd.DataFrame(rows, columns=["cell", "step", "entered", "converted", "rate"])
    return out.astype({"entered": "int64", "converted": "int64", "rate": "float64"})
