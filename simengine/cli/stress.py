"""``simengine stress``: scenarios on common random numbers -> ``DIR/stress.csv``."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer

from simengine.cli import _planning_options as opt
from simengine.cli._common import console

__all__ = ["register"]


def stress(
    plan_file: opt.PlanOpt,
    scenarios_file: Annotated[
        Path, typer.Option("--scenarios", help="Scenario TOML (see models/scenarios/).")
    ],
    out: Annotated[Path, typer.Option("--out", help="Output directory (stress.csv, stress.png).")],
    posterior: opt.PosteriorOpt = None,
    assumptions: opt.AssumptionsOpt = None,
    pipeline: opt.PipelineOpt = None,
    model: opt.ModelOpt = None,
    paths: Annotated[int, typer.Option("--paths", min=2, help="Paths per scenario.")] = 200_000,
    seed: opt.SeedOpt = 20270104,
    batches: opt.BatchesOpt = 20,
    draws: opt.DrawsOpt = 4000,
    threads: opt.ThreadsOpt = None,
    force: opt.ForceOpt = False,
    cluster: opt.ClusterOpt = None,
) -> None:
    """Run every scenario and the baseline on the same random numbers; write stress.csv."""
    from simengine.planning.scenarios import load_scenarios
    from simengine.planning.stress import run_stress, write_stress

    params, plan = opt.planning_inputs(
        plan_file, posterior, assumptions, draws, seed, out=out, force=force, cluster=cluster,
        paths=paths, batches=batches, pipeline=pipeline, model=model
    )
    scenarios = load_scenarios(scenarios_file)
    with opt.block_map_for(cluster) as block_map:
        df = run_stress(
            params,
            plan,
            scenarios,
            paths=paths,
            seed=seed,
            batches=batches,
            threads=threads,
            on_scenario=lambda name: console.print(f"running [bold]{name}[/]", highlight=False),
            block_map=block_map,
        )
    write_stress(df, out, force=force)
    hit = df[(df["metric"] == "attainment") & (df["stat"] == "prob_hit")]
    for r in hit[hit["segment"] == "total"].itertuples(index=False):
        if r.scenario == "baseline":
            console.print(f"baseline: P(hit total) = {r.value:.3f}", highlight=False)
        else:
            vr = r.variance_reduction
            crn = (
                f"CRN variance reduction x{vr:.1f}"
                if math.isfinite(vr)
                else "no CRN variance reduction to show: no paired variance"
            )
            console.print(
                f"{r.title}: P(hit total) = {r.value:.3f} ({100 * r.delta:+.1f} points "
                f"± {100 * r.delta_se:.2f}; {crn})",
                highlight=False,
            )
    console.print(f"written to [bold]{out}[/]", highlight=False)


def register(app: typer.Typer) -> None:
    """Add the command to ``app``."""
    app.command("stress")(stress)
