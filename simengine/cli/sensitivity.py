"""``simengine sensitivity``: one-at-a-time moves of every input, ranked (sensitivity.csv)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from simengine.cli._common import console
from simengine.cli._planning_options import (
    AssumptionsOpt,
    BatchesOpt,
    ClusterOpt,
    DrawsOpt,
    ForceOpt,
    PlanOpt,
    PosteriorOpt,
    SeedOpt,
    ThreadsOpt,
    block_map_for,
    planning_inputs,
)

__all__ = ["register"]


def sensitivity(
    plan_file: PlanOpt,
    out: Annotated[
        Path, typer.Option("--out", help="Output directory (sensitivity.csv, tornado.png).")
    ],
    posterior: PosteriorOpt = None,
    assumptions: AssumptionsOpt = None,
    pct: Annotated[
        float | None,
        typer.Option("--pct", help="Move inputs by ±pct (e.g. 0.1) instead of one posterior sd."),
    ] = None,
    paths: Annotated[
        int, typer.Option("--paths", min=2, help="Paths per run (2 per input + 1).")
    ] = 20_000,
    seed: SeedOpt = 20270104,
    batches: BatchesOpt = 10,
    draws: DrawsOpt = 4000,
    threads: ThreadsOpt = None,
    force: ForceOpt = False,
    cluster: ClusterOpt = None,
) -> None:
    """Change in P(hit) and P50 revenue when each input moves down and up, ranked."""
    from simengine.errors import InputError
    from simengine.planning.sensitivity import run_sensitivity, top_risks, write_sensitivity

    if pct is not None and not 0 < pct < 1:
        raise InputError.single("<command line>", "must lie in (0, 1)", column="--pct", value=pct)
    params, plan = planning_inputs(
        plan_file,
        out=out,
        force=force,
        posterior=posterior,
        assumptions=assumptions,
        draws=draws,
        seed=seed,
        cluster=cluster,
        paths=paths,
        batches=batches,
    )
    with block_map_for(cluster) as block_map:
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
