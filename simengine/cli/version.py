"""``simengine version``: the package and its numerical stack's versions."""

from __future__ import annotations

import typer

from simengine.io.provenance import package_versions

__all__ = ["register"]


def version() -> None:
    """Print the versions of simengine and the libraries its numbers depend on."""
    for name, ver in package_versions().items():
        typer.echo(f"{name} {ver}")


def register(app: typer.Typer) -> None:
    """Add the command to ``app``."""
    app.command("version")(version)
