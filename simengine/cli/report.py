"""``simengine report DIR``: the self-contained HTML report of a forecast directory."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from simengine.cli._common import console

__all__ = ["register"]


def report(
    forecast_dir: Annotated[Path, typer.Argument(help="Forecast directory from `simulate`.")],
    out: Annotated[
        Path | None, typer.Option("--out", help="Output file (default DIR/report.html).")
    ] = None,
    parameters: Annotated[
        Path | None,
        typer.Option(
            "--parameters",
            "--posterior",
            "--assumptions",
            help="Posterior or assumptions file behind the forecast (default: the path the "
            "forecast recorded).",
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing report.")] = False,
) -> None:
    """Write DIR/report.html: headline, fan chart, coverage, funnel, rates and risks."""
    # Imported here: simengine.report imports simengine.cli._common, and the CLI
    # package imports this module while it initialises.
    from simengine.report.data import read_forecast
    from simengine.report.html import headlines, write_report

    path = write_report(forecast_dir, out, parameters=parameters, force=force)
    for h in headlines(read_forecast(forecast_dir)):
        console.print(f"[bold]{h.segment}[/]: {h.text()}", highlight=False)
    console.print(f"report written to [bold]{path}[/]", highlight=False)


def register(app: typer.Typer) -> None:
    """Add the command to ``app``."""
    app.command("report")(report)
