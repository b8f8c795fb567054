"""``simengine backtest``: do the intervals keep their promise on your history."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from simengine.cli import _planning_options as opt
from simengine.errors import InputError

__all__ = ["register"]


def backtest(
    data: Annotated[
        Path, typer.Argument(help="Records file (CSV or Parquet), canonical or mapped by the spec.")
    ],
    model: Annotated[Path, typer.Option("--model", help="Funnel spec TOML (models/*.toml).")],
    out: Annotated[
        Path, typer.Option("--out", help="Output folder (resumed if it holds scored origins).")
    ],
    origins: Annotated[
        str | None, typer.Option("--origins", help="Comma-separated origin dates.")
    ] = None,
    every: Annotated[str | None, typer.Option("--every", help="Origin spacing, e.g. 4w.")] = None,
    start: Annotated[
        str | None, typer.Option("--from", help="First origin (with --every).")
    ] = None,
    end: Annotated[str | None, typer.Option("--to", help="Last origin (with --every).")] = None,
    period: Annotated[
        str, typer.Option("--period", help="Forecast period after each origin: 91d, 13w, 1q.")
    ] = "13w",
    paths: Annotated[
        int, typer.Option("--paths", min=1000, help="Monte Carlo paths per origin.")
    ] = 100_000,
    seed: Annotated[int, typer.Option("--seed", min=0)] = 0,
    draws: opt.FitDrawsOpt = None,
    tune: opt.TuneOpt = None,
    chains: opt.ChainsOpt = None,
    threads: opt.ThreadsOpt = None,
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            min=1,
            help="Origins fitted at a time, each in its own process (same scores as 1).",
        ),
    ] = 1,
    cluster: Annotated[
        str | None,
        typer.Option(
            "--cluster",
            help="Simulate each origin's blocks on Dask: local:N or a scheduler address "
            "(tcp://host:8786). Fits stay in this process; same seed, same scores.",
        ),
    ] = None,
) -> None:
    """Fit at each origin on what was known then, simulate the period after, score it.

    Scores simengine and three baselines (run-rate, spreadsheet, weighted
    pipeline) with PIT, 50/80/90% coverage, CRPS, pinball loss and P50 error;
    writes backtest.csv, pooled.csv and backtest.html. An interrupted run
    resumes from the origins already scored.
    """
    import time

    from rich.table import Table

    from simengine._quiet import ignore_pytensor_blas_notice

    ignore_pytensor_blas_notice()  # before PyMC is imported, as `fit` and the demo do

    from simengine.backtest.run import (
        BacktestConfig,
        run_backtest,
        simengine_forecaster,
        threads_per_worker,
    )
    from simengine.backtest.summary import parse_duration, parse_origins
    from simengine.cli._common import console
    from simengine.cli._planning_options import block_map_for
    from simengine.config.spec import load_spec
    from simengine.io.records import as_of_view, load_records

    if workers > 1 and cluster is not None:
        raise InputError.single(
            "<command line>",
            "--workers > 1 runs origins in local processes; it cannot be combined with --cluster",
            column="--workers",
            value=workers,
        )
    if cluster is not None:  # check the option before any work
        from simengine.engine.distributed import parse_cluster

        parse_cluster(cluster)
    spec = load_spec(model)
    dates = parse_origins(origins, every, start, end)
    cfg = BacktestConfig(period_days=parse_duration(period), paths=paths, seed=seed)
    full = load_records(data, spec)
    overrides: dict[str, object] = {
        k: v for k, v in (("draws", draws), ("tune", tune), ("chains", chains)) if v
    }
    t0 = time.perf_counter()
    last = [t0]
    done = [0]

    def step(origin: object, what: str) -> None:
        console.print(f"  {origin}: {what} ({time.perf_counter() - t0:,.0f} s)")

    def report(origin: object, status: str) -> None:
        done[0] += 1
        now = time.perf_counter()
        console.print(
            f"origin {origin} [{done[0]}/{len(dates)}]: {status} in {now - last[0]:,.0f} s"
        )
        last[0] = now

    console.print(f"backtest of {spec.name}: {len(dates)} origin(s), period {cfg.period_days} days")
    # None: in-process threads; else a Dask map, connected now (the inputs are
    # checked; an unreachable scheduler fails before the first fit), closed
    # when the backtest ends
    with block_map_for(cluster, connect_now=True) as block_map:
        forecaster = simengine_forecaster(
            cfg,
            fit_overrides=overrides,
            threads=threads_per_worker(workers, threads) if workers > 1 else threads,
            block_map=block_map,
            # worker processes cannot call back into this console: per-origin lines only
            on_step=step if workers == 1 else None,
        )
        _scores, pooled = run_backtest(
            full,
            spec,
            dates,
            out,
            cfg,
            forecaster,
            as_of_view=as_of_view,
            on_origin=report,
            workers=workers,
        )
    table = Table(title="Pooled scores, total revenue")
    cols = [
        "method",
        "origins",
        "crps",
        "cover_50",
        "cover_80",
        "cover_90",
        "ape_p50",
        "within_5pct",
    ]
    for c in cols:
        table.add_column(c, justify="right" if c != "method" else "left")
    for _, row in pooled[pooled["segment"] == "total"].iterrows():
        table.add_row(
            *(f"{row[c]:.3g}" if isinstance(row[c], float) else str(row[c]) for c in cols)
        )
    console.print(table)
    console.print(f"wrote {out / 'backtest.csv'}, {out / 'pooled.csv'}, {out / 'backtest.html'}")


def register(app: typer.Typer) -> None:
    """Add the command to ``app``."""
    app.command("backtest")(backtest)
