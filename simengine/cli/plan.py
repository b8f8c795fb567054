"""``simengine plan``: the reverse funnel as planners do it, and the probabilistic answer beside it.

Two forms:

* quick: ``simengine plan --target 15000000 --deal-size 60000 --rates 0.30,0.65,0.22
  --stages mql,sql,opportunity,won --planned 5000``;
* from a plan and parameters: ``simengine plan --plan plan.toml (--posterior P |
  --assumptions A) [--out DIR]``: per segment and source, from draw means, plus
  the goal seek (arrivals needed for P(hit) >= q on common random numbers) and
  rep capacity.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from simengine.cli import _planning_options as opt
from simengine.cli._common import atomic_dir, console
from simengine.errors import InputError

if TYPE_CHECKING:
    import pandas as pd

    from simengine.planning.reverse import Rounding

__all__ = ["register"]


def _floats(text: str, option: str) -> list[float]:
    try:
        vals = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise InputError.single(
            "<command line>", "must be comma-separated numbers", column=option, value=text
        ) from None
    if not vals:
        raise InputError.single("<command line>", "needs at least one number", column=option)
    return vals


def _wide_console() -> Console:
    """Return the shared console, or a 120-column one where output is not a wide terminal."""
    return console if console.width >= 120 else Console(width=120)


def _fmt(x: float, digits: int = 1) -> str:
    return "" if x != x else f"{x:,.{digits}f}"


def _wide(tables: dict[Rounding, pd.DataFrame]) -> pd.DataFrame:
    """Exact units beside the two per-step rounding rules (display)."""
    key = ["segment", "source", "stage"]
    wide = tables["exact"][[*key, "units", "value", "planned", "gap"]].copy()
    for rule in ("nearest", "up"):
        wide[f"units_{rule}"] = tables[rule]["units"].to_numpy()
    return wide


def _print_table(wide: pd.DataFrame, title: str) -> None:
    t = Table(
        title=title,
        caption="exact: no rounding; nearest/up: rounded at every step; "
        "value: units x deal size from the pipeline stage on",
    )
    for col in (
        "segment",
        "source",
        "stage",
        "exact",
        "nearest",
        "up",
        "value",
        "planned",
        "gap",
    ):
        t.add_column(col, justify="left" if col in ("segment", "source", "stage") else "right")
    for r in wide.itertuples(index=False):
        t.add_row(
            str(r.segment),
            str(r.source),
            str(r.stage),
            _fmt(r.units),
            _fmt(r.units_nearest, 0),
            _fmt(r.units_up, 0),
            _fmt(r.value, 0),
            _fmt(r.planned, 0),
            _fmt(r.gap),
        )
    _wide_console().print(t)


def plan_command(
    plan_file: opt.MaybePlanOpt = None,
    posterior: opt.PosteriorOpt = None,
    assumptions: opt.AssumptionsOpt = None,
    pipeline: opt.PipelineOpt = None,
    model: opt.ModelOpt = None,
    target: Annotated[
        float | None, typer.Option("--target", help="Quick form: revenue target.")
    ] = None,
    deal_size: Annotated[
        float | None, typer.Option("--deal-size", help="Quick form: average won deal.")
    ] = None,
    rates: Annotated[
        str | None,
        typer.Option("--rates", help="Quick form: step rates, top first, e.g. 0.30,0.65,0.22."),
    ] = None,
    stages: Annotated[
        str | None,
        typer.Option("--stages", help="Quick form: stage names, one more than the rates."),
    ] = None,
    planned: Annotated[
        float | None,
        typer.Option("--planned", help="Quick form: planned units at the first stage."),
    ] = None,
    per_rep_month: Annotated[
        float, typer.Option("--per-rep-month", help="Units (MQLs) a rep can work per month.")
    ] = 120.0,
    reps: Annotated[
        str | None,
        typer.Option(
            "--reps",
            help="Reps available per segment, e.g. smb=3,ent=1 (default: the reps needed); "
            "a warning shows where the planned weekly flow exceeds what they can work.",
        ),
    ] = None,
    period_days: Annotated[
        int, typer.Option("--period-days", help="Quick form: days in the period (capacity).")
    ] = 91,
    quantiles: Annotated[
        str, typer.Option("--quantiles", help="Goal seek: P(hit) levels to reach.")
    ] = "0.5,0.8",
    paths: Annotated[
        int, typer.Option("--paths", min=1, help="Goal seek: paths per evaluation.")
    ] = 20_000,
    seed: opt.SeedOpt = 20270104,
    goal_seek: Annotated[
        bool,
        typer.Option("--goal-seek/--no-goal-seek", help="Run the probabilistic goal seek."),
    ] = True,
    draws: opt.DrawsOpt = 4000,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Write reverse.csv, capacity.csv, goalseek.csv here."),
    ] = None,
    force: opt.ForceOpt = False,
    cluster: opt.ClusterOpt = None,
) -> None:
    """Reverse funnel from target to units per stage, with the probabilistic answer beside it."""
    import pandas as pd

    from simengine.planning.reverse import (
        Source,
        capacity,
        capacity_table,
        reverse_tables,
        sources_from_params,
    )

    tables: dict[Rounding, pd.DataFrame] = {}
    outputs: dict[str, pd.DataFrame] = {}
    warnings: list[str] = []
    if target is not None or rates is not None or deal_size is not None:
        if target is None or rates is None or deal_size is None:
            raise InputError.single(
                "<command line>",
                "the quick form needs --target, --deal-size and --rates",
                column="--target",
            )
        if cluster is not None:
            raise InputError.single(
                "<command line>",
                "the quick form runs no simulation; --cluster goes with --plan (the goal seek)",
                column="--cluster",
                value=cluster,
            )
        rs = _floats(rates, "--rates")
        names = (
            [s.strip() for s in stages.split(",")]
            if stages
            else [f"stage{i}" for i in range(len(rs) + 1)]
        )
        if len(names) != len(rs) + 1:
            raise InputError.single(
                "<command line>",
                f"{len(rs)} rates need {len(rs) + 1} stage names",
                column="--stages",
                value=stages,
            )
        try:
            src = [Source("all", "all", 1, deal_size, names, rs)]
            pl = {"all": {names[0]: planned}} if planned is not None else None
            tables.update(reverse_tables({"all": target}, src, planned=pl))
        except ValueError as exc:
            raise InputError.single("<command line>", str(exc), column="--rates") from None
        wide = _wide(tables)
        _print_table(wide, f"Reverse funnel: {target:,.0f} at {deal_size:,.0f} a deal")
        need = Fraction(str(tables["exact"].iloc[0]["units_exact"]))
        n_reps = _reps(reps, ("all",))
        cap = capacity(
            need,
            period_days,
            per_rep_month=per_rep_month,
            planned=planned,
            reps=None if n_reps is None else n_reps["all"],
        )
        console.print(
            f"{names[0]}: {float(cap.reps_needed):,.2f} reps needed at {per_rep_month:g} a month "
            f"over {period_days} days ("
            + (f"{cap.reps} available" if reps else f"{cap.reps} rounded up")
            + ")",
            highlight=False,
        )
        if cap.warning:
            warnings.append(cap.warning)
        outputs["reverse"] = pd.concat(list(tables.values()), ignore_index=True)
    else:
        if plan_file is None:
            raise InputError.single(
                "<command line>",
                "give --plan with --posterior/--assumptions, or the quick form (--target ...)",
                column="--plan",
            )
        params, plan = opt.planning_inputs(
            plan_file, posterior, assumptions, draws, seed, out=out, force=force, cluster=cluster,
            pipeline=pipeline, model=model,
        )
        sources = sources_from_params(params, plan)
        pipe = params.stages[params.pipeline_stage]
        tables.update(
            reverse_tables(plan.targets, sources, pipeline_stage=pipe, planned=plan.new_units)
        )
        reps_by_seg = _reps(reps, params.segments)
        _print_table(_wide(tables), f"Reverse funnel for {plan_file} (draw means)")
        outputs["reverse"] = pd.concat(list(tables.values()), ignore_index=True)
        cap_df, cap_warn = capacity_table(
            tables["exact"],
            plan,
            params,
            stage=params.stages[0],
            per_rep_month=per_rep_month,
            reps=reps_by_seg,
        )
        outputs["capacity"] = cap_df
        warnings += cap_warn
        for r in cap_df.itertuples(index=False):
            console.print(
                f"{r.segment} {r.stage}: {r.reps_needed:,.2f} reps needed "
                f"at {per_rep_month:g} a month ("
                + (f"{r.reps} available" if reps else f"{r.reps} to work it and the planned flow")
                + ")",
                highlight=False,
            )
        if goal_seek:
            from simengine.planning.goalseek import annotate_goal_seek, goal_seek_table

            qs = _floats(quantiles, "--quantiles")
            with opt.block_map_for(cluster) as block_map:
                gs = goal_seek_table(
                    params,
                    plan,
                    quantiles=qs,
                    paths=paths,
                    seed=seed,
                    on_seek=lambda st, q: console.print(
                        f"goal seek: {st} volume for P(hit) >= {q:g}", highlight=False
                    ),
                    block_map=block_map,
                )
            gs = annotate_goal_seek(
                gs, params, plan, sources, per_rep_month=per_rep_month
            )
            outputs["goalseek"] = gs
            _print_goalseek(gs)
    for w in warnings:
        console.print(f"[bold yellow]warning:[/] {w}", highlight=False)
    if out is not None:
        with atomic_dir(out, force=force) as tmp:
            for name, df in outputs.items():
                df.to_csv(tmp / f"{name}.csv", index=False)
        console.print(f"written to [bold]{out}[/]", highlight=False)


def _reps(text: str | None, segments: tuple[str, ...]) -> dict[str, int] | None:
    if text is None:
        return None
    out: dict[str, int] = {}
    for part in text.split(","):
        seg, _, n = part.partition("=")
        seg = seg.strip()
        if seg not in segments or not n.strip().isdigit():
            raise InputError.single(
                "<command line>",
                f"must be segment=whole number pairs; segments are {list(segments)}",
                column="--reps",
                value=part,
            )
        out[seg] = int(n)
    return out


def _print_goalseek(gs: pd.DataFrame) -> None:
    t = Table(
        title="Arrivals needed for P(hit) >= q (common random numbers)",
        caption="reverse funnel: the point answer above (no timing, no uncertainty)",
    )
    cols = ("segment", "stage", "q", "reverse funnel", "needed", "± MC se", "planned", "gap")
    for col in (*cols, "P(hit) there", "reps"):
        t.add_column(col, justify="left" if col in ("segment", "stage") else "right")
    for r in gs.itertuples(index=False):
        t.add_row(
            str(r.segment),
            str(r.stage),
            f"{r.q:g}",
            _fmt(r.reverse_funnel, 0),
            _fmt(r.needed, 0),
            _fmt(r.needed_se, 0),
            _fmt(r.planned, 0),
            _fmt(r.gap, 0),
            f"{r.prob_hit:.3f}",
            _fmt(r.reps_needed, 1),
        )
    _wide_console().print(t)


def register(app: typer.Typer) -> None:
    """Add the command to ``app``."""
    app.command("plan")(plan_command)
