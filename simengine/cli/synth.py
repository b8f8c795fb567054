"""``simengine synth``: write a synthetic CRM with known truth (records, plan, truth)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from simengine.cli._common import console

__all__ = ["register", "synth"]


def synth(
    out: Annotated[Path, typer.Option("--out", help="Output directory (written atomically).")],
    seed: Annotated[int, typer.Option("--seed", min=0, help="Random seed.")],
    weeks: Annotated[
        int, typer.Option("--weeks", min=1, help="Weeks of history before the as-of date.")
    ] = 104,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing --out.")] = False,
    arrival_jump_week: Annotated[
        int | None,
        typer.Option(
            "--arrival-jump-week",
            help="Week (from the as-of date; negative: in the history) from which every "
            "arrival mean jumps by --arrival-jump-factor.",
        ),
    ] = None,
    arrival_jump_factor: Annotated[
        float,
        typer.Option("--arrival-jump-factor", help="The jump's factor (> 0)."),
    ] = 1.0,
    conversion_step_week: Annotated[
        int | None,
        typer.Option(
            "--conversion-step-week",
            help="Week from which the rate of --conversion-step-stage changes by "
            "--conversion-step-factor (by the week a unit entered the step's from-stage).",
        ),
    ] = None,
    conversion_step_stage: Annotated[
        str, typer.Option("--conversion-step-stage", help="The step, by its to-stage.")
    ] = "won",
    conversion_step_factor: Annotated[
        float,
        typer.Option("--conversion-step-factor", help="The rate's factor (> 0)."),
    ] = 1.0,
) -> None:
    """Write records.csv, plan.toml and truth.json of a synthetic CRM (spec models/demo.toml).

    Regime shifts (a level jump in arrivals, a step change in one conversion
    rate) are off unless their week is given; they are recorded in
    truth.json under ``regime_shifts``.
    """
    from simengine.errors import InputError
    from simengine.synth import SynthConfig, generate, write

    try:
        config = SynthConfig(
            arrival_jump_week=arrival_jump_week,
            arrival_jump_factor=arrival_jump_factor,
            conversion_step_week=conversion_step_week,
            conversion_step_stage=conversion_step_stage,
            conversion_step_factor=conversion_step_factor,
        )
        result = generate(seed, weeks=weeks, config=config)
    except ValueError as exc:
        raise InputError.single("<command line>", str(exc), column="regime shift") from None
    write(out, result, force=force)
    df = result.records
    period = result.truth["period"]
    expected = period["expected"]["total"]
    console.print(
        f"wrote {out}: {len(df):,} units from {result.truth['history_start']} to "
        f"{result.truth['history_end']} (as of {result.truth['as_of']}); "
        f"plan {period['start']}..{period['end']}, expected {expected['won_deals']:.0f} wins, "
        f"${expected['revenue']:,.0f}",
        highlight=False,
    )


def register(app: typer.Typer) -> None:
    """Add the command to ``app``."""
    app.command("synth")(synth)
