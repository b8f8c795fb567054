"""``simengine export DIR --format parquet|csv``: tidy tables for BI tools."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from simengine.cli._common import console

__all__ = ["register"]


def export(
    forecast_dir: Annotated[Path, typer.Argument(help="Forecast directory from `simulate`.")],
    fmt: Annotated[str, typer.Option("--format", help="parquet or csv.")] = "parquet",
    out: Annotated[
        Path | None, typer.Option("--out", help="Output directory (default DIR/export-FORMAT).")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing export.")] = False,
) -> None:
    """Write fan, coverage, funnel and summary tables (one row per segment/date/quantile...)."""
    from simengine.report.export import write_exports  # lazy: avoids an import cycle

    path = write_exports(forecast_dir, fmt, out, force=force)
    files = ", ".join(sorted(p.name for p in path.iterdir()))
    console.print(f"exported to [bold]{path}[/]: {files}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add the command to ``app``."""
    app.command("export")(export)
