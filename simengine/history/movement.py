"""What moved the number between two snapshots: a waterfall on common random numbers.

Between snapshot A (as-of ``a``, posterior ``θ_A``, open units ``U_A``,
realised ``R_A``) and snapshot B (as-of ``b > a``) of the same plan, five
inputs change. They are swapped in one at a time, in this order, and the
whole period is re-simulated after each swap
(:func:`~simengine.history.realised.simulate_to_date`) with the same seed,
so path ``i`` uses the same random streams in every state (the engine's
common random numbers):

0. ``start``: ``θ_A`` at ``a``, ``U_A``, ``R_A`` (snapshot A re-simulated).
1. ``time elapsed``: ``θ_A`` at ``b``; ``U_A`` kept open in their stages,
   aged by ``b - a``; ``R_A``. What A expected to happen between ``a`` and
   ``b`` (wins, losses, new units) is no longer simulated.
2. ``revenue won``: the units of ``U_A`` won by ``b`` leave the pipeline
   and their in-period revenue joins the realised-to-date.
3. ``lost or slipped``: the units of ``U_A`` lost by ``b`` leave; those
   still open take their actual state at ``b`` (stage, age): a deal that
   did not close slipped (it is older, so less likely to close in the
   period), one that advanced moves up.
4. ``new pipeline``: the units that entered since ``a`` and are open at
   ``b`` join, and revenue they already won joins the realised (so the
   state is B's data: ``U_B``, ``R_B``).
5. ``refit``: ``θ_B`` replaces ``θ_A`` (rates, delays, volumes, deal sizes
   refitted on what was known at ``b``). This is snapshot B's input.

Each step's effect is the change of the statistic (revenue P50 and
P(hit), per segment and ``total``) from the previous state; their sum
telescopes to ``state 5 - state 0``. Step standard errors are batch means of
the paired per-block differences. The recorded snapshots A and B were
simulated on their own seeds, so ``(B - A) - (state 5 - state 0)`` is Monte
Carlo noise only: the ``residual`` row, whose standard error combines the
four runs' errors (independent-stream bound; positively correlated CRN runs
make it conservative). A unit in a cell that ``θ_A`` lacks joins at step 5.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math

import numpy as np
import pandas as pd

from simengine.config.plan import Plan
from simengine.config.spec import FunnelSpec
from simengine.history.realised import (
    RealisedToDate,
    RemainingRun,
    realised_to_date,
    simulate_to_date,
)
from simengine.io.records import as_of_view
from simengine.params import FunnelParameters, OpenUnits
from simengine.planning._runs import batch_se
from simengine.snapshot import cells_of, open_units

__all__ = ["METRICS", "STEPS", "open_unit_frame", "waterfall", "with_recorded"]

STEPS = ("time elapsed", "revenue won", "lost or slipped", "new pipeline", "refit")
"""The waterfall's steps, in the order they are applied."""

METRICS = {"revenue_p50": ("revenue", "p50"), "prob_hit": ("attainment", "prob_hit")}
"""Waterfall metric -> (summary metric, stat)."""


def open_unit_frame(records: pd.DataFrame, spec: FunnelSpec, as_of: dt.date) -> pd.DataFrame:
    """Open units at ``as_of`` with their record ids: ``id, cell, stage, age_days, amount``.

    In the order of :func:`simengine.snapshot.open_units` (the order a
    posterior's open units are stored in).
    """
    cells = list(cells_of(records, spec))
    ou = open_units(records, spec, as_of, cells)
    view = as_of_view(records, spec, as_of)
    is_open = view[f"{spec.last_stage}_at"].isna() & view["lost_at"].isna()
    ids = view.loc[is_open, "id"].astype(str).to_numpy()
    return pd.DataFrame(
        {
            "id": ids,
            "cell": np.asarray(cells, dtype=object)[ou.cell] if len(ou) else [],
            "stage": ou.stage,
            "age_days": ou.age_days,
            "amount": ou.amount,
        }
    )


def _to_open(frame: pd.DataFrame, params: FunnelParameters) -> OpenUnits:
    index = {c: i for i, c in enumerate(params.cells)}
    known = frame["cell"].map(index)
    keep = known.notna().to_numpy()
    f = frame.loc[keep]
    return OpenUnits(
        cell=known[keep].to_numpy(np.int64),
        stage=f["stage"].to_numpy(np.int64),
        age_days=f["age_days"].to_numpy(np.float64),
        amount=f["amount"].to_numpy(np.float64),
    )


def _state(params: FunnelParameters, as_of: dt.date, frame: pd.DataFrame) -> FunnelParameters:
    return dataclasses.replace(params, as_of=as_of, open_units=_to_open(frame, params))


def waterfall(
    records: pd.DataFrame,
    spec: FunnelSpec,
    plan: Plan,
    params_a: FunnelParameters,
    params_b: FunnelParameters,
    *,
    paths: int,
    seed: int,
    batches: int = 20,
    threads: int | None = None,
) -> pd.DataFrame:
    """Compute the waterfall from A (``params_a.as_of``) to B (``params_b.as_of``).

    Parameters
    ----------
    records : DataFrame
        Canonical records known at B's as-of date (or the whole file: only
        dates up to B's as-of date are read).
    spec : FunnelSpec
    plan : Plan
        The fixed plan period.
    params_a, params_b : FunnelParameters
        The two snapshots' parameters (their as-of dates are ``a < b``...
        ``a == b`` gives a waterfall of zeros).
    paths, seed, batches, threads
        Every state is simulated with these (``seed`` is the common one).

    Returns
    -------
    DataFrame
        ``segment, metric, step, value, se``: steps ``start``, the
        :data:`STEPS` effects and ``end`` (``start`` and ``end`` are levels).
    """
    a, b = params_a.as_of, params_b.as_of
    if b < a:
        raise ValueError(f"the later snapshot's as-of date {b} is before {a}")
    segments = list(params_b.segments)
    rt_a = realised_to_date(records, spec, plan, a, segments)
    rt_b = realised_to_date(records, spec, plan, b, segments)
    ua = open_unit_frame(records, spec, a)
    ub = open_unit_frame(records, spec, b)
    view_b = as_of_view(records, spec, b).assign(id=lambda d: d["id"].astype(str)).set_index("id")
    won_at = view_b[f"{spec.last_stage}_at"]
    won_ids = set(won_at.index[won_at.notna()])
    lost_ids = set(view_b.index[view_b["lost_at"].notna()])
    open_b_ids = set(ub["id"])
    aged = ua.assign(age_days=ua["age_days"] + (b - a).days)
    in_period = won_at.notna() & (won_at >= pd.Timestamp(plan.start)) & (won_at <= pd.Timestamp(b))
    seg_of = view_b[spec.segment_column].astype(str)
    w_ids = [i for i in ua["id"] if i in won_ids]
    w_mask = in_period.reindex(w_ids, fill_value=False)
    w_rev = view_b.loc[w_mask.index[w_mask.to_numpy()], "amount"].fillna(0.0)
    r2 = dict(rt_a.revenue)
    for seg in segments:
        r2[seg] += float(w_rev[seg_of.reindex(w_rev.index) == seg].sum())
    r2["total"] += float(w_rev.sum())

    def rt(rev: dict[str, float]) -> RealisedToDate:
        return dataclasses.replace(rt_b, revenue=rev)

    states: list[tuple[FunnelParameters, RealisedToDate]] = [
        (params_a, rt_a),
        (_state(params_a, b, aged), rt(dict(rt_a.revenue))),
        (_state(params_a, b, aged[~aged["id"].isin(won_ids)]), rt(r2)),
        (
            _state(
                params_a,
                b,
                ub[ub["id"].isin(set(ua["id"]) - lost_ids - won_ids) & ub["id"].isin(open_b_ids)],
            ),
            rt(r2),
        ),
        (_state(params_a, b, ub), rt_b),
        (params_b, rt_b),
    ]
    runs = [
        simulate_to_date(p, plan, r, paths=paths, seed=seed, batches=batches, threads=threads)
        for p, r in states
    ]
    return _rows(runs, [*segments, "total"])


def _rows(runs: list[RemainingRun], segs: list[str]) -> pd.DataFrame:
    keys = {"revenue_p50": "revenue_p50", "prob_hit": "prob_hit"}
    rows = []
    for seg in segs:
        g = runs[0].segments.index(seg)
        for metric, (m, st) in METRICS.items():
            k = list(keys).index(metric)
            vals = [r.value(seg, m, st) for r in runs]
            xs = [r.batches[:, g, k] for r in runs]
            w = runs[0].weights
            rows.append((seg, metric, "start", vals[0], batch_se(xs[0], w)))
            for i, step in enumerate(STEPS, start=1):
                rows.append(
                    (seg, metric, step, vals[i] - vals[i - 1], batch_se(xs[i] - xs[i - 1], w))
                )
            rows.append((seg, metric, "end", vals[-1], batch_se(xs[-1], w)))
    return pd.DataFrame(rows, columns=["segment", "metric", "step", "value", "se"])


def with_recorded(
    rows: pd.DataFrame,
    recorded_a: dict[tuple[str, str], tuple[float, float]],
    recorded_b: dict[tuple[str, str], tuple[float, float]],
) -> pd.DataFrame:
    """Add ``previous``, ``current``, ``recorded change`` and ``residual`` rows.

    ``previous``/``current`` are A and B as recorded.

    ``recorded_x[(segment, metric)] = (value, se)``. ``residual`` = recorded
    change - sum of the steps; its se is ``sqrt(se_A² + se_B² + se_start² +
    se_end²)``.
    """
    extra = []
    for (seg, metric), (va, sa) in recorded_a.items():
        vb, sb = recorded_b[(seg, metric)]
        sel = rows[(rows["segment"] == seg) & (rows["metric"] == metric)].set_index("step")
        parts = float(sel.loc[list(STEPS), "value"].sum())
        change = vb - va
        se_change = math.sqrt(sa**2 + sb**2)
        se_res = math.sqrt(sa**2 + sb**2 + sel.loc["start", "se"] ** 2 + sel.loc["end", "se"] ** 2)
        extra.append((seg, metric, "previous", va, sa))
        extra.append((seg, metric, "current", vb, sb))
        extra.append((seg, metric, "recorded change", change, se_change))
        extra.append((seg, metric, "residual", change - parts, se_res))
    return pd.concat([rows, pd.DataFrame(extra, columns=rows.columns)], ignore_index=True)
