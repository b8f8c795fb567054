"""``simengine fit``: records → Bayesian funnel fit → ``posterior.nc``.

Fits the conversion/delay cure model, the arrival model and the deal-size
model (:mod:`simengine.fitting`) to the records known on ``--as-of``, runs the
convergence gate (sampling a part that misses it once more with longer
tuning, a higher target_accept and the low-rank mass matrix, and saying so),
writes the posterior file atomically and prints, per segment and step, the
fitted conversion (mean and 90% interval) beside the trailing 4-quarter and
13-week raw rates, then one line per model part saying whether the last
quarter before the as-of date sits inside the posterior predictive bands
(:mod:`simengine.fitting.ppc`), naming the cells where it does not. A
failed gate raises
:class:`~simengine.errors.ConvergenceError` (exit 3) and writes nothing,
unless ``--allow-unconverged``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.table import Table

from simengine.cli._common import console
from simengine.config.spec import load_spec
from simengine.errors import InputError

__all__ = ["fit_cmd", "register", "summary_table"]


def _parse_day(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise InputError.single(
            "<command line>", "not an ISO date (YYYY-MM-DD)", column="--as-of", value=text
        ) from None


def summary_table(idata: object) -> Table:
    """Fitted conversion (mean, 90% interval) beside trailing raw rates, per cell and step.

    Parameters
    ----------
    idata : arviz.InferenceData
        A fit in the posterior-file layout.

    Returns
    -------
    rich.table.Table
    """
    post = idata["posterior"]  # type: ignore[index]
    const = idata["constant_data"]  # type: ignore[index]
    conv = post["conversion"]
    q = conv.quantile([0.05, 0.95], dim=("chain", "draw")).values
    mean = conv.mean(dim=("chain", "draw")).values
    table = Table(title="Step conversion: fitted (from as-of on) vs trailing raw rates")
    for col in ("segment / cell", "step", "fitted mean", "90% interval", "raw 4Q", "raw 13W"):
        table.add_column(col, justify="left" if col in ("segment / cell", "step") else "right")

    def pct(x: float) -> str:
        return "–" if not np.isfinite(x) else f"{100 * x:.1f}%"

    cells = [str(c) for c in conv.coords["cell"].values]
    steps = [str(s) for s in conv.coords["step"].values]
    for i, cell in enumerate(cells):
        for j, step in enumerate(steps):
            table.add_row(
                cell if j == 0 else "",
                step,
                pct(float(mean[i, j])),
                f"{pct(float(q[0, i, j]))} – {pct(float(q[1, i, j]))}",
                pct(float(const["raw_rate_4q"].values[i, j])),
                pct(float(const["raw_rate_13w"].values[i, j])),
                end_section=j == len(steps) - 1,
            )
    return table


def fit_cmd(
    data: Annotated[Path, typer.Argument(help="Records file (CSV or Parquet).")],
    model: Annotated[Path, typer.Option("--model", "-m", help="Funnel spec TOML.")],
    as_of: Annotated[str, typer.Option("--as-of", help="Data cut-off date (YYYY-MM-DD).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Posterior file to write (.nc).")],
    seed: Annotated[int, typer.Option("--seed", help="Seed of every sampler seed.")] = 0,
    draws: Annotated[int | None, typer.Option("--draws", min=1, help="Draws per chain.")] = None,
    tune: Annotated[int | None, typer.Option("--tune", min=1, help="Tuning steps.")] = None,
    chains: Annotated[int | None, typer.Option("--chains", min=1, help="Chains.")] = None,
    allow_unconverged: Annotated[
        bool,
        typer.Option(
            "--allow-unconverged",
            help="Write the file (flagged simengine_converged=false) if the gate fails.",
        ),
    ] = False,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing --out.")] = False,
    parallel_parts: Annotated[
        bool,
        typer.Option(
            "--parallel-parts/--serial-parts",
            help="Fit the arrival and deal-size models in a second process while the "
            "conversion model is fitted (bitwise the same draws; default: on with 2+ cores).",
        ),
    ] = True,
) -> None:
    """Fit the Bayesian funnel models to DATA as known on --as-of; write a posterior file."""
    from simengine.fitting.fit import attempt_lines, fit, settings_from_spec
    from simengine.fitting.ppc import check_lines
    from simengine.io.posterior import write_posterior
    from simengine.io.provenance import file_sha256
    from simengine.io.records import load_records

    day = _parse_day(as_of)
    if out.exists() and not force:
        raise InputError.single(out, "output exists; pass --force to replace it")
    spec = load_spec(model)
    records = load_records(data, spec)
    settings = settings_from_spec(spec, draws=draws, tune=tune, chains=chains)
    console.print(
        f"fitting {len(records):,} units as of {day}: {settings.chains} chains × "
        f"{settings.draws} draws ({settings.tune} tune), sampler {settings.sampler}"
        + (", low-rank mass matrix" if settings.mass_matrix == "low_rank" else "")
        + "".join(
            f"; {part}: " + ", ".join(f"{k} {v}" for k, v in own.items())
            for part, own in settings.parts.items()
            if own
        ),
        highlight=False,
    )
    with console.status("preparing") as status:

        def on_part(part: str) -> None:
            status.update(f"compiling and sampling the {part.replace('_', ' ')} model")

        idata = fit(
            records,
            spec,
            day,
            seed,
            settings=settings,
            allow_unconverged=allow_unconverged,
            data_sha256=file_sha256(data),
            on_part=on_part,
            parallel_parts=parallel_parts and (os.cpu_count() or 1) > 1,
        )
    write_posterior(idata, out, force=force)
    console.print(summary_table(idata))
    attrs = idata["posterior"].attrs
    for line in attempt_lines(json.loads(attrs["simengine_fit_attempts"])):
        console.print(f"[bold]retry:[/] {line}", highlight=False)
    for line in check_lines(json.loads(attrs["simengine_ppc"])):
        style = "bold yellow" if "WARNING" in line else "bold"
        console.print(f"[{style}]check:[/] {line}", highlight=False)
    if idata["posterior"].attrs["simengine_converged"] == "false":
        console.print(
            "[bold yellow]warning:[/] the fit missed the convergence gate; the file is "
            "flagged simengine_converged=false",
            highlight=False,
        )
    console.print(f"[bold green]wrote[/] {out}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add the ``fit`` command to ``app``."""
    app.command("fit")(fit_cmd)
