r"""Forecasts of a fixed plan period from an as-of date inside it: realised-to-date + the rest.

A reforecast on 15 August of the July–September quarter knows the revenue
won from 1 July to 15 August; only the rest of the quarter is uncertain. The
engine simulates from its as-of date (day 0) onwards, so a forecast of the
whole period is built from two parts:

* the *realised-to-date* :math:`R_g` per segment ``g`` (revenue won on a day
  in ``[start, as_of]``, known at the as-of date), and
* the engine's simulation of the *remaining period* ``[max(start, as_of +
  1), end]`` (the backtest's convention: events on the as-of day are known),
  whose revenue is :math:`X_g`.

Period revenue is :math:`R_g + X_g`. The engine is run with the remaining
target :math:`T_g - R_g` in place of :math:`T_g`, so its exact path counts
give ``P(hit) = P(X_g >= T_g - R_g) = P(R_g + X_g >= T_g)`` and its
time-to-target histogram counts days until the *whole period's* revenue
reaches the target (shifted by the days already gone). Revenue quantiles,
mean and the fan are shifted by :math:`R_g` (a shift commutes with
quantiles); attainment is revenue over the full target; won deals and
entries per stage add the counts already realised. Where :math:`R_g \\ge
T_g` the target is already met: ``P(hit) = 1`` and the time to target is
the day it was reached. ``prob_within_5pct`` is read off the remaining
revenue's sketch (``P(X_g >= 0.95 T_g - R_g)``, within one 1% bin).
``coverage`` stays the engine's: open pipeline at the start of the
remaining period over the *remaining* target.

No engine change is needed: the remaining target is passed by replacing the
``targets`` array of :class:`~simengine.engine.Prepared`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import xarray as xr

from simengine.config.plan import Plan
from simengine.config.spec import FunnelSpec
from simengine.errors import InputError

if TYPE_CHECKING:
    from simengine.engine.blocks import BlockSummary
    from simengine.engine.forecast import Forecast
    from simengine.engine.simulate import BlockMap
    from simengine.params import FunnelParameters

__all__ = [
    "BATCH_KEYS",
    "RealisedToDate",
    "RemainingRun",
    "realised_to_date",
    "remaining_plan",
    "simulate_to_date",
]

#: Per-batch statistics kept for batch-means Monte Carlo errors, per segment.
BATCH_KEYS = ("revenue_p50", "prob_hit")

_EPS_TARGET = 1e-9  # a met target: any positive stand-in (P(hit) is set to 1)


@dataclass(frozen=True)
class RealisedToDate:
    """What the period has already realised at an as-of date.

    Attributes
    ----------
    as_of, start : datetime.date
        The as-of date and the period start.
    revenue : dict of str to float
        Revenue won on a day in ``[start, as_of]`` per segment and ``total``.
    won_deals : dict of str to int
        Deals won in that window, per segment and ``total``.
    entered : dict of str to dict of str to int
        Units entering each stage in that window, per segment and ``total``.
    cumulative : DataFrame
        Cumulative won revenue per day (index ``start .. as_of``, columns
        segments then ``total``; empty when ``as_of < start``).
    """

    as_of: dt.date
    start: dt.date
    revenue: dict[str, float]
    won_deals: dict[str, int]
    entered: dict[str, dict[str, int]]
    cumulative: pd.DataFrame

    @classmethod
    def zero(cls, as_of: dt.date, start: dt.date, segments: list[str], stages: list[str]):  # type: ignore[no-untyped-def]
        """Nothing realised (an as-of date before the period)."""
        segs = [*segments, "total"]
        return cls(
            as_of,
            start,
            dict.fromkeys(segs, 0.0),
            dict.fromkeys(segs, 0),
            {s: dict.fromkeys(stages, 0) for s in segs},
            pd.DataFrame(columns=segs, dtype=float),
        )


def realised_to_date(
    records: pd.DataFrame,
    spec: FunnelSpec,
    plan: Plan,
    as_of: dt.date,
    segments: list[str],
) -> RealisedToDate:
    """Revenue, deals and stage entries realised in ``[plan.start, as_of]``.

    Parameters
    ----------
    records : DataFrame
        Canonical records (the whole file or the as-of view: only dates up
        to ``as_of`` are read).
    spec : FunnelSpec
    plan : Plan
        The fixed plan period.
    as_of : datetime.date
        The reforecast's as-of date.
    segments : list of str
        Reporting segments (a segment with nothing realised gets 0).
    """
    stages = list(spec.stages)
    if as_of < plan.start:
        return RealisedToDate.zero(as_of, plan.start, segments, stages)
    segs = [*segments, "total"]
    lo, hi = pd.Timestamp(plan.start), pd.Timestamp(min(as_of, plan.end))
    seg_col = records[spec.segment_column].astype(str)
    won_at = records[f"{spec.last_stage}_at"]
    won = (won_at >= lo) & (won_at <= hi)
    amount = records["amount"].where(won, 0.0).fillna(0.0).astype(float)
    revenue = {s: float(amount[seg_col == s].sum()) for s in segments}
    revenue["total"] = float(amount.sum())
    deals = {s: int((won & (seg_col == s)).sum()) for s in segments}
    deals["total"] = int(won.sum())
    entered: dict[str, dict[str, int]] = {s: {} for s in segs}
    for stage, col in zip(stages, spec.stage_columns, strict=True):
        d = records[col]
        inside = (d >= lo) & (d <= hi)
        for s in segments:
            entered[s][stage] = int((inside & (seg_col == s)).sum())
        entered["total"][stage] = int(inside.sum())
    days = pd.date_range(lo, hi, freq="D")
    daily = (
        pd.DataFrame({"day": won_at[won].dt.normalize(), "seg": seg_col[won], "amt": amount[won]})
        .pivot_table(index="day", columns="seg", values="amt", aggfunc="sum")
        .reindex(index=days, columns=segments, fill_value=0.0)
        .fillna(0.0)
    )
    daily["total"] = daily.sum(axis=1)
    return RealisedToDate(as_of, plan.start, revenue, deals, entered, daily.cumsum())


def remaining_plan(plan: Plan, as_of: dt.date) -> Plan:
    """Return the part of ``plan`` simulated from ``as_of``: ``[max(start, as_of+1), end]``.

    Targets are the plan's (the caller replaces them by what remains).

    Raises
    ------
    InputError
        If ``as_of`` is on or after the period's last day (nothing is left).
    """
    if as_of >= plan.end:
        raise InputError.single(
            plan.path or "<plan>",
            f"as-of date {as_of} leaves nothing of the period {plan.start}..{plan.end} "
            "to forecast (it must be before the period's last day)",
            column="as_of",
            value=as_of.isoformat(),
        )
    start = max(plan.start, as_of + dt.timedelta(days=1)) if as_of >= plan.start else plan.start
    horizon = None
    if plan.horizon_days is not None:
        horizon = (plan.horizon_end - start).days + 1
    return Plan(
        start=start,
        end=plan.end,
        as_of=as_of,
        targets=dict(plan.targets),
        new_units={k: dict(v) for k, v in plan.new_units.items()},
        horizon_days=horizon,
        text=plan.text,
        path=plan.path,
    )


@dataclass(frozen=True)
class RemainingRun:
    """A forecast of the whole period and its per-batch statistics.

    Attributes
    ----------
    forecast : Forecast
        The period's forecast with the realised-to-date included.
    segments : tuple of str
        Segments then ``total`` (rows of ``batches``).
    batches : ndarray, shape (batch, segment, len(BATCH_KEYS))
        Each batch's revenue P50 and P(hit) (for batch-means errors; path
        ``i`` is in batch ``i mod batches``, see :func:`simengine.planning._runs.run`).
    weights : ndarray, shape (batch,)
        Paths per batch.
    """

    forecast: Forecast
    segments: tuple[str, ...]
    batches: npt.NDArray[np.float64]
    weights: npt.NDArray[np.float64]

    def value(self, segment: str, metric: str, stat: str) -> float:
        """One number of the forecast's summary."""
        ds = self.forecast.dataset
        return float(ds["summary"].sel(segment=segment, metric=metric, stat=stat))

    def se(self, segment: str, key: str) -> float:
        """Batch-means standard error of ``revenue_p50`` or ``prob_hit`` for a segment."""
        from simengine.planning._runs import batch_se

        x = self.batches[:, self.segments.index(segment), BATCH_KEYS.index(key)]
        return batch_se(x, self.weights)


def simulate_to_date(
    params: FunnelParameters,
    plan: Plan,
    realised: RealisedToDate,
    *,
    paths: int,
    seed: int,
    batches: int = 20,
    threads: int | None = None,
    block_map: BlockMap | None = None,
    on_block: Callable[[int, int], None] | None = None,
    meta: dict[str, Any] | None = None,
) -> RemainingRun:
    """Forecast the whole plan period from ``params.as_of`` (see the module docstring).

    Parameters
    ----------
    params : FunnelParameters
        Parameters and open units at the as-of date (day 0).
    plan : Plan
        The fixed plan period and its targets (its own ``as_of`` is ignored).
    realised : RealisedToDate
        What the period realised by ``params.as_of``.
    paths, seed : int
    batches : int
        Monte Carlo batches (>= 2) of :class:`RemainingRun`'s batch means
        (path ``i`` in batch ``i mod batches``); the paths run in blocks of
        ``paths / batches``.
    threads, block_map, on_block
        As for :func:`simengine.engine.simulate.run_blocks`.
    meta : dict, optional
        Extra forecast attributes (``input_sha256``...).

    Returns
    -------
    RemainingRun
    """
    from simengine.engine import prepare
    from simengine.engine.forecast import Forecast
    from simengine.engine.simulate import default_threads, forecast_meta, run_blocks
    from simengine.planning._runs import KEYS, batch_stats

    as_of = params.as_of
    sub = remaining_plan(plan, as_of)
    segs = [*params.segments, "total"]
    full_t = np.array([plan.targets[s] for s in params.segments] + [plan.total_target])
    r = np.array([realised.revenue.get(s, 0.0) for s in segs])
    remaining = full_t - r
    met = remaining <= 0
    prepared = prepare(params, sub)
    prepared = dataclasses.replace(
        prepared, targets=np.ascontiguousarray(np.where(met, _EPS_TARGET, remaining))
    )
    block_size = math.ceil(paths / max(2, batches))
    n_threads = threads if threads is not None else default_threads()
    summary = run_blocks(
        prepared,
        paths,
        seed,
        block_size,
        n_threads,
        on_block,
        block_map=block_map,
        batches=max(2, batches),
    )
    counts = summary.batch_welford[..., 0]
    per_batch = batch_stats(summary)
    p50 = per_batch[..., KEYS.index(("revenue", "p50"))] + r
    hit = np.where(met, 1.0, per_batch[..., KEYS.index(("attainment", "prob_hit"))])
    m = forecast_meta(seed, block_size, plan, (meta or {}).get("input_sha256"))
    sub_plan = dataclasses.replace(
        sub, targets={s: float(prepared.targets[i]) for i, s in enumerate(params.segments)}
    )
    fc_sub = Forecast.from_summary(summary, params, sub_plan, m)
    fc = _whole_period(fc_sub, summary, plan, sub, realised, full_t, r, list(params.stages))
    for k, v in (meta or {}).items():
        if k != "input_sha256":
            fc.dataset.attrs[k] = v if isinstance(v, int | float) else str(v)
    return RemainingRun(fc, tuple(segs), np.stack([p50, hit], axis=-1), counts[:, 0].copy())


def _whole_period(
    fc_sub: Forecast,
    summary: BlockSummary,
    plan: Plan,
    sub: Plan,
    rt: RealisedToDate,
    full_t: npt.NDArray[np.float64],
    r: npt.NDArray[np.float64],
    stages: list[str],
) -> Forecast:
    """Turn the remaining period's forecast into the whole period's."""
    from simengine.engine._sketch import bin_values
    from simengine.engine.forecast import Forecast, _summary_frame

    ds = fc_sub.dataset
    segs = [str(s) for s in ds["segment"].values]
    metrics = [str(m) for m in ds["metric"].values]
    stats = [str(s) for s in ds["stat"].values]
    summ = ds["summary"].values.copy()
    mi, si = metrics.index, stats.index
    q = [si(k) for k in ("p05", "p10", "p25", "p50", "p75", "p90", "p95")]
    rev = summ[:, mi("revenue")]
    rev[:, si("mean")] += r
    rev[:, q] += r[:, None]
    att = summ[:, mi("attainment")]
    for k in [si("mean"), si("sd"), *q]:
        att[:, k] = rev[:, k] / full_t
    met = r >= full_t
    att[met, si("prob_hit")] = 1.0
    att[met, si("prob_hit_se")] = 0.0
    vals = bin_values()
    for g in range(len(segs)):
        thr = 0.95 * full_t[g] - r[g]
        p_w = 1.0 if thr <= 0 else float(summary.scal_hist[g, 0, vals >= thr].sum()) / summary.n
        att[g, si("prob_within_5pct")] = p_w
        att[g, si("prob_within_5pct_se")] = math.sqrt(p_w * (1 - p_w) / summary.n)
    shift = (sub.start - plan.start).days
    ttt = summ[:, mi("time_to_target_days")]
    ttt[:, [si("mean"), *q]] += shift
    cum_known = rt.cumulative
    for g in map(int, np.flatnonzero(met)):
        col = cum_known[segs[g]] if segs[g] in cum_known else pd.Series(dtype=float)
        reached = np.flatnonzero(col.to_numpy() >= full_t[g])
        day = float(reached[0]) if reached.size else 0.0
        ttt[g, [si("mean"), *q]] = day
        ttt[g, si("sd")] = 0.0
        ttt[g, si("prob_reached")] = 1.0
    for metric, add in [
        ("won_deals", [rt.won_deals.get(s, 0) for s in segs]),
        *[(f"entered_{st}", [rt.entered.get(s, {}).get(st, 0) for s in segs]) for st in stages],
    ]:
        a = np.asarray(add, dtype=np.float64)
        row = summ[:, mi(metric)]
        row[:, si("mean")] += a
        row[:, q] += a[:, None]
    # the fan over the whole period: known cumulative revenue, then the simulated part + R
    dates = pd.date_range(plan.start, plan.horizon_end, freq="D")
    n_known = len(dates) - ds.sizes["date"]
    known = np.zeros((len(segs), n_known))
    if n_known:
        kc = cum_known.reindex(index=dates[:n_known], columns=segs).ffill().fillna(0.0)
        known = kc.to_numpy().T
    cq = ds["cum_revenue"].values + r[:, None, None]
    cum_q = np.concatenate([np.repeat(known[:, :, None], cq.shape[2], axis=2), cq], axis=1)
    cum_mean = np.concatenate([known, ds["cum_revenue_mean"].values + r[:, None]], axis=1)
    ent = ds["entered"].values.copy()
    for j, st in enumerate(stages):
        ent[:, j, :] += np.array([rt.entered.get(s, {}).get(st, 0) for s in segs])[:, None]
    attrs = dict(ds.attrs)
    attrs.update(
        start=plan.start.isoformat(),
        end=plan.end.isoformat(),
        as_of=sub.as_of.isoformat(),
        horizon_end=plan.horizon_end.isoformat(),
        remaining_start=sub.start.isoformat(),
        realised_to_date=json.dumps(dict(zip(segs, map(float, r), strict=True)), sort_keys=True),
    )
    out = xr.Dataset(
        {
            "summary": (("segment", "metric", "stat"), summ),
            "cum_revenue": (("segment", "date", "quantile"), cum_q),
            "cum_revenue_mean": (("segment", "date"), cum_mean),
            "coverage": ds["coverage"],
            "target": (("segment",), full_t),
            "entered": (("segment", "stage", "quantile"), ent),
        },
        coords={
            "segment": segs,
            "metric": metrics,
            "stat": stats,
            "quantile": ds["quantile"].values,
            "date": dates.values,
            "week": ds["week"].values,
            "stage": ds["stage"].values,
        },
        attrs=attrs,
    )
    return Forecast(out, _summary_frame(out))
