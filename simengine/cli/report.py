"""``simengine report DIR``: the self-contained HTML report of a forecast directory."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from simengine.cli._common import console
from simengine.errors import InputError

__all__ = ["register"]


def report(
    forecast_dir: Annotated[Path, typer.Argument(help="Forecast directory from `simulate`.")],
    out: Annotated[
        Path | None, typer.Option("--out", help="Output file (default DIR/report.html).")
    ] = None,
    posterior: Annotated[
        Path | None,
        typer.Option("--posterior", help="Posterior behind the forecast (default: as recorded)."),
    ] = None,
    assumptions: Annotated[
        Path | None,
        typer.Option("--assumptions", help="Assumptions file behind the forecast."),
    ] = None,
    parameters: Annotated[
        Path | None,
        typer.Option("--parameters", help="Either kind, told apart by its suffix."),
    ] = None,
    stress: Annotated[
        Path | None,
        typer.Option("--stress", help="stress.csv or its directory (default: found beside)."),
    ] = None,
    sensitivity: Annotated[
        Path | None,
        typer.Option("--sensitivity", help="sensitivity.csv or its directory (default: beside)."),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing report.")] = False,
) -> None:
    """Write DIR/report.html: headline, fan chart, coverage, funnel, deals, rates and risks."""
    # Imported here: simengine.report imports simengine.cli._common, and the CLI
    # package imports this module while it initialises.
    from simengine.report.data import read_forecast
    from simengine.report.html import headlines, write_report

    given = [p for p in (posterior, assumptions, parameters) if p is not None]
    if len(given) > 1:
        raise InputError.single(
            "<command line>",
            "give at most one of --posterior, --assumptions, --parameters",
            column="--posterior",
        )
    path = write_report(
        forecast_dir,
        out,
        parameters=given[0] if given else None,
        stress=stress,
        sensitivity=sensitivity,
        force=force,
    )
    for h in headlines(read_forecast(forecast_dir)):
        console.print(f"[bold]{h.segment}[/]: {h.text()}", highlight=False)
    console.print(f"report written to [bold]{path}[/]", highlight=False)


def register(app: typer.Typer) -> None:
    """Add the command to ``app``."""
    app.command("report")(report)
