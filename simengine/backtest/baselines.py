"""The methods revenue teams use today, scored the same way as simengine.

Each baseline sees only what was known at the origin (an as-of view of the
records) and returns one :class:`~simengine.backtest.scoring.QuantileForecast`
per reporting segment and ``total``:

``run_rate``
    Closed-won revenue of the last period-length window before the origin,
    repeated; its interval comes from the relative spread of earlier
    period-length windows (ending weekly over the trailing year, starting no
    earlier than the file's first recorded close): each earlier window's
    revenue divided by their mean, times the last window.
``spreadsheet``
    The planner's point math: every open unit times its stage's naive
    stage-to-won rate times the segment's average won deal, plus the period's
    new units (the plan's, else the trailing 13-week pace) times the naive
    entry-to-won rate times the average deal. No interval (a point forecast).
``weighted_pipeline``
    Open pipeline (units at or past the pipeline stage): each unit's own
    amount (else the segment's average deal) times its stage's naive
    stage-to-won rate. A point forecast.

"Naive" rates are what a CRM report shows: among units that entered a stage
in the trailing four quarters, the share that had been won by the origin
(open units count as not won). That bias is part of what is being scored.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

import numpy as np
import pandas as pd

from simengine.backtest.scoring import QuantileForecast
from simengine.config.spec import FunnelSpec

__all__ = ["BASELINES", "run_rate", "spreadsheet", "weighted_pipeline"]

_TRAILING_DAYS = 364
_PACE_DAYS = 91


def _last_reached(df: pd.DataFrame, spec: FunnelSpec) -> np.ndarray:
    """Index of the last stage each unit reached (-1 if none)."""
    reached = df[list(spec.stage_columns)].notna().to_numpy()
    idx = np.where(
        reached.any(axis=1), reached.shape[1] - 1 - np.argmax(reached[:, ::-1], axis=1), -1
    )
    return idx.astype(np.int64)


def _open_mask(df: pd.DataFrame, spec: FunnelSpec) -> np.ndarray:
    won = df[f"{spec.last_stage}_at"].notna().to_numpy()
    lost = df["lost_at"].notna().to_numpy()
    return ~won & ~lost


def _naive_to_won(df: pd.DataFrame, spec: FunnelSpec, origin: dt.date) -> pd.DataFrame:
    """Naive stage-to-won rates per segment (rows) and stage (columns)."""
    lo = pd.Timestamp(origin) - pd.Timedelta(days=_TRAILING_DAYS)
    won = df[f"{spec.last_stage}_at"].notna()
    seg = df[spec.segment_column]
    out = {}
    for stage in spec.stages[:-1]:
        entered = df[f"{stage}_at"] >= lo
        n = entered.groupby(seg).sum()
        k = (entered & won).groupby(seg).sum()
        out[stage] = (k / n.where(n > 0)).fillna(0.0)
    return pd.DataFrame(out)


def _average_deal(df: pd.DataFrame, spec: FunnelSpec, origin: dt.date) -> pd.Series:
    lo = pd.Timestamp(origin) - pd.Timedelta(days=_TRAILING_DAYS)
    won_at = df[f"{spec.last_stage}_at"]
    recent = df[won_at >= lo]
    if recent.empty:
        recent = df[won_at.notna()]
    overall = float(recent["amount"].mean()) if len(recent) else 0.0
    return recent.groupby(spec.segment_column)["amount"].mean().fillna(overall)


def _with_total(
    per_segment: Mapping[str, float], segments: list[str]
) -> dict[str, QuantileForecast]:
    values = {s: float(per_segment.get(s, 0.0)) for s in segments}
    out = {s: QuantileForecast.from_point(v) for s, v in values.items()}
    out["total"] = QuantileForecast.from_point(sum(values.values()))
    return out


def run_rate(
    known: pd.DataFrame,
    spec: FunnelSpec,
    origin: dt.date,
    period_days: int,
    segments: list[str],
) -> dict[str, QuantileForecast]:
    """Run-rate baseline; see the module docstring.

    Parameters
    ----------
    known : DataFrame
        Canonical records as known at ``origin`` (an as-of view).
    spec : FunnelSpec
        The funnel spec.
    origin : datetime.date
        The forecast origin (the day after the last known day).
    period_days : int
        Length of the forecast period.
    segments : list of str
        Reporting segments.
    """
    won_at = known[f"{spec.last_stage}_at"]
    won = known.loc[won_at.notna()]
    # Windows start no earlier than the file's first recorded close: before it
    # the CRM held entries but no outcomes (a young export), and counting
    # those windows as zero-revenue quarters would widen the interval to 0.
    closes = pd.concat([won_at, known["lost_at"]]).dropna()
    first_day = closes.min() if len(closes) else known[list(spec.stage_columns)].min().min()
    origin_ts = pd.Timestamp(origin)
    ends = [origin_ts - pd.Timedelta(days=7 * k) for k in range(0, 53)]
    ends = [
        e
        for e in ends
        if e - pd.Timedelta(days=period_days) >= first_day
        and e > origin_ts - pd.Timedelta(days=_TRAILING_DAYS + 1)
    ]
    if not ends:
        ends = [origin_ts]
    out: dict[str, QuantileForecast] = {}
    for seg in [*segments, "total"]:
        rows = won if seg == "total" else won[won[spec.segment_column] == seg]
        at = rows[f"{spec.last_stage}_at"]
        windows = np.array(
            [
                float(
                    rows.loc[(at >= e - pd.Timedelta(days=period_days)) & (at < e), "amount"].sum()
                )
                for e in ends
            ]
        )
        last = windows[0]
        mean = windows.mean()
        if len(windows) < 2 or mean <= 0:
            out[seg] = QuantileForecast.from_point(last)
        else:
            out[seg] = QuantileForecast.from_samples(last * windows / mean)
    return out


def spreadsheet(
    known: pd.DataFrame,
    spec: FunnelSpec,
    origin: dt.date,
    period_days: int,
    segments: list[str],
    new_units: Mapping[str, Mapping[str, float]] | None = None,
) -> dict[str, QuantileForecast]:
    """Spreadsheet point math baseline; see the module docstring.

    ``new_units`` is the plan's (segment → entry stage → units in the period);
    where a segment has none, the trailing 13-week pace of new units at each
    entry stage, scaled to the period, is used.
    """
    rates = _naive_to_won(known, spec, origin)
    deal = _average_deal(known, spec, origin)
    last = _last_reached(known, spec)
    open_ = _open_mask(known, spec)
    seg = known[spec.segment_column].to_numpy()
    pace_lo = pd.Timestamp(origin) - pd.Timedelta(days=_PACE_DAYS)
    first = np.argmax(known[list(spec.stage_columns)].notna().to_numpy(), axis=1)
    entry_at = known[list(spec.stage_columns)].min(axis=1)
    values: dict[str, float] = {}
    for s in segments:
        r = rates.loc[s] if s in rates.index else pd.Series(0.0, index=spec.stages[:-1])
        d = float(deal.get(s, 0.0))
        in_seg = seg == s
        pipeline = sum(
            float(np.sum(open_ & in_seg & (last == i))) * float(r[stage])
            for i, stage in enumerate(spec.stages[:-1])
        )
        planned = (new_units or {}).get(s)
        new = 0.0
        for i, stage in enumerate(spec.stages[:-1]):
            if planned is not None:
                n = float(planned.get(stage, 0.0))
            else:
                recent = in_seg & (first == i) & (entry_at >= pace_lo).to_numpy()
                n = float(np.sum(recent)) * period_days / _PACE_DAYS
            new += n * float(r[stage])
        values[s] = (pipeline + new) * d
    return _with_total(values, segments)


def weighted_pipeline(
    known: pd.DataFrame,
    spec: FunnelSpec,
    origin: dt.date,
    period_days: int,
    segments: list[str],
) -> dict[str, QuantileForecast]:
    """Weighted-pipeline baseline; see the module docstring."""
    del period_days  # the weighted pipeline ignores timing, as it does in practice
    rates = _naive_to_won(known, spec, origin)
    deal = _average_deal(known, spec, origin)
    last = _last_reached(known, spec)
    in_pipeline = _open_mask(known, spec) & (last >= spec.pipeline_index)
    values: dict[str, float] = {}
    for s in segments:
        rows = known.loc[in_pipeline & (known[spec.segment_column] == s).to_numpy()]
        if rows.empty:
            values[s] = 0.0
            continue
        stage_of = _last_reached(rows, spec)
        amount = rows["amount"].fillna(float(deal.get(s, 0.0))).to_numpy()
        r = rates.loc[s] if s in rates.index else pd.Series(0.0, index=spec.stages[:-1])
        prob = np.array([float(r[spec.stages[i]]) for i in stage_of])
        values[s] = float(np.sum(amount * prob))
    return _with_total(values, segments)


#: The baselines by name, in report order.
BASELINES = {
    "run_rate": run_rate,
    "spreadsheet": spreadsheet,
    "weighted_pipeline": weighted_pipeline,
}
