"""The monthly reforecast in one run: fit at each as-of date, forecast the same period, record.

For each as-of date ``d`` (oldest first), as the backtest does per origin
(:mod:`simengine.backtest.run`, whose pieces are reused: the per-date seed
:meth:`~simengine.backtest.run.BacktestConfig.origin_seed`, the records
hash and the posterior reuse check):

1. the records known at ``d`` (:func:`simengine.io.records.as_of_view`)
   are fitted, or the ``posterior.nc`` already in ``OUT/asof/<d>/`` is
   reused when it is this date's fit (same spec, data, seed and settings);
2. the **fixed plan period** is forecast from ``d`` with the revenue won in
   it by ``d`` counted as realised-to-date
   (:func:`~simengine.history.realised.simulate_to_date`), written to
   ``OUT/asof/<d>/forecast/``;
3. the snapshot is recorded in the store (one transaction);
4. the movement from the previous date's snapshot is computed
   (:func:`~simengine.history.movement.waterfall`) and recorded.

Every step is skipped when its result is already there (a snapshot id in
the store, a movement row), so an interrupted reforecast resumes where it
stopped.
"""

from __future__ import annotations

import datetime as dt
import json
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from simengine.config.plan import Plan
from simengine.config.spec import FunnelSpec
from simengine.history.movement import METRICS, waterfall, with_recorded
from simengine.history.realised import realised_to_date, simulate_to_date
from simengine.history.record import open_unit_table, snapshot_from_forecast, snapshot_id
from simengine.history.store import HistoryStore, plan_key

if TYPE_CHECKING:
    from simengine.engine.simulate import BlockMap
    from simengine.params import FunnelParameters

__all__ = ["ReforecastConfig", "run_reforecast"]


@dataclass(frozen=True)
class ReforecastConfig:
    """Options of a reforecast.

    Parameters
    ----------
    paths : int
        Paths per snapshot and per waterfall state.
    seed : int
        Root seed: the snapshot at ``d`` uses ``BacktestConfig(seed).origin_seed(d)``;
        the waterfall from ``a`` to ``b`` uses ``origin_seed(b) + 1`` (mod 2**32)
        for all its states (common random numbers), a stream apart from both
        snapshots.
    batches : int
        Blocks per run (batch-means errors).
    fit_overrides : dict
        Overrides of the spec's fit settings (``draws``, ``tune``, ``chains``).
    threads : int or None
        Engine threads.
    """

    paths: int = 100_000
    seed: int = 0
    batches: int = 20
    fit_overrides: dict[str, object] = field(default_factory=dict)
    threads: int | None = None

    def seed_at(self, as_of: dt.date) -> int:
        """Return the snapshot seed at ``as_of`` (the backtest's origin seed)."""
        from simengine.backtest.run import BacktestConfig

        return BacktestConfig(seed=self.seed).origin_seed(as_of)


def _fit_or_reuse(
    known: pd.DataFrame,
    spec: FunnelSpec,
    as_of: dt.date,
    seed: int,
    post: Path,
    cfg: ReforecastConfig,
    on_step: Callable[[dt.date, str], None],
) -> tuple[FunnelParameters, str]:
    from simengine.backtest.run import _reusable, records_sha256
    from simengine.fitting.fit import fit, settings_from_spec
    from simengine.io.posterior import read_parameters, write_posterior

    settings = settings_from_spec(spec, **cfg.fit_overrides)
    data_sha = records_sha256(known)
    if _reusable(post, spec, as_of, seed, data_sha, settings):
        on_step(as_of, "fit:reused")
    else:
        idata = fit(
            known,
            spec,
            as_of,
            seed,
            settings=settings,
            allow_unconverged=True,
            on_part=lambda part: on_step(as_of, f"fit:{part}"),
            data_sha256=data_sha,
        )
        write_posterior(idata, post, force=True)
    with warnings.catch_warnings():
        # the gate's outcome is recorded with the snapshot (converged flag)
        warnings.filterwarnings("ignore", message=".*missed the convergence gate")
        params = read_parameters(post)
    return params, data_sha


def run_reforecast(
    full: pd.DataFrame,
    spec: FunnelSpec,
    plan: Plan,
    as_ofs: list[dt.date],
    store: HistoryStore,
    out_dir: Path,
    cfg: ReforecastConfig,
    *,
    block_map: BlockMap | None = None,
    on_step: Callable[[dt.date, str], None] | None = None,
) -> pd.DataFrame:
    """Run (or resume) a reforecast; return its snapshots' rows of the store.

    Parameters
    ----------
    full : DataFrame
        Canonical records of the whole file (each date sees only its as-of view).
    spec : FunnelSpec
    plan : Plan
        The fixed plan period and targets (its ``as_of`` is not used).
    as_ofs : list of datetime.date
        Reforecast dates, each before the period's last day.
    store : HistoryStore
    out_dir : Path
        ``asof/<date>/posterior.nc`` and ``asof/<date>/forecast/``.
    cfg : ReforecastConfig
    block_map : BlockMap, optional
        Where the snapshot simulations' blocks run (default: threads here).
    on_step : callable, optional
        Progress ``(as_of, what)``.
    """
    from simengine.io.provenance import file_sha256
    from simengine.io.records import as_of_view

    step = on_step or (lambda _d, _w: None)
    store.check()  # a foreign --store fails before any fit
    dates = sorted(set(as_ofs))
    for d in dates:  # every date must leave something to forecast: check them all first
        from simengine.history.realised import remaining_plan

        remaining_plan(plan, d)
    ids: list[str] = []
    recorded = set(store.snapshots()["snapshot_id"]) if store.path.exists() else set()
    params_by: dict[dt.date, FunnelParameters] = {}
    for d in dates:
        odir = out_dir / "asof" / d.isoformat()
        odir.mkdir(parents=True, exist_ok=True)
        seed = cfg.seed_at(d)
        known = as_of_view(full, spec, d)
        post = odir / "posterior.nc"
        params, data_sha = _fit_or_reuse(known, spec, d, seed, post, cfg, step)
        plan.check_segments(params.segments)
        params_by[d] = params
        rt = realised_to_date(known, spec, plan, d, list(params.segments))
        post_sha = file_sha256(post)
        sid = snapshot_id(
            plan_key(plan.start, plan.end, plan.targets, spec.sha256),
            d,
            seed,
            cfg.paths,
            {"posterior": post_sha},
            data_sha,
            post_sha,
        )
        if sid in recorded:
            step(d, "already recorded")
            ids.append(sid)
            continue
        step(d, "simulate")
        run = simulate_to_date(
            params,
            plan,
            rt,
            paths=cfg.paths,
            seed=seed,
            batches=cfg.batches,
            threads=cfg.threads,
            block_map=block_map,
            meta={"input_sha256": {"plan": plan.sha256, "posterior": post_sha}},
        )
        fc = run.forecast
        fc.dataset.attrs["input_paths"] = json.dumps({"posterior": str(post.resolve())})
        fc.write(odir / "forecast", force=True)
        from simengine.history.movement import open_unit_frame

        units = open_unit_table(
            params, plan.start, plan.end, list(open_unit_frame(known, spec, d)["id"])
        )
        rec = snapshot_from_forecast(
            fc,
            spec_sha256=spec.sha256,
            data_sha256=data_sha,
            posterior_sha256=post_sha,
            converged=str(params.attrs.get("simengine_converged", "")).lower() == "true",
            open_units=units,
            label=f"reforecast {d.isoformat()}",
        )
        extra = pd.DataFrame(
            [(s, "revenue", "p50_se", run.se(s, "revenue_p50")) for s in run.segments],
            columns=["segment", "metric", "stat", "value"],
        )
        rec = _with_summary(rec, pd.concat([rec.summary, extra], ignore_index=True))
        added = store.record(rec)
        step(d, "recorded" if added else "already recorded")
        if rec.snapshot_id != sid:  # the id is computed before simulating to skip recorded ones
            raise RuntimeError(f"snapshot id {rec.snapshot_id} differs from the expected {sid}")
        ids.append(rec.snapshot_id)
    key = None
    for i in range(1, len(dates)):
        a, b = dates[i - 1], dates[i]
        if key is None:
            key = store.table("snapshots").set_index("snapshot_id").loc[ids[i], "plan_key"]
        with store.writer() as w:
            done = w.has_movement(ids[i - 1], ids[i])
        if done:
            step(b, "movement already recorded")
            continue
        step(b, f"movement from {a}")
        rows = waterfall(
            as_of_view(full, spec, b),
            spec,
            plan,
            params_by[a],
            params_by[b],
            paths=cfg.paths,
            seed=(cfg.seed_at(b) + 1) % 2**32,
            batches=cfg.batches,
            threads=cfg.threads,
        )
        summ = store.table("summary")
        rows = with_recorded(rows, _recorded(summ, ids[i - 1]), _recorded(summ, ids[i]))
        with store.writer() as w:
            w.add_movement(str(key), ids[i - 1], ids[i], rows)
    snaps = store.table("snapshots")
    return snaps[snaps["snapshot_id"].isin(ids)].reset_index(drop=True)


def _with_summary(rec, summary: pd.DataFrame):  # type: ignore[no-untyped-def]
    import dataclasses

    return dataclasses.replace(rec, summary=summary)


def _recorded(summary: pd.DataFrame, sid: str) -> dict[tuple[str, str], tuple[float, float]]:
    """``(segment, metric) -> (value, se)`` of a recorded snapshot, for the waterfall metrics."""
    s = summary[summary["snapshot_id"] == sid].set_index(["segment", "metric", "stat"])["value"]
    out = {}
    for seg in sorted({k[0] for k in s.index}):
        p50 = float(s[(seg, "revenue", "p50")])
        p50_se = float(s.get((seg, "revenue", "p50_se"), float("nan")))
        ph = float(s[(seg, "attainment", "prob_hit")])
        ph_se = float(s[(seg, "attainment", "prob_hit_se")])
        out[(seg, "revenue_p50")] = (p50, p50_se)
        out[(seg, "prob_hit")] = (ph, ph_se)
    assert set(METRICS) == {"revenue_p50", "prob_hit"}
    return out
