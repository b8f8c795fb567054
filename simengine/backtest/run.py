"""Rolling-origin backtests: fit at each origin, simulate, score, compare.

For each origin date ``o`` (the as-of date of that forecast):

1. the records known at ``o`` (:func:`simengine.io.records.as_of_view`, nothing
   later) are fitted (:func:`simengine.fitting.fit.fit`);
2. the period ``o+1 .. o+period_days`` is simulated from that posterior;
3. the forecast of closed-won revenue per segment and ``total`` and each
   baseline's are scored against what the full file shows for that period.

Each origin writes ``origins/<date>/scores.csv`` (and its posterior) as soon
as it is scored; a re-run with the same output folder skips the origins
already scored, so an interrupted backtest resumes.

Origins are independent (each one's seed derives from the root seed and its
date only), so ``run_backtest(..., workers=N)`` scores N origins at a time in
separate processes (spawned, so each has its own Numba/PyTensor state); the
scores are the same, bitwise, as a serial run. Compiling a fit's models
costs more than sampling them, so compiled models are reused across
origins: the fitting models take their data through ``pm.Data`` and
:func:`~simengine.fitting.fit.sample_model` keeps a process-level cache of
compiled models keyed by the model's graph (:mod:`simengine.fitting._compiled`),
so an origin whose funnel structure (cells, drift periods, centred levels,
arrival pairs) matches an earlier one in the same process only samples, with
bitwise the draws of a fresh compilation. Serial origins share the calling
process's cache; with ``workers=N`` each spawned worker of the process pool
lives across the origins it is given and keeps its own cache.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import multiprocessing
import os
import warnings
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from simengine._quiet import ignore_pytensor_blas_notice
from simengine.backtest.baselines import BASELINES
from simengine.backtest.scoring import QuantileForecast, score
from simengine.backtest.summary import pool as pool_scores
from simengine.backtest.summary import render_html
from simengine.backtest.truth import realised
from simengine.config.plan import Plan
from simengine.config.spec import FunnelSpec
from simengine.io.atomic import atomic_file

if TYPE_CHECKING:  # pragma: no cover
    from simengine.engine.simulate import BlockMap

__all__ = [
    "BacktestConfig",
    "OriginForecaster",
    "SimengineForecaster",
    "records_sha256",
    "run_backtest",
    "score_origin",
    "simengine_forecaster",
    "threads_per_worker",
]

#: A function that, given what was known at an origin, returns simengine's
#: forecast of period revenue per segment (and ``total``).
OriginForecaster = Callable[[pd.DataFrame, FunnelSpec, Plan, Path], dict[str, QuantileForecast]]


@dataclass(frozen=True)
class BacktestConfig:
    """Options of a backtest run.

    Parameters
    ----------
    period_days : int
        Length of each forecast period (91 for a quarter).
    paths : int
        Monte Carlo paths per origin.
    seed : int
        Root seed; each origin uses a seed derived from (seed, origin date),
        so adding or removing an origin does not change the others.
    """

    period_days: int = 91
    paths: int = 100_000
    seed: int = 0

    def origin_seed(self, origin: dt.date) -> int:
        """Return the seed used at ``origin``: stable under adding origins."""
        ss = np.random.SeedSequence([self.seed, origin.toordinal()])
        return int(ss.generate_state(1, np.uint32)[0])


def _plan_for(origin: dt.date, period_days: int, targets: dict[str, float]) -> Plan:
    start = origin + dt.timedelta(days=1)
    return Plan(
        start=start,
        end=start + dt.timedelta(days=period_days - 1),
        as_of=origin,
        targets=targets,
    )


def score_origin(
    full: pd.DataFrame,
    known: pd.DataFrame,
    spec: FunnelSpec,
    origin: dt.date,
    cfg: BacktestConfig,
    segments: list[str],
    forecaster: OriginForecaster,
    workdir: Path,
) -> pd.DataFrame:
    """Score simengine and every baseline at one origin.

    Returns
    -------
    DataFrame
        Rows per (method, segment): ``origin, method, segment, realised,
        point`` and the metrics of :func:`~simengine.backtest.scoring.score`.
    """
    period_start = origin + dt.timedelta(days=1)
    period_end = origin + dt.timedelta(days=cfg.period_days)
    truth = realised(full, spec, period_start, period_end, segments)
    # The target does not change the revenue forecast; P(hit) against the
    # realised revenue is 1 - PIT, which the report can show.
    targets = {s: max(float(truth.loc[s, "revenue"]), 1.0) for s in segments}
    plan = _plan_for(origin, cfg.period_days, targets)
    forecasts = {"simengine": forecaster(known, spec, plan, workdir)}
    for name, baseline in BASELINES.items():
        forecasts[name] = baseline(known, spec, period_start, cfg.period_days, segments)
    rows = []
    for method, by_segment in forecasts.items():
        for seg in [*segments, "total"]:
            y = float(truth.loc[seg, "revenue"])
            fc = by_segment[seg]
            rows.append(
                {
                    "origin": origin.isoformat(),
                    "method": method,
                    "segment": seg,
                    "realised": y,
                    "realised_deals": int(truth.loc[seg, "won_deals"]),
                    "point": fc.point,
                    **score(fc, y),
                }
            )
    return pd.DataFrame(rows)


def _score_and_write(
    full: pd.DataFrame,
    spec: FunnelSpec,
    origin: dt.date,
    odir: Path,
    cfg: BacktestConfig,
    segments: list[str],
    forecaster: OriginForecaster,
    as_of_view: Callable[[pd.DataFrame, FunnelSpec, dt.date], pd.DataFrame],
) -> pd.DataFrame:
    """Score one origin and write its ``scores.csv`` atomically (also in a worker)."""
    odir.mkdir(parents=True, exist_ok=True)
    known = as_of_view(full, spec, origin)
    df = score_origin(full, known, spec, origin, cfg, segments, forecaster, odir)
    with atomic_file(odir / "scores.csv", force=True) as tmp:
        df.to_csv(tmp, index=False)
    return df


def run_backtest(
    full: pd.DataFrame,
    spec: FunnelSpec,
    origins: list[dt.date],
    out_dir: Path,
    cfg: BacktestConfig,
    forecaster: OriginForecaster,
    *,
    as_of_view: Callable[[pd.DataFrame, FunnelSpec, dt.date], pd.DataFrame],
    on_origin: Callable[[dt.date, str], None] | None = None,
    workers: int = 1,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Run (or resume) a backtest and write its outputs.

    Parameters
    ----------
    full : DataFrame
        Canonical records of the whole file (the truth comes from it).
    spec : FunnelSpec
        The funnel spec.
    origins : list of datetime.date
        Forecast origins (as-of dates).
    out_dir : Path
        Output folder: ``backtest.csv``, ``backtest.html``, ``pooled.csv``
        and ``origins/<date>/``.
    cfg : BacktestConfig
        Period length, paths, seed.
    forecaster : OriginForecaster
        simengine's forecast at one origin (fit + simulate). With
        ``workers > 1`` it must be picklable (a module-level function or a
        :class:`SimengineForecaster` without a Dask block map).
    as_of_view : callable
        The records' as-of rule (``simengine.io.records.as_of_view``).
    on_origin : callable, optional
        Progress callback ``(origin, status)``, called in this process;
        status is ``"resumed"`` or ``"scored"`` (with ``workers > 1`` also
        ``"queued"`` when an origin is handed to a worker).
    workers : int
        Origins scored at a time, each in its own spawned process
        (1 = in this process). The scores do not depend on it.

    Returns
    -------
    (scores, pooled) : tuple of DataFrame

    Raises
    ------
    ValueError
        If ``workers < 1``, or ``workers > 1`` with a forecaster that has a
        block map (a Dask map: the cluster already parallelises the paths,
        and its connection cannot be handed to worker processes).
    """
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if workers > 1 and getattr(forecaster, "block_map", None) is not None:
        raise ValueError("a forecaster with a block map (Dask) cannot run in worker processes")
    segments = sorted(full[spec.segment_column].dropna().unique().tolist())
    out_dir.mkdir(parents=True, exist_ok=True)
    by_origin: dict[dt.date, pd.DataFrame] = {}
    todo: list[dt.date] = []
    for origin in origins:
        done = out_dir / "origins" / origin.isoformat() / "scores.csv"
        if done.exists():
            by_origin[origin] = pd.read_csv(done)
            if on_origin:
                on_origin(origin, "resumed")
        else:
            todo.append(origin)

    def odir(o: dt.date) -> Path:
        return out_dir / "origins" / o.isoformat()

    if workers == 1 or len(todo) <= 1:
        for origin in todo:
            by_origin[origin] = _score_and_write(
                full, spec, origin, odir(origin), cfg, segments, forecaster, as_of_view
            )
            if on_origin:
                on_origin(origin, "scored")
    else:
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(
            max_workers=min(workers, len(todo)),
            mp_context=ctx,
            initializer=ignore_pytensor_blas_notice,  # a worker imports PyMC afresh
        ) as pool:
            futures = {}
            for origin in todo:
                futures[origin] = pool.submit(
                    _score_and_write,
                    full,
                    spec,
                    origin,
                    odir(origin),
                    cfg,
                    segments,
                    forecaster,
                    as_of_view,
                )
                if on_origin:
                    on_origin(origin, "queued")
            # in submission order: an origin's scores.csv is on disk as soon as its
            # worker finishes, so an interruption loses only the origins in flight
            for origin, fut in futures.items():
                by_origin[origin] = fut.result()
                if on_origin:
                    on_origin(origin, "scored")
    scores = pd.concat([by_origin[o] for o in origins], ignore_index=True)
    pooled = pool_scores(scores)
    with atomic_file(out_dir / "backtest.csv", force=True) as tmp:
        scores.to_csv(tmp, index=False)
    with atomic_file(out_dir / "pooled.csv", force=True) as tmp:
        pooled.to_csv(tmp, index=False)
    with atomic_file(out_dir / "backtest.html", force=True) as tmp:
        tmp.write_text(render_html(scores, pooled, f"Backtest: {spec.name}"), encoding="utf-8")
    return scores, pooled


@dataclass(frozen=True)
class SimengineForecaster:
    """simengine's forecaster for :func:`run_backtest`: fit, then simulate.

    A picklable callable (so :func:`run_backtest` can hand it to worker
    processes). At each origin the known records are fitted (the
    convergence gate is recorded, not enforced: an origin whose fit misses
    it is scored and flagged in ``posterior.nc``), the posterior is written
    to the origin's folder, and ``cfg.paths`` paths of the period are
    simulated. A ``posterior.nc`` already in the origin's folder is reused
    when its spec hash, as-of date, seed, records hash and fit settings are
    this origin's (a resumed run that got past the fit only simulates).
    The revenue forecast is read off the engine's merged sketch
    on the dense grid :data:`~simengine.backtest.scoring.DENSE_LEVELS`
    (relative error of the sketch <= 0.5%).

    Parameters
    ----------
    cfg : BacktestConfig
        Paths and seeds.
    fit_overrides : dict, optional
        Overrides of the spec's fit settings (``draws``, ``tune``,
        ``chains``, ``left_truncated``...), passed to
        :func:`~simengine.fitting.fit.settings_from_spec`.
    threads : int, optional
        Engine threads (default: all cores).
    block_size : int
        Paths per engine block.
    block_map : BlockMap, optional
        Where the engine's blocks run, as for
        :func:`simengine.engine.simulate.run_blocks`: ``None`` (default) runs
        them on ``threads`` in-process threads; the lazy Dask map of
        :func:`simengine.engine.distributed.cluster_block_map` (``--cluster``) runs
        them on a cluster, connecting when the first origin simulates. The
        blocks and their merge are the same, so the forecast is bitwise the
        same. A forecaster with a block map runs in this process only
        (``workers=1`` in :func:`run_backtest`).
    on_step : callable, optional
        Progress callback ``(origin, step)`` with step ``"fit:<part>"``,
        ``"simulate"``, ``"done"`` (must be picklable for worker processes).
    """

    cfg: BacktestConfig
    fit_overrides: dict[str, object] = field(default_factory=dict)
    threads: int | None = None
    block_size: int = 50_000
    block_map: BlockMap | None = None
    on_step: Callable[[dt.date, str], None] | None = None

    def __call__(
        self, known: pd.DataFrame, spec: FunnelSpec, plan: Plan, workdir: Path
    ) -> dict[str, QuantileForecast]:
        """Fit at ``plan.as_of``, simulate the plan's period, return revenue quantiles."""
        from simengine.backtest.scoring import DENSE_LEVELS
        from simengine.engine import prepare
        from simengine.engine._sketch import bin_values, hist_quantiles
        from simengine.engine.simulate import default_threads, run_blocks
        from simengine.fitting.fit import fit, settings_from_spec
        from simengine.io.posterior import read_parameters, write_posterior

        cfg, on_step = self.cfg, self.on_step
        seed = cfg.origin_seed(plan.as_of)
        settings = settings_from_spec(spec, **self.fit_overrides)

        def on_part(part: str) -> None:
            if on_step is not None:
                on_step(plan.as_of, f"fit:{part}")

        post = workdir / "posterior.nc"
        data_sha = records_sha256(known)
        if _reusable(post, spec, plan.as_of, seed, data_sha, settings):
            # an interrupted run that got past this origin's fit: same spec,
            # data, seed and settings give bitwise the same draws, so reuse them
            if on_step is not None:
                on_step(plan.as_of, "fit:reused")
        else:
            idata = fit(
                known,
                spec,
                plan.as_of,
                seed,
                settings=settings,
                allow_unconverged=True,
                on_part=on_part,
                data_sha256=data_sha,
            )
            write_posterior(idata, post, force=True)
        with warnings.catch_warnings():
            # The gate's outcome is recorded in posterior.nc (simengine_converged)
            # and reported per origin; the reader's warning would repeat it.
            warnings.filterwarnings("ignore", message=".*missed the convergence gate")
            params = read_parameters(post)
        segs = list(params.segments)
        sim_plan = Plan(
            start=plan.start,
            end=plan.end,
            as_of=plan.as_of,
            targets={s: plan.targets.get(s, 1.0) for s in segs},
        )
        prepared = prepare(params, sim_plan)
        if on_step is not None:
            on_step(plan.as_of, "simulate")
        threads = self.threads or default_threads()  # used in-process only
        summary = run_blocks(
            prepared, cfg.paths, seed, self.block_size, threads, block_map=self.block_map
        )
        q = hist_quantiles(summary.scal_hist[:, 0, :], bin_values(), DENSE_LEVELS)
        out = {s: QuantileForecast(DENSE_LEVELS, q[i]) for i, s in enumerate(segs)}
        out["total"] = QuantileForecast(DENSE_LEVELS, q[len(segs)])
        for s in plan.targets:  # a segment with no history at the origin: nothing forecast
            out.setdefault(s, QuantileForecast.from_point(0.0))
        if on_step is not None:
            on_step(plan.as_of, "done")
        return out


def records_sha256(records: pd.DataFrame) -> str:
    """SHA-256 of a records frame's values, index and column names (order-sensitive)."""
    h = hashlib.sha256()
    h.update(json.dumps([str(c) for c in records.columns]).encode())
    h.update(pd.util.hash_pandas_object(records, index=True).to_numpy().tobytes())
    return h.hexdigest()


def _reusable(
    post: Path, spec: FunnelSpec, as_of: dt.date, seed: int, data_sha: str, settings: Any
) -> bool:
    """Whether ``post`` is this origin's fit: same spec, as-of, seed, data and settings."""
    if not post.exists():
        return False
    import xarray as xr

    try:
        with xr.open_dataset(post, group="posterior", engine="h5netcdf") as ds:
            attrs = dict(ds.attrs)
    except (OSError, ValueError):
        return False
    stored = json.loads(attrs.get("simengine_fit_settings", "{}"))
    # as the fit wrote them (FitSettings.as_json: "inf" for an infinite threshold)
    want = json.loads(json.dumps(settings.as_json()))
    return (
        attrs.get("simengine_spec_sha256") == spec.sha256
        and attrs.get("simengine_as_of") == as_of.isoformat()
        and attrs.get("simengine_seed") == str(seed)
        and attrs.get("simengine_data_sha256") == data_sha
        and all(stored.get(k) == v for k, v in want.items())
    )


def simengine_forecaster(
    cfg: BacktestConfig,
    *,
    fit_overrides: dict[str, object] | None = None,
    threads: int | None = None,
    block_size: int = 50_000,
    block_map: BlockMap | None = None,
    on_step: Callable[[dt.date, str], None] | None = None,
) -> SimengineForecaster:
    """Build simengine's forecaster for :func:`run_backtest` (see :class:`SimengineForecaster`)."""
    return SimengineForecaster(
        cfg,
        fit_overrides=dict(fit_overrides or {}),
        threads=threads,
        block_size=block_size,
        block_map=block_map,
        on_step=on_step,
    )


def threads_per_worker(workers: int, threads: int | None = None) -> int:
    """Engine threads for each of ``workers`` origin processes: cores split evenly."""
    if threads is not None:
        return threads
    return max(1, (os.cpu_count() or 1) // max(1, workers))
