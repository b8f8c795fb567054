"""The ``simengine`` command line.

Each subcommand lives in its own module of this package, which defines
``register(app)``; the modules are listed once here, in the order ``--help``
shows them (a test checks that every command module is listed). Bad input
(:class:`~simengine.errors.InputError`) is printed as a report and exits with
status 2; a failed convergence gate exits with status 3.
"""

from __future__ import annotations

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


from simengine.cli import (  # noqa: E402  (the app above is what they register on)
    backtest,
    export,
    fit,
    history,
    plan,
    reforecast,
    report,
    sensitivity,
    simulate,
    stress,
    synth,
    validate,
    version,
)

COMMAND_MODULES = (
    backtest, export, fit, history, plan, reforecast, report,
    sensitivity, simulate, stress, synth, validate, version,
)
"""Every command module, each with ``register(app)``."""

for _mod in COMMAND_MODULES:
    _mod.register(app)


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
