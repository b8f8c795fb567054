"""Calibration against synthetic truth: many synthetic CRMs, one origin each.

:func:`simengine.synth.generate` draws a history up to its as-of date ``A``
with known parameters. To have the *future* of an origin in the same file,
each case takes its origin ``O = A - 91`` days and a 90-day period
``O+1 .. A-1``: every event of that period is in the file (the generator
records everything before ``A``), and the origin falls on a drift-period
boundary of the generator (its periods are counted back from ``A`` in
91-day steps), so the fit's last drift period at ``O`` is the generator's
period 1 exactly. Conversion rates of units entering a stage after ``O``
come from the generator's period 0, one random-walk step (``drift_sd``)
away: the model carries the last period's rate forward, which is part of
what is being checked.

Each case is scored by :func:`simengine.backtest.run.run_backtest` (so
simengine and the baselines are scored alike, and a rerun resumes); with
the target set to the realised revenue, P(hit) = 1 - PIT, so P(hit) is
uniform over cases exactly when the PIT is. :func:`calibration` pools the
cases (the ``total`` row of each case is one independent draw) and
:func:`recovery` compares the posterior conversion rates with the truth
at the origin, to tell a biased model from a biased engine.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import multiprocessing
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd
from scipy import stats

from simengine._quiet import ignore_pytensor_blas_notice
from simengine.backtest.run import BacktestConfig, OriginForecaster, run_backtest
from simengine.backtest.summary import coverage_band
from simengine.config.spec import FunnelSpec

__all__ = [
    "CALIBRATION_FIT",
    "ORIGIN_LAG_DAYS",
    "PERIOD_DAYS",
    "calibration",
    "random_shifts",
    "recovery",
    "run_synthetic",
    "synthetic_case",
]

ORIGIN_LAG_DAYS = 91
"""The origin lies this many days before the generator's as-of date."""

PERIOD_DAYS = 90
"""Forecast period after the origin: days ``O+1 .. A-1``, all in the file."""

CALIBRATION_FIT: dict[str, object] = {"draws": 1000, "tune": 1000, "chains": 4}
"""Sampler settings of the synthetic calibration (test, benchmark, shifted runs).

Those of ``models/demo.toml`` (the library's defaults): four chains (r_hat
compares them) of 1,000 draws after 1,000 tuning steps, with the fit's one
automatic retry (longer tuning, low-rank mass matrix). The fits must pass
the convergence gate: a calibration of unconverged fits would test the
sampler's errors, not the model (docs/validation-tests.md has what fewer
draws gave).
"""


def synthetic_case(
    seed: int, history_weeks: int = 52, config: object | None = None
) -> tuple[pd.DataFrame, dt.date, dict[str, object]]:
    """Generate one synthetic CRM and its backtest origin.

    Parameters
    ----------
    seed : int
        Generator seed.
    history_weeks : int
        Weeks of history before the origin (about; the generator draws
        ``history_weeks + 13`` weeks before its own as-of date).
    config : SynthConfig, optional
        The generator's true parameters (default ``SynthConfig()``).

    Returns
    -------
    (records, origin, truth)
        Canonical records of the whole file, the origin date and the
        generator's truth dict.
    """
    from simengine.synth import SynthConfig, generate

    cfg = config if isinstance(config, SynthConfig) else SynthConfig()
    res = generate(seed, weeks=history_weeks + 13, config=cfg)
    origin = cfg.as_of - dt.timedelta(days=ORIGIN_LAG_DAYS)
    return res.records, origin, res.truth


def random_shifts(seed: int) -> object:
    """Return a generator configuration with regime shifts drawn from the seed.

    The synthetic world of a non-stationary calibration run: each case gets
    one level jump in every arrival mean and one step change in one step's
    conversion rate, at weeks and by factors drawn from a stream of its own
    (``numpy.random.default_rng([seed, 16])``, independent of the generator's
    draws). Both weeks are uniform on ``-26 .. -2`` relative to the
    generator's as-of date, so about half the shifts happen in the history
    before the origin (week -13), which the fit can see, and half inside the
    forecast period, which no model can see; the arrival factor is
    log-uniform on [0.6, 1.6] and the conversion factor log-uniform on
    [0.75, 1.15] (the generator's highest rate times 1.15 stays below 1).

    Parameters
    ----------
    seed : int
        The case's generator seed.

    Returns
    -------
    SynthConfig
        The default configuration with the shifts set (recorded by the
        generator in ``truth.json`` under ``regime_shifts``).
    """
    from simengine.synth import STAGES, SynthConfig

    rng = np.random.default_rng([seed, 16])
    steps = STAGES[1:]
    return dataclasses.replace(
        SynthConfig(),
        arrival_jump_week=int(rng.integers(-26, -1)),
        arrival_jump_factor=float(np.exp(rng.uniform(np.log(0.6), np.log(1.6)))),
        conversion_step_week=int(rng.integers(-26, -1)),
        conversion_step_stage=str(steps[int(rng.integers(len(steps)))]),
        conversion_step_factor=float(np.exp(rng.uniform(np.log(0.75), np.log(1.15)))),
    )


def _run_case(
    seed: int,
    spec: FunnelSpec,
    out_dir: Path,
    cfg: BacktestConfig,
    forecaster: OriginForecaster,
    history_weeks: int,
    case_config: object | None,
    progress: Callable[[dt.date, str], None] | None = None,
) -> pd.DataFrame:
    """Generate, fit, simulate and score one case (in this process or a worker)."""
    from simengine.io.atomic import atomic_file
    from simengine.io.records import as_of_view

    records, origin, truth = synthetic_case(seed, history_weeks, case_config)
    case_dir = out_dir / f"seed-{seed}"
    case_dir.mkdir(parents=True, exist_ok=True)
    with atomic_file(case_dir / "truth.json", force=True) as tmp:
        tmp.write_text(json.dumps(truth), encoding="utf-8")
    scores, _ = run_backtest(
        records,
        spec,
        [origin],
        case_dir,
        cfg,
        forecaster,
        as_of_view=as_of_view,
        on_origin=progress,
    )
    return scores.assign(seed=seed)


def _worker_init(filters: list[Any]) -> None:
    """Start a case worker with the caller's warning filters (so errors stay errors).

    PyTensor's BLAS notice is ignored on top of them, as in a worker of
    :func:`~simengine.backtest.run.run_backtest` (the worker imports PyMC afresh).
    """
    cast(list[Any], warnings.filters)[:] = filters
    ignore_pytensor_blas_notice()


def run_synthetic(
    seeds: Sequence[int],
    spec: FunnelSpec,
    out_dir: Path,
    cfg: BacktestConfig,
    forecaster: OriginForecaster,
    *,
    history_weeks: int = 52,
    config: object | Callable[[int], object] | None = None,
    on_case: Callable[[int, str], None] | None = None,
    workers: int = 1,
) -> pd.DataFrame:
    """Backtest one origin of each synthetic seed; resumable per seed.

    Cases are independent (a case's data, fit and paths depend on its seed
    and the settings only), so ``workers > 1`` runs them in that many
    spawned processes, each taking the next case when it is free; a worker
    keeps its compiled models across the cases it runs
    (:mod:`simengine.fitting._compiled`), and its serial stretches (model
    compilation, data set-up, predictive checks) overlap the other worker's
    sampling. The scores are bitwise those of a serial run, in seed order.

    Parameters
    ----------
    seeds : sequence of int
        Generator seeds (one case each).
    spec : FunnelSpec
        ``models/demo.toml``.
    out_dir : Path
        ``seed-<s>/`` per case (``backtest.csv``, posterior, ``truth.json``).
    cfg : BacktestConfig
        Must have ``period_days == PERIOD_DAYS``.
    forecaster : OriginForecaster
        simengine's forecaster (:func:`~simengine.backtest.run.simengine_forecaster`);
        picklable when ``workers > 1`` (a :class:`~simengine.backtest.run.SimengineForecaster`
        without a block map or progress callback).
    history_weeks : int
        See :func:`synthetic_case`.
    config : SynthConfig or callable, optional
        Generator parameters, or a function of the seed that returns them
        (e.g. :func:`random_shifts`).
    on_case : callable, optional
        Progress ``(seed, status)``, called in this process (status
        ``"queued"`` when a case is handed to a worker).
    workers : int
        Cases run at a time, each in its own spawned process (1 = in this
        process). The workers inherit this process's warning filters.

    Returns
    -------
    DataFrame
        Every case's scores with a ``seed`` column.

    Raises
    ------
    ValueError
        If ``cfg.period_days`` is not :data:`PERIOD_DAYS` or ``workers < 1``.
    """
    if cfg.period_days != PERIOD_DAYS:
        raise ValueError(f"synthetic cases need period_days={PERIOD_DAYS}")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    configs = {s: config(s) if callable(config) else config for s in seeds}
    frames: list[pd.DataFrame] = []
    if workers == 1 or len(seeds) <= 1:
        for seed in seeds:
            progress: Callable[[dt.date, str], None] | None = None
            if on_case is not None:

                def progress(
                    origin: dt.date,
                    status: str,
                    s: int = seed,
                    report: Callable[[int, str], None] = on_case,
                ) -> None:
                    report(s, status)

            frames.append(
                _run_case(
                    seed, spec, out_dir, cfg, forecaster, history_weeks, configs[seed], progress
                )
            )
        return pd.concat(frames, ignore_index=True)
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        max_workers=min(workers, len(seeds)),
        mp_context=ctx,
        initializer=_worker_init,
        initargs=(list(warnings.filters),),
    ) as pool:
        futures = []
        for seed in seeds:
            futures.append(
                pool.submit(
                    _run_case, seed, spec, out_dir, cfg, forecaster, history_weeks, configs[seed]
                )
            )
            if on_case is not None:
                on_case(seed, "queued")
        for seed, fut in zip(seeds, futures, strict=True):
            frames.append(fut.result())
            if on_case is not None:
                on_case(seed, "scored")
    return pd.concat(frames, ignore_index=True)


def calibration(scores: pd.DataFrame, method: str = "simengine") -> pd.DataFrame:
    """Pool synthetic cases: PIT uniformity and coverage against binomial bands.

    Parameters
    ----------
    scores : DataFrame
        From :func:`run_synthetic`.
    method : str
        Which method's rows to pool.

    Returns
    -------
    DataFrame
        Rows ``total`` (one independent case per seed) and ``segments``
        (every reporting segment of every case; cases' segments share a
        seed, so their band is only indicative): ``n``, mean PIT, KS p-value
        of PIT against U(0, 1), coverage at 50/80/90% with 95% binomial
        bands, and ``phit_lt_10``/``phit_gt_90``: shares of cases with
        P(hit the realised revenue) below 10% / above 90% (10% each if
        calibrated).
    """
    rows = []
    g = scores[scores["method"] == method]
    for name, part in (
        ("total", g[g["segment"] == "total"]),
        ("segments", g[g["segment"] != "total"]),
    ):
        n = len(part)
        if n == 0:
            continue
        pit = part["pit"].to_numpy(float)
        row: dict[str, object] = {
            "rows": name,
            "n": n,
            "pit_mean": float(pit.mean()),
            "pit_ks_p": float(stats.kstest(pit, "uniform").pvalue) if n > 1 else np.nan,
            "phit_lt_10": float(np.mean(1 - pit < 0.1)),
            "phit_gt_90": float(np.mean(1 - pit > 0.9)),
        }
        for w in (50, 80, 90):
            lo, hi = coverage_band(n, w / 100)
            row[f"cover_{w}"] = float(part[f"cover_{w}"].mean())
            row[f"cover_{w}_band"] = f"[{lo:.2f}, {hi:.2f}]"
        rows.append(row)
    return pd.DataFrame(rows)


def recovery(out_dir: Path, seeds: Sequence[int]) -> pd.DataFrame:
    """Posterior conversion rates at each origin against the generator's truth.

    The truth at the origin is the generator's drift period 1 (the one
    ending on the origin), per cell and step.

    Returns
    -------
    DataFrame
        Per seed, cell and step: ``truth``, posterior ``mean``, ``p05``,
        ``p95``, ``ratio`` (mean / truth) and ``inside_90`` (truth within the
        90% interval).
    """
    import xarray as xr

    rows = []
    for seed in seeds:
        case_dir = out_dir / f"seed-{seed}"
        truth = json.loads((case_dir / "truth.json").read_text(encoding="utf-8"))
        posts = sorted((case_dir / "origins").glob("*/posterior.nc"))
        if not posts:
            continue
        with xr.open_dataset(posts[0], group="posterior", engine="h5netcdf") as ds:
            conv = ds["conversion"].load()
        for cell in conv["cell"].values:
            for step in conv["step"].values:
                draws = conv.sel(cell=cell, step=step).values.ravel()
                true = float(truth["conversion_by_period"][str(cell)][str(step)][-2])
                lo, hi = np.quantile(draws, [0.05, 0.95])
                rows.append(
                    {
                        "seed": seed,
                        "cell": str(cell),
                        "step": str(step),
                        "truth": true,
                        "mean": float(draws.mean()),
                        "p05": float(lo),
                        "p95": float(hi),
                        "ratio": float(draws.mean()) / true,
                        "inside_90": bool(lo <= true <= hi),
                    }
                )
    return pd.DataFrame(rows)


def _converged(out: Path, seed: int) -> bool:
    """Whether the fit of ``seed``'s case in ``out`` passed the convergence gate."""
    import xarray as xr

    post = next((out / f"seed-{seed}" / "origins").glob("*/posterior.nc"))
    with xr.open_dataset(post, group="posterior", engine="h5netcdf") as ds:
        return str(ds.attrs["simengine_converged"]).lower() == "true"


def main(argv: list[str] | None = None) -> None:
    """Run the synthetic calibration and print the pooled tables.

    ``python -m simengine.backtest.synthetic --seeds 1-8 --out DIR
    [--draws --tune --chains --paths --history-weeks --shifts --workers]``.
    """
    import argparse

    from simengine._quiet import ignore_pytensor_blas_notice
    from simengine.backtest.run import simengine_forecaster, threads_per_worker
    from simengine.config.spec import load_spec

    ap = argparse.ArgumentParser(description="simengine calibration on synthetic truth")
    ap.add_argument("--seeds", default="1-8", help="e.g. 1-8 or 3,5,9")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--model", type=Path, default=Path("models/demo.toml"))
    ap.add_argument("--paths", type=int, default=50_000)
    # the calibration test's sampler settings (CALIBRATION_FIT) by default
    ap.add_argument("--draws", type=int, default=CALIBRATION_FIT["draws"])
    ap.add_argument("--tune", type=int, default=CALIBRATION_FIT["tune"])
    ap.add_argument("--chains", type=int, default=CALIBRATION_FIT["chains"])
    ap.add_argument("--history-weeks", type=int, default=52)
    ap.add_argument(
        "--workers", type=int, default=1, help="cases run at a time in worker processes"
    )
    ap.add_argument(
        "--shifts",
        action="store_true",
        help="regime shifts drawn per seed (random_shifts): arrival jump and conversion step",
    )
    args = ap.parse_args(argv)
    ignore_pytensor_blas_notice()
    if "-" in args.seeds:
        a, b = (int(x) for x in args.seeds.split("-"))
        seeds = list(range(a, b + 1))
    else:
        seeds = [int(x) for x in args.seeds.split(",")]
    spec = load_spec(args.model)
    cfg = BacktestConfig(period_days=PERIOD_DAYS, paths=args.paths, seed=0)
    fc = simengine_forecaster(
        cfg,
        fit_overrides={"draws": args.draws, "tune": args.tune, "chains": args.chains},
        threads=threads_per_worker(args.workers) if args.workers > 1 else None,
        # a lambda cannot go to worker processes; the cases' progress is printed here
        on_step=None if args.workers > 1 else lambda o, st: print(f"  {st}", flush=True),
    )
    scores = run_synthetic(
        seeds,
        spec,
        args.out,
        cfg,
        fc,
        history_weeks=args.history_weeks,
        config=random_shifts if args.shifts else None,
        on_case=lambda s, st: print(f"seed {s}: {st}", flush=True),
        workers=args.workers,
    )
    pd.set_option("display.width", 200)
    tot = scores[scores["segment"] == "total"]
    print("\nPer case, total revenue:")
    print(
        tot[["seed", "method", "realised", "p10", "p50", "p90", "pit", "crps"]].to_string(
            index=False, float_format=lambda v: f"{v:,.3f}"
        )
    )
    print("\nCalibration (simengine):")
    print(calibration(scores).to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    missed = [s for s in seeds if not _converged(args.out, s)]
    print(f"\nFits that missed the convergence gate: {len(missed)} of {len(seeds)} {missed}")
    rec = recovery(args.out, seeds)
    if len(rec):
        print("\nConversion recovery (posterior mean / truth at the origin), by step:")
        agg = rec.groupby("step", sort=False).agg(
            ratio_mean=("ratio", "mean"),
            ratio_min=("ratio", "min"),
            ratio_max=("ratio", "max"),
            inside_90=("inside_90", "mean"),
            n=("ratio", "size"),
        )
        print(agg.to_string(float_format=lambda v: f"{v:.3f}"))


if __name__ == "__main__":
    main()
