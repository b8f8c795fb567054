"""``simengine reforecast``: the monthly reforecast of one plan period, run over history."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from simengine.cli import _planning_options as opt
from simengine.errors import InputError

__all__ = ["reforecast", "register"]


def reforecast(
    data: Annotated[
        Path, typer.Argument(help="Records file (CSV or Parquet), canonical or mapped by the spec.")
    ],
    model: Annotated[Path, typer.Option("--model", help="Funnel spec TOML (models/*.toml).")],
    plan: Annotated[Path, typer.Option("--plan", help="Plan TOML: the fixed period and targets.")],
    store: Annotated[Path, typer.Option("--store", help="History store (DuckDB file).")],
    out: Annotated[
        Path, typer.Option("--out", help="Work folder: asof/<date>/posterior.nc, forecast/.")
    ],
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="Comma-separated as-of dates.")
    ] = None,
    every: Annotated[str | None, typer.Option("--every", help="As-of spacing, e.g. 2w.")] = None,
    start: Annotated[str | None, typer.Option("--from", help="First as-of (with --every).")] = None,
    end: Annotated[str | None, typer.Option("--to", help="Last as-of (with --every).")] = None,
    paths: Annotated[
        int, typer.Option("--paths", min=1000, help="Monte Carlo paths per snapshot and state.")
    ] = 100_000,
    seed: Annotated[int, typer.Option("--seed", min=0)] = 0,
    draws: opt.FitDrawsOpt = None,
    tune: opt.TuneOpt = None,
    chains: opt.ChainsOpt = None,
    threads: opt.ThreadsOpt = None,
    cluster: Annotated[
        str | None,
        typer.Option(
            "--cluster",
            help="Simulate each snapshot's blocks on Dask: local:N or a scheduler address. "
            "Fits stay here; same seed, same numbers.",
        ),
    ] = None,
) -> None:
    """Fit at each as-of date on what was known then, forecast the plan's period, record it.

    The period is the plan's, fixed: revenue already won in it by each as-of
    date counts as realised-to-date. Each snapshot goes into --store, then
    the waterfall of what moved the number since the previous date. An
    interrupted run resumes (fits, snapshots and movements already there are
    reused).
    """
    import time

    from simengine._quiet import ignore_pytensor_blas_notice
    from simengine.backtest.summary import parse_origins
    from simengine.cli._common import console
    from simengine.cli._planning_options import block_map_for
    from simengine.config.plan import load_plan
    from simengine.config.spec import load_spec
    from simengine.history.reforecast import ReforecastConfig, run_reforecast
    from simengine.history.store import HistoryStore
    from simengine.io.records import load_records

    ignore_pytensor_blas_notice()
    if cluster is not None:
        from simengine.engine.distributed import parse_cluster

        parse_cluster(cluster)
    hs = HistoryStore(store)
    hs.check()
    spec = load_spec(model)
    the_plan = load_plan(plan)
    try:
        dates = parse_origins(as_of, every, start, end)
    except InputError as exc:  # the backtest's parser names its own option
        import dataclasses

        def rename(text: str) -> str:
            return text.replace("--origins", "--as-of")

        raise InputError(
            [
                dataclasses.replace(i, file=rename(i.file), column=rename(i.column or ""))
                for i in exc.issues
            ],
            summary="reforecast: bad as-of dates",
        ) from None
    full = load_records(data, spec)
    overrides: dict[str, object] = {
        k: v for k, v in (("draws", draws), ("tune", tune), ("chains", chains)) if v
    }
    cfg = ReforecastConfig(paths=paths, seed=seed, fit_overrides=overrides, threads=threads)
    t0 = time.perf_counter()

    def step(d: object, what: str) -> None:
        console.print(f"  {d}: {what} ({time.perf_counter() - t0:,.0f} s)")

    console.print(
        f"reforecast of {the_plan.start} – {the_plan.end} ({spec.name}) at {len(dates)} date(s)"
    )
    with block_map_for(cluster, connect_now=True) as block_map:
        snaps = run_reforecast(
            full, spec, the_plan, dates, hs, out, cfg, block_map=block_map, on_step=step
        )
    console.print(
        f"{len(snaps)} snapshot(s) in {store}; see `simengine history list --store {store}`"
    )


def register(app: typer.Typer) -> None:
    """Add the command to ``app``."""
    app.command("reforecast")(reforecast)
