"""``simengine sensitivity``: one-at-a-time moves of every input, ranked (sensitivity.csv)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from simengine.cli import _planning_options as opt
from simengine.cli._common import console

__all__ = ["register"]


def sensitivity(
    plan_file: opt.PlanOpt,
    out: Annotated[
        Path, typer.Option("--out", help="Output directory (sensitivity.csv, tornado.png).")
    ],
    posterior: opt.PosteriorOpt = None,
    assumptions: opt.AssumptionsOpt = None,
    pipeline: opt.PipelineOpt = None,
    model: opt.ModelOpt = None,
    pct: Annotated[
        float | None,
        typer.Option("--pct", help="Move inputs by ±pct (e.g. 0.1) instead of one posterior sd."),
    ] = None,
    paths: Annotated[
        int, typer.Option("--paths", min=2, help="Paths per run (2 per input + 1).")
    ] = 20_000,
    seed: opt.SeedOpt = 20270104,
    batches: opt.BatchesOpt = 10,
    draws: opt.DrawsOpt = 4000,
    threads: opt.ThreadsOpt = None,
    force: opt.ForceOpt = False,
    cluster: opt.ClusterOpt = None,
) -> None:
    """Change in P(hit) and P50 revenue when each input moves down and up, ranked."""
    from simengine.errors import InputError
    from simengine.planning.sensitivity import run_sensitivity, top_risks, write_sensitivity

    if pct is not None and not 0 < pct < 1:
        raise InputError.single("<command line>", "must lie in (0, 1)", column="--pct", value=pct)
    params, plan = opt.planning_inputs(
        plan_file, posterior, assumptions, draws, seed, out=out, force=force, cluster=cluster,
        paths=paths, batches=batches, pipeline=pipeline, model=model
    )
    with opt.block_map_for(cluster) as block_map:
        df = run_sensitivity(
            params,
            plan,
            paths=paths,
            seed=seed,
            pct=pct,
            batches=batches,
            threads=threads,
            on_input=lambda label: console.print(f"moving [bold]{label}[/]", highlight=False),
            block_map=block_map,
        )
    write_sensitivity(df, out, force=force)
    for i, risk in enumerate(top_risks(df), 1):
        console.print(f"{i}. {risk}", highlight=False)
    console.print(f"written to [bold]{out}[/]", highlight=False)


def register(app: typer.Typer) -> None:
    """Add the command to ``app``."""
    app.command("sensitivity")(sensitivity)
