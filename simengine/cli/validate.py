"""``simengine validate DATA --model SPEC``: read, map and check a records file.

Prints what the file holds (units, date range, won/lost/open, units per
reporting segment and stage reached, open units at the as-of date per segment
and stage). Bad input raises :class:`~simengine.errors.InputError`, which the
CLI root prints as a report and turns into exit status 2. Writes nothing.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer
from rich.table import Table

from simengine.cli._common import console
from simengine.config.spec import FunnelSpec, load_spec
from simengine.errors import InputError

__all__ = ["register", "validate"]


def _parse_day(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise InputError.single(
            "--as-of", "not an ISO date (YYYY-MM-DD)", column="--as-of", value=text
        ) from None


def _table(counts: pd.DataFrame, spec: FunnelSpec, as_of: dt.date) -> Table:
    table = Table(title=f"Units per segment ({spec.segment_column}); open at {as_of}")
    table.add_column("segment")
    table.add_column("units", justify="right")
    for s in spec.stages[:-1]:
        table.add_column(f"reached {s}", justify="right")
    table.add_column("won", justify="right")
    table.add_column("lost", justify="right")
    table.add_column("open", justify="right")
    for s in spec.stages[:-1]:
        table.add_column(f"open at {s}", justify="right")
    cols = [
        "units",
        *(f"reached_{s}" for s in spec.stages[:-1]),
        "won",
        "lost",
        "open",
        *(f"open_{s}" for s in spec.stages[:-1]),
    ]
    for seg, row in counts.iterrows():
        table.add_row(str(seg), *(f"{int(row[c]):,}" for c in cols), end_section=seg == "total")
    return table


def validate(
    data: Annotated[Path, typer.Argument(help="Records file (CSV or Parquet).")],
    model: Annotated[Path, typer.Option("--model", "-m", help="Funnel spec TOML.")],
    as_of: Annotated[
        str | None,
        typer.Option("--as-of", help="Day of the open-unit counts (default: latest date)."),
    ] = None,
) -> None:
    """Read, map and check a records file; print units per segment and stage."""
    # Imported here: pandera and the records stack load only when this command runs.
    from simengine.io.records import latest_date, load_records
    from simengine.snapshot import cells_of, stage_counts

    spec = load_spec(model)
    df = load_records(data, spec)
    day = _parse_day(as_of) if as_of is not None else latest_date(df, spec)
    counts = stage_counts(df, spec, day)
    dates = pd.concat([df[c] for c in (*spec.stage_columns, "lost_at")])
    total = counts.loc["total"]
    console.print(
        f"[bold green]ok[/]: {data} is valid for the funnel {spec.name!r}", highlight=False
    )
    console.print(
        f"units: {len(df):,}   won: {int(total['won']):,}   lost: {int(total['lost']):,}   "
        f"open at {day}: {int(total['open']):,}",
        highlight=False,
    )
    console.print(
        f"dates: {dates.min().date()} to {dates.max().date()}   "
        f"cells: {len(cells_of(df, spec))}   stages: {' > '.join(spec.stages)}",
        highlight=False,
    )
    console.print(_table(counts, spec, day))


def register(app: typer.Typer) -> None:
    """Add the ``validate`` command to ``app``."""
    app.command("validate")(validate)
