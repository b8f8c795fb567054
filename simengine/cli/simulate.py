"""``simengine simulate``: parameters + plan -> ``DIR/forecast.nc`` and ``DIR/summary.csv``.

Parameters come from a fitted posterior (``--posterior posterior.nc``) or a
planner's assumptions file (``--assumptions assumptions.toml``, optionally
with the open pipeline of a records file: ``--pipeline records.csv --model
SPEC``). Output is written atomically; an existing ``--out`` is kept unless
``--force``.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer
from rich.table import Table

from simengine.cli._common import console, progress_bar
from simengine.cli._planning_options import ClusterOpt, block_map_for
from simengine.config.plan import Plan, load_plan
from simengine.errors import InputError, Issue
from simengine.io.provenance import file_sha256
from simengine.params import FunnelParameters

__all__ = ["load_parameters", "register", "simulate_cmd"]


def load_parameters(
    *,
    plan: Plan,
    posterior: Path | None,
    assumptions: Path | None,
    pipeline: Path | None,
    model: Path | None,
    seed: int,
    n_draws: int = 4000,
) -> FunnelParameters:
    """Read parameters from exactly one source (see the command's help).

    Raises
    ------
    InputError
        Both or neither source, ``--pipeline`` without ``--model`` (or with a
        posterior), or any problem in the files.
    """
    issues = []
    if (posterior is None) == (assumptions is None):
        issues.append(
            Issue("<command line>", None, "--posterior/--assumptions", "", "give exactly one")
        )
    if pipeline is not None and (model is None or assumptions is None):
        issues.append(
            Issue(
                "<command line>",
                None,
                "--pipeline",
                str(pipeline),
                "needs --model and goes with --assumptions (a posterior has its open units)",
            )
        )
    if issues:
        raise InputError(issues, summary="simulate: bad options")
    if posterior is not None:
        from simengine.io.posterior import read_parameters

        return read_parameters(posterior)
    from simengine.config.assumptions import read_assumptions
    from simengine.snapshot import pipeline_from_records

    assert assumptions is not None
    params = read_assumptions(assumptions, n_draws=n_draws, seed=seed, as_of=plan.as_of)
    if pipeline is not None:
        assert model is not None
        ou = pipeline_from_records(pipeline, model, params.as_of, params.segments, params.stages)
        params = dataclasses.replace(params, open_units=ou)
    return params


def simulate_cmd(
    plan: Annotated[Path, typer.Option("--plan", help="Plan TOML (period, targets, new units).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output directory.")],
    seed: Annotated[int, typer.Option("--seed", help="Root seed (>= 0).")],
    posterior: Annotated[
        Path | None, typer.Option("--posterior", help="Fitted posterior.nc.")
    ] = None,
    assumptions: Annotated[
        Path | None, typer.Option("--assumptions", help="Assumptions TOML.")
    ] = None,
    pipeline: Annotated[
        Path | None,
        typer.Option("--pipeline", help="Records file whose open units join the assumptions."),
    ] = None,
    model: Annotated[
        Path | None, typer.Option("--model", "-m", help="Funnel spec for --pipeline.")
    ] = None,
    paths: Annotated[int, typer.Option("--paths", min=1, help="Simulated paths.")] = 1_000_000,
    threads: Annotated[
        int | None, typer.Option("--threads", min=1, help="Worker threads (default: all cores).")
    ] = None,
    block_size: Annotated[
        int, typer.Option("--block-size", min=1, help="Paths per block.")
    ] = 50_000,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing --out.")] = False,
    cluster: ClusterOpt = None,
    store: Annotated[
        Path | None,
        typer.Option("--store", help="Also record the forecast in this history store (DuckDB)."),
    ] = None,
) -> None:
    """Simulate funnel paths and write forecast.nc and summary.csv."""
    from simengine.engine import simulate

    if out.exists() and not force:
        raise InputError.single(out, "output exists; pass --force to replace it")
    if seed < 0:
        raise InputError.single("<command line>", "must be >= 0", column="--seed", value=seed)
    if cluster is not None:  # scale-out (simengine.engine.distributed): check the option early
        from simengine.engine.distributed import parse_cluster

        parse_cluster(cluster)
    if store is not None:  # a foreign or corrupt store fails before the simulation
        from simengine.history.store import HistoryStore

        HistoryStore(store).check()
    the_plan = load_plan(plan)
    params = load_parameters(
        plan=the_plan,
        posterior=posterior,
        assumptions=assumptions,
        pipeline=pipeline,
        model=model,
        seed=seed,
    )
    hashes = {"plan": file_sha256(plan)}
    where = {"plan": str(plan.resolve())}
    for key, f in (
        ("posterior", posterior),
        ("assumptions", assumptions),
        ("pipeline", pipeline),
        ("model", model),
    ):
        if f is not None:
            hashes[key] = file_sha256(f)
            where[key] = str(f.resolve())
    t0 = time.perf_counter()
    with (
        block_map_for(cluster) as block_map,  # None: in-process threads; else Dask tasks
        progress_bar() as on_block,
    ):
        fc = simulate(
            params,
            the_plan,
            paths=paths,
            seed=seed,
            block_size=block_size,
            threads=threads,
            input_sha256=hashes,
            block_map=block_map,
            on_block=on_block,
        )
    fc.dataset.attrs["input_paths"] = json.dumps(where, sort_keys=True)
    fc.deals = _deals(params, the_plan, pipeline, model)
    fc.write(out, force=force)
    secs = time.perf_counter() - t0
    s = fc.summary.set_index(["segment", "metric", "stat"])["value"]
    table = Table(title=f"{paths:,} paths in {secs:.1f} s -> {out}")
    for col in ("segment", "target", "revenue p50", "p10 - p90", "P(hit)", "coverage"):
        table.add_column(col, justify="left" if col == "segment" else "right")
    targets = fc.dataset["target"].to_series()
    segs = [str(v) for v in fc.dataset["segment"].values]
    for i, seg in enumerate(segs):
        table.add_row(
            seg,
            f"{targets[seg]:,.0f}",
            f"{s[seg, 'revenue', 'p50']:,.0f}",
            f"{s[seg, 'revenue', 'p10']:,.0f} - {s[seg, 'revenue', 'p90']:,.0f}",
            f"{s[seg, 'attainment', 'prob_hit']:.1%} ± {s[seg, 'attainment', 'prob_hit_se']:.1%}",
            f"{s[seg, 'coverage', 'mean']:.2f}x",
            end_section=i == len(segs) - 2,
        )
    console.print(table)
    if store is not None:
        from simengine.cli.history import record_forecast_dir

        added, key = record_forecast_dir(out, store)
        console.print(f"{'recorded in' if added else 'already in'} {store} (plan {key})")


def _deals(
    params: FunnelParameters, plan: Plan, pipeline: Path | None, model: Path | None
) -> pd.DataFrame:
    """Compute the per-deal outlook of the open units, labelled by record id where known.

    A posterior file stores its open units' record ids (the ``unit``
    coordinate); files written before it did are labelled ``unit-<index>``.
    """
    from simengine.engine.outlook import deal_outlook

    ids = None
    if pipeline is not None and model is not None:
        from simengine.planning.inputs import open_unit_ids

        ids = open_unit_ids(pipeline, model, params.as_of)
    return deal_outlook(params, plan, ids)


def register(app: typer.Typer) -> None:
    """Add the ``simulate`` command to ``app``."""
    app.command("simulate")(simulate_cmd)
