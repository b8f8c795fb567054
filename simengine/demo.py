"""``make demo``: synthetic CRM → fit → simulate → report → exports, end to end.

``python -m simengine.demo --out DIR --paths N --seed S`` runs, with a
step-by-step progress print, the same public functions as the CLI commands:

1. :func:`simengine.synth.generate` / :func:`~simengine.synth.write`
   (``simengine synth``): ``DIR/data/records.csv``, ``plan.toml``,
   ``truth.json``;
2. :func:`simengine.io.records.load_records` and
   :func:`simengine.fitting.fit.fit` (``simengine fit``): ``DIR/posterior.nc``;
3. :func:`simengine.io.posterior.read_parameters` and
   :func:`simengine.engine.simulate` (``simengine simulate``):
   ``DIR/forecast/forecast.nc`` + ``summary.csv``;
4. :func:`simengine.planning.stress.run_stress` on the demo's scenarios
   (``models/scenarios/demo.toml``; ``simengine stress``):
   ``DIR/forecast/stress/stress.csv``;
5. :func:`simengine.planning.sensitivity.run_sensitivity`
   (``simengine sensitivity``): ``DIR/forecast/sensitivity/sensitivity.csv``;
6. :func:`simengine.report.html.write_report` (``simengine report``):
   ``DIR/forecast/report.html``, with the stress, sensitivity (its top risks)
   and per-deal sections found beside the forecast;
7. :func:`simengine.report.export.write_exports` (``simengine export``):
   ``DIR/forecast/export-parquet/``, ``DIR/forecast/export-csv/``;

then prints where everything is and the headline per segment, with the time
each step took. ``DIR`` is replaced only if it is an earlier demo output.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from simengine._quiet import ignore_pytensor_blas_notice
from simengine.errors import ConvergenceError, InputError

__all__ = ["DemoResult", "main", "run_demo"]

_MARKER = ".simengine-demo"
_SPEC = Path(__file__).resolve().parents[1] / "models" / "demo.toml"
_SCENARIOS = Path(__file__).resolve().parents[1] / "models" / "scenarios" / "demo.toml"
_PLANNING_SHARE = 50
"""The stress and sensitivity runs take ``paths // 50`` paths each (at least
2,000): they compare runs on common random numbers, so their differences
need far fewer paths than the forecast's own bands, and the sensitivity
makes two runs per input."""


@dataclass
class DemoResult:
    """Where the demo wrote its outputs, and how long each step took.

    Parameters
    ----------
    out : Path
        The demo directory.
    data, posterior, forecast, report : Path
        Synthetic CRM folder, posterior file, forecast directory, report file.
    exports : list of Path
        Export directories (Parquet, CSV).
    timings : dict of str to float
        Seconds per step.
    """

    out: Path
    data: Path
    posterior: Path
    forecast: Path
    report: Path
    exports: list[Path] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)


@contextmanager
def _step(console: Console, timings: dict[str, float], name: str, what: str) -> Iterator[None]:
    n = len(timings) + 1
    t0, c0 = time.perf_counter(), time.process_time()
    with console.status(f"[bold]{n}. {what}[/] ..."):
        yield
    timings[name] = time.perf_counter() - t0
    cpu = time.process_time() - c0  # all threads of this process
    console.print(f"[green]✓[/] {n}. {what} [dim]({timings[name]:.1f} s wall, {cpu:.1f} s CPU)[/]",
                  highlight=False)


def _warm_engine() -> subprocess.Popen[bytes]:
    """Start ``python -m simengine.engine.warm`` (its failure only costs simulate a compile)."""
    return subprocess.Popen(
        [sys.executable, "-m", "simengine.engine.warm"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _prepare_out(out: Path) -> None:
    if out.exists():
        if not (out / _MARKER).is_file():
            raise InputError.single(
                out, "exists and is not an earlier demo output; choose another --out"
            )
        import shutil

        shutil.rmtree(out)
    out.mkdir(parents=True)
    (out / _MARKER).write_text("written by python -m simengine.demo; replaced on the next run\n")


def run_demo(
    out: str | Path,
    *,
    paths: int = 1_000_000,
    seed: int = 20270104,
    draws: int | None = None,
    tune: int | None = None,
    chains: int | None = None,
    allow_unconverged: bool = False,
    console: Console | None = None,
) -> DemoResult:
    """Run the demo end to end; see the module docstring.

    Parameters
    ----------
    out : str or Path
        Output directory (replaced if it is an earlier demo output).
    paths : int
        Simulated paths.
    seed : int
        Seed of every step (synthetic data, sampler, simulation).
    draws, tune, chains : int, optional
        Sampler overrides (default: the spec's ``[model]``).
    allow_unconverged : bool
        Go on (with the posterior flagged ``simengine_converged=false``) when
        the fit misses the convergence gate, instead of stopping.
    console : rich.console.Console, optional
        Where progress goes.

    Returns
    -------
    DemoResult
    """
    from simengine.config.plan import load_plan
    from simengine.config.spec import load_spec
    from simengine.engine import simulate
    from simengine.engine.outlook import deal_outlook
    from simengine.fitting.fit import fit, settings_from_spec
    from simengine.io.posterior import read_parameters, write_posterior
    from simengine.io.provenance import file_sha256
    from simengine.io.records import load_records
    from simengine.planning.scenarios import load_scenarios
    from simengine.planning.sensitivity import run_sensitivity, write_sensitivity
    from simengine.planning.stress import run_stress, write_stress
    from simengine.report.export import write_exports
    from simengine.report.html import write_report
    from simengine.synth import generate, write

    con = console or Console()
    out = Path(out)
    timings: dict[str, float] = {}
    _prepare_out(out)
    data = out / "data"
    posterior = out / "posterior.nc"
    fdir = out / "forecast"
    with _step(con, timings, "synth", "synthetic CRM (simengine synth)"):
        write(data, generate(seed))
    spec = load_spec(_SPEC)
    plan = load_plan(data / "plan.toml")
    records = load_records(data / "records.csv", spec)
    con.print(f"   {len(records):,} units; plan {plan.start} – {plan.end}, as of {plan.as_of}",
              highlight=False)
    settings = settings_from_spec(spec, draws=draws, tune=tune, chains=chains)
    spare_core = (os.cpu_count() or 1) > 1
    # The engine's kernels compile (first run on a machine) or load from Numba's
    # cache in a second process while the fit runs; simulate then loads them.
    warm = _warm_engine() if spare_core else None
    try:
        with _step(con, timings, "fit", f"Bayesian fit, {settings.chains} chains × "
                   f"{settings.draws} draws (simengine fit)"):
            idata = fit(records, spec, plan.as_of, seed, settings=settings,
                        allow_unconverged=allow_unconverged,
                        data_sha256=file_sha256(data / "records.csv"),
                        parallel_parts=spare_core)
            write_posterior(idata, posterior)
    except BaseException:
        if warm is not None:  # the demo stops here: no simulation to warm up for
            warm.kill()
            warm.wait()
        raise
    if warm is not None:
        warm.wait()
    if idata["posterior"].attrs.get("simengine_converged") == "false":
        con.print("[bold yellow]   the fit missed the convergence gate; the posterior is flagged "
                  "simengine_converged=false[/]", highlight=False)
    with _step(con, timings, "simulate", f"simulate {paths:,} paths (simengine simulate)"):
        with warnings.catch_warnings():
            # read_parameters warns on an unconverged file; the demo said so above.
            warnings.filterwarnings(
                "ignore", message=r".*missed the convergence gate", category=UserWarning
            )
            params = read_parameters(posterior)
        # Recorded as `simengine simulate` does; the report finds the posterior
        # next to the forecast directory by this hash.
        hashes = {"posterior": file_sha256(posterior),
                  "plan": file_sha256(data / "plan.toml")}
        forecast = simulate(params, plan, paths=paths, seed=seed, input_sha256=hashes)
        # The per-deal outlook of the open units, as `simengine simulate` writes it.
        forecast.deals = deal_outlook(params, plan)
        forecast.write(fdir)
    planning_paths = max(2_000, paths // _PLANNING_SHARE)
    with _step(con, timings, "stress",
               f"stress scenarios, {planning_paths:,} paths each (simengine stress)"):
        scenarios = load_scenarios(_SCENARIOS)
        write_stress(run_stress(params, plan, scenarios, paths=planning_paths, seed=seed),
                     fdir / "stress")
    with _step(con, timings, "sensitivity",
               f"sensitivity, {planning_paths:,} paths a run (simengine sensitivity)"):
        write_sensitivity(run_sensitivity(params, plan, paths=planning_paths, seed=seed),
                          fdir / "sensitivity")
    with _step(con, timings, "report", "HTML report (simengine report)"):
        report = write_report(fdir)
    exports = []
    with _step(con, timings, "export", "Parquet and CSV exports (simengine export)"):
        for fmt in ("parquet", "csv"):
            exports.append(write_exports(fdir, fmt))
    return DemoResult(out=out, data=data, posterior=posterior, forecast=fdir, report=report,
                      exports=exports, timings=timings)


def _short_date(start: Any, offset: float) -> str:
    from simengine.report import format as fmt

    text = fmt.date(start, offset)
    return text.rsplit(",", 1)[0] if "," in text else text  # "Apr 26"


def _print_summary(con: Console, res: DemoResult) -> None:
    from simengine.report import format as fmt
    from simengine.report.data import read_forecast
    from simengine.report.html import coverage_band, headlines

    con.print("[bold]Headline per segment[/] (the total is simulated jointly, not summed)")
    for h in headlines(read_forecast(res.forecast)):
        con.print(
            f"[bold]{h.segment:<6}[/] target {fmt.money(h.target)}: "
            f"P(hit) [bold]{fmt.percent_pm(h.prob_hit, h.prob_hit_se)}[/], "
            f"P(within 5%) {fmt.percent_pm(h.prob_within_5pct, h.prob_within_5pct_se)}",
            highlight=False,
        )
        con.print(
            f"       revenue P10/P50/P90 {fmt.money(h.revenue_p10)} / "
            f"{fmt.money(h.revenue_p50)} / {fmt.money(h.revenue_p90)}; target reached "
            f"{_short_date(h.start, h.ttt_p50)} (80%: {_short_date(h.start, h.ttt_p10)} – "
            f"{_short_date(h.start, h.ttt_p90)}); coverage {fmt.ratio(h.coverage_p50)} "
            f"({coverage_band(h.coverage_p50)})",
            highlight=False,
        )
    con.print(f"synthetic CRM   {res.data}", highlight=False)
    con.print(f"posterior       {res.posterior}", highlight=False)
    con.print(f"forecast        {res.forecast}", highlight=False)
    con.print(f"[bold]report          {res.report}[/]", highlight=False)
    for e in res.exports:
        con.print(f"export          {e}", highlight=False)
    total = sum(res.timings.values())
    steps = ", ".join(f"{k} {v:.0f} s" for k, v in res.timings.items())
    con.print(f"total {total:.0f} s ({steps})", highlight=False)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status (0, 2 bad input, 3 not converged)."""
    ap = argparse.ArgumentParser(prog="python -m simengine.demo",
                                 description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path("demo-output"))
    ap.add_argument("--paths", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=20270104)
    ap.add_argument("--draws", type=int, default=None, help="sampler draws per chain")
    ap.add_argument("--tune", type=int, default=None, help="sampler tuning steps per chain")
    ap.add_argument("--chains", type=int, default=None)
    ap.add_argument("--allow-unconverged", action="store_true",
                    help="go on with a posterior flagged unconverged instead of stopping")
    args = ap.parse_args(argv)
    ignore_pytensor_blas_notice()
    con = Console()
    err = Console(stderr=True)
    kwargs: dict[str, Any] = {"paths": args.paths, "seed": args.seed, "draws": args.draws,
                              "tune": args.tune, "chains": args.chains,
                              "allow_unconverged": args.allow_unconverged, "console": con}
    try:
        res = run_demo(args.out, **kwargs)
    except InputError as exc:
        err.print(f"[bold red]error:[/] {escape(exc.report(limit=50))}", highlight=False)
        return 2
    except ConvergenceError as exc:
        err.print(f"[bold red]not converged:[/] {escape(str(exc))}", highlight=False)
        return 3
    _print_summary(con, res)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
