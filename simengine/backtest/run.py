"""Rolling-origin backtests: fit at each origin, simulate, score, compare.

For each origin date ``o`` (the as-of date of that forecast):

1. the records known at ``o`` (:func:`simengine.records.as_of_view`, nothing
   later) are fitted (:func:`simengine.fitting.fit.fit`);
2. the period ``o+1 .. o+period_days`` is simulated from that posterior;
3. the forecast of closed-won revenue per segment and ``total`` and each
   baseline's are scored against what the full file shows for that period.

Each origin writes ``origins/<date>/scores.csv`` (and its posterior) as soon
as it is scored; a re-run with the same output folder skips the origins
already scored, so an interrupted backtest resumes.
"""

from __future__ import annotations

import datetime as dt
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from simengine.backtest.baselines import BASELINES
from simengine.backtest.scoring import QuantileForecast, score
from simengine.backtest.summary import pool, render_html
from simengine.backtest.truth import realised
from simengine.cli._common import atomic_file
from simengine.plan import Plan
from simengine.spec import FunnelSpec

__all__ = [
    "BacktestConfig",
    "BlockRunner",
    "OriginForecaster",
    "run_backtest",
    "score_origin",
    "simengine_forecaster",
]

#: Runs every block of a prepared engine run and merges them in block order:
#: ``(prepared, paths, seed, block_size, threads) -> BlockSummary``
#: (:func:`simengine.engine.simulate.run_blocks` or a Dask twin).
BlockRunner = Callable[..., Any]

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
        simengine's forecast at one origin (fit + simulate).
    as_of_view : callable
        The records' as-of rule (``simengine.records.as_of_view``).
    on_origin : callable, optional
        Progress callback ``(origin, status)``; status is ``"resumed"`` or
        ``"scored"``.

    Returns
    -------
    (scores, pooled) : tuple of DataFrame
    """
    segments = sorted(full[spec.segment_column].dropna().unique().tolist())
    out_dir.mkdir(parents=True, exist_ok=True)
    frames = []
    for origin in origins:
        odir = out_dir / "origins" / origin.isoformat()
        done = odir / "scores.csv"
        if done.exists():
            frames.append(pd.read_csv(done))
            if on_origin:
                on_origin(origin, "resumed")
            continue
        odir.mkdir(parents=True, exist_ok=True)
        known = as_of_view(full, spec, origin)
        df = score_origin(full, known, spec, origin, cfg, segments, forecaster, odir)
        with atomic_file(done, force=True) as tmp:
            df.to_csv(tmp, index=False)
        frames.append(df)
        if on_origin:
            on_origin(origin, "scored")
    scores = pd.concat(frames, ignore_index=True)
    pooled = pool(scores)
    with atomic_file(out_dir / "backtest.csv", force=True) as tmp:
        scores.to_csv(tmp, index=False)
    with atomic_file(out_dir / "pooled.csv", force=True) as tmp:
        pooled.to_csv(tmp, index=False)
    with atomic_file(out_dir / "backtest.html", force=True) as tmp:
        tmp.write_text(render_html(scores, pooled, f"Backtest: {spec.name}"), encoding="utf-8")
    return scores, pooled


def simengine_forecaster(
    cfg: BacktestConfig,
    *,
    fit_overrides: dict[str, object] | None = None,
    threads: int | None = None,
    block_size: int = 50_000,
    runner: BlockRunner | None = None,
    on_step: Callable[[dt.date, str], None] | None = None,
) -> OriginForecaster:
    """Build simengine's forecaster for :func:`run_backtest`: fit, then simulate.

    At each origin the known records are fitted (the convergence gate is
    recorded, not enforced: an origin whose fit misses it is scored and
    flagged in ``posterior.nc``), the posterior is written to the origin's
    folder, and ``cfg.paths`` paths of the period are simulated. The revenue
    forecast is read off the engine's merged sketch on the dense grid
    :data:`~simengine.backtest.scoring.DENSE_LEVELS` (relative error of the
    sketch <= 0.5%).

    Parameters
    ----------
    cfg : BacktestConfig
        Paths and seeds.
    fit_overrides : dict, optional
        Overrides of the spec's sampler settings (``draws``, ``tune``,
        ``chains``...), passed to :func:`~simengine.fitting.fit.settings_from_spec`.
    threads : int, optional
        Engine threads (default: all cores).
    block_size : int
        Paths per engine block.
    runner : callable, optional
        Replacement for :func:`simengine.engine.simulate.run_blocks` with the
        same signature, e.g. :func:`simengine.distributed.block_runner` of a
        Dask client (``--cluster``); the merged summary is bitwise the same.
    on_step : callable, optional
        Progress callback ``(origin, step)`` with step ``"fit:<part>"``,
        ``"simulate"``.
    """
    from simengine.backtest.scoring import DENSE_LEVELS
    from simengine.engine import prepare
    from simengine.engine._sketch import bin_values, hist_quantiles
    from simengine.engine.simulate import default_threads, run_blocks
    from simengine.fitting.fit import fit, settings_from_spec
    from simengine.posterior import read_parameters, write_posterior

    def forecast(
        known: pd.DataFrame, spec: FunnelSpec, plan: Plan, workdir: Path
    ) -> dict[str, QuantileForecast]:
        seed = cfg.origin_seed(plan.as_of)
        settings = settings_from_spec(spec, **(fit_overrides or {}))

        def on_part(part: str) -> None:
            if on_step is not None:
                on_step(plan.as_of, f"fit:{part}")

        idata = fit(
            known,
            spec,
            plan.as_of,
            seed,
            settings=settings,
            allow_unconverged=True,
            on_part=on_part,
        )
        post = workdir / "posterior.nc"
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
        run = runner if runner is not None else run_blocks
        summary = run(prepared, cfg.paths, seed, block_size, threads or default_threads())
        q = hist_quantiles(summary.scal_hist[:, 0, :], bin_values(), DENSE_LEVELS)
        out = {s: QuantileForecast(DENSE_LEVELS, q[i]) for i, s in enumerate(segs)}
        out["total"] = QuantileForecast(DENSE_LEVELS, q[len(segs)])
        for s in plan.targets:  # a segment with no history at the origin: nothing forecast
            out.setdefault(s, QuantileForecast.from_point(0.0))
        return out

    return forecast
