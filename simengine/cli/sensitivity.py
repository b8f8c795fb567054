"""``simengine sensitivity``: one-at-a-time moves of every input, ranked (sensitivity.csv)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from simengine.cli._common import console

__all__ = ["register"]


def sensitivity(
    plan_file: Annotated[Path, typer.Option("--plan", help="Plan TOML.")],
    out: Annotated[
        Path, typer.Option("--out", help="Output directory (sensitivity.csv, tornado.png).")
    ],
    posterior: Annotated[
        Path | None, typer.Option("--posterior", help="Posterior netCDF from `fit`.")
    ] = None,
    assumptions: Annotated[
        Path | None, typer.Option("--assumptions", help="Planner's assumptions TOML.")
    ] = None,
    pct: Annotated[
        float | None,
        typer.Option("--pct", help="Move inputs by ±pct (e.g. 0.1) instead of one posterior sd."),
    ] = None,
    paths: Annotated[int, typer.Option("--paths", help="Paths per run (2 per input + 1).")] = (
        20_000
    ),
    seed: Annotated[int, typer.Option("--seed", help="The seed every run shares.")] = 20270104,
    batches: Annotated[
        int, typer.Option("--batches", help="Blocks per run for batch-means errors.")
    ] = 10,
    draws: Annotated[int, typer.Option("--draws", help="Draws from an assumptions file.")] = 4000,
    threads: Annotated[int | None, typer.Option("--threads", help="Worker threads.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing --out.")] = False,
) -> None:
    """Change in P(hit) and P50 revenue when each input moves down and up, ranked."""
    from simengine.errors import InputError
    from simengine.planning.inputs import load_inputs
    from simengine.planning.sensitivity import run_sensitivity, top_risks, write_sensitivity

    if out.exists() and not force:
        raise InputError.single(out, "output exists; pass --force to replace it")
    if pct is not None and not 0 < pct < 1:
        raise InputError.single("<command line>", "must lie in (0, 1)", column="--pct", value=pct)
    params, plan, _ = load_inputs(
        plan_file, posterior=posterior, assumptions=assumptions, n_draws=draws, seed=seed
    )
    df = run_sensitivity(
        params,
        plan,
        paths=paths,
        seed=seed,
        pct=pct,
        batches=batches,
        threads=threads,
        on_input=lambda label: console.print(f"moving [bold]{label}[/]", highlight=False),
    )
    write_sensitivity(df, out, force=force)
    for i, risk in enumerate(top_risks(df), 1):
        console.print(f"{i}. {risk}", highlight=False)
    console.print(f"written to [bold]{out}[/]", highlight=False)


def register(app: typer.Typer) -> None:
    """Add the command to ``app``."""
    app.command("sensitivity")(sensitivity)
