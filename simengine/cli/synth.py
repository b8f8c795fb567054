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
) -> None:
    """Write records.csv, plan.toml and truth.json of a synthetic CRM (spec models/demo.toml)."""
    from simengine.synth import generate, write

    result = generate(seed, weeks=weeks)
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
