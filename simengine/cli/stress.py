"""``simengine stress``: scenarios on common random numbers -> ``DIR/stress.csv``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from simengine.cli._common import console

__all__ = ["register"]


def stress(
    plan_file: Annotated[Path, typer.Option("--plan", help="Plan TOML.")],
    scenarios_file: Annotated[
        Path, typer.Option("--scenarios", help="Scenario TOML (see models/scenarios/).")
    ],
    out: Annotated[Path, typer.Option("--out", help="Output directory (stress.csv, stress.png).")],
    posterior: Annotated[
        Path | None, typer.Option("--posterior", help="Posterior netCDF from `fit`.")
    ] = None,
    assumptions: Annotated[
        Path | None, typer.Option("--assumptions", help="Planner's assumptions TOML.")
    ] = None,
    paths: Annotated[int, typer.Option("--paths", help="Paths per scenario.")] = 200_000,
    seed: Annotated[int, typer.Option("--seed", help="The seed every scenario shares.")] = (
        20270104
    ),
    batches: Annotated[
        int, typer.Option("--batches", help="Blocks per run for batch-means errors.")
    ] = 20,
    draws: Annotated[int, typer.Option("--draws", help="Draws from an assumptions file.")] = 4000,
    threads: Annotated[int | None, typer.Option("--threads", help="Worker threads.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing --out.")] = False,
) -> None:
    """Run every scenario and the baseline on the same random numbers; write stress.csv."""
    from simengine.errors import InputError
    from simengine.planning.inputs import load_inputs
    from simengine.planning.scenarios import load_scenarios
    from simengine.planning.stress import run_stress, write_stress

    if out.exists() and not force:
        raise InputError.single(out, "output exists; pass --force to replace it")
    params, plan, _ = load_inputs(
        plan_file, posterior=posterior, assumptions=assumptions, n_draws=draws, seed=seed
    )
    scenarios = load_scenarios(scenarios_file)
    df = run_stress(
        params,
        plan,
        scenarios,
        paths=paths,
        seed=seed,
        batches=batches,
        threads=threads,
        on_scenario=lambda name: console.print(f"running [bold]{name}[/]", highlight=False),
    )
    write_stress(df, out, force=force)
    hit = df[(df["metric"] == "attainment") & (df["stat"] == "prob_hit")]
    for r in hit[hit["segment"] == "total"].itertuples(index=False):
        if r.scenario == "baseline":
            console.print(f"baseline: P(hit total) = {r.value:.3f}", highlight=False)
        else:
            console.print(
                f"{r.title}: P(hit total) = {r.value:.3f} ({100 * r.delta:+.1f} points "
                f"± {100 * r.delta_se:.2f}; CRN variance reduction x{r.variance_reduction:.1f})",
                highlight=False,
            )
    console.print(f"written to [bold]{out}[/]", highlight=False)


def register(app: typer.Typer) -> None:
    """Add the command to ``app``."""
    app.command("stress")(stress)
