"""The ``simengine`` command line.

Each subcommand lives in its own module of this package, which defines
``register(app)``; modules are discovered here so that adding a command never
edits a shared file. Bad input (:class:`~simengine.errors.InputError`) is
printed as a report and exits with status 2; a failed convergence gate exits
with status 3.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

import typer
from rich.console import Console
from rich.markup import escape

from simengine.errors import ConvergenceError, InputError

__all__ = ["app", "main"]

app = typer.Typer(
    name="simengine",
    help="Funnel forecasts with honest probabilities: fit, simulate, report, stress-test.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err_console = Console(stderr=True)


@app.callback()
def _root() -> None:
    """Funnel forecasts with honest probabilities: fit, simulate, report, stress-test."""


for _mod in sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")):
    importlib.import_module(f"{__name__}.{_mod}").register(app)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit status (0 ok, 2 bad input, 3 not converged)."""
    try:
        app(args=argv, prog_name="simengine")
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    except InputError as exc:
        err_console.print(f"[bold red]error:[/] {escape(exc.report(limit=200))}", highlight=False)
        return 2
    except ConvergenceError as exc:
        err_console.print(f"[bold red]not converged:[/] {escape(str(exc))}", highlight=False)
        return 3
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
