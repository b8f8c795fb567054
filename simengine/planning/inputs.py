"""Reading the inputs of the planning commands: a plan plus posterior or assumptions.

An assumptions file may take the open pipeline of a records file
(``--pipeline records.csv --model SPEC``), as ``simengine simulate`` does, so
a stress test or a sensitivity run starts from the same pipeline as the
forecast it explains.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

from simengine.config.plan import Plan, load_plan
from simengine.errors import InputError
from simengine.io.provenance import file_sha256
from simengine.params import FunnelParameters

__all__ = ["load_inputs", "open_unit_ids"]


def load_inputs(
    plan_path: str | Path,
    *,
    posterior: str | Path | None = None,
    assumptions: str | Path | None = None,
    n_draws: int = 4000,
    seed: int = 0,
    pipeline: str | Path | None = None,
    model: str | Path | None = None,
) -> tuple[FunnelParameters, Plan, dict[str, str]]:
    """Read the plan and exactly one parameter source, and check they fit.

    Parameters
    ----------
    plan_path : str or Path
        Plan TOML.
    posterior : str or Path, optional
        Posterior netCDF (``simengine fit``), read by
        ``simengine.io.posterior.read_parameters``.
    assumptions : str or Path, optional
        Assumptions TOML, read by ``simengine.config.assumptions.read_assumptions``
        with ``n_draws`` draws seeded by ``seed``.
    n_draws, seed : int
        For assumptions only.
    pipeline, model : str or Path, optional
        A records file whose units open at the as-of date join the
        assumptions, and the funnel spec to read it with (both, with
        ``assumptions`` only: a posterior carries its own open units).

    Returns
    -------
    (FunnelParameters, Plan, dict)
        The parameters, the plan and the SHA-256 of each input file.

    Raises
    ------
    InputError
        Neither or both parameter sources, ``--pipeline`` without ``--model``
        or with a posterior, unreadable files, or a plan whose segments or
        planned stages do not fit the parameters.
    """
    if (posterior is None) == (assumptions is None):
        raise InputError.single(
            "<command line>",
            "give exactly one of --posterior or --assumptions",
            column="--posterior/--assumptions",
        )
    if (pipeline is None) != (model is None) or (pipeline is not None and assumptions is None):
        raise InputError.single(
            "<command line>",
            "--pipeline needs --model and goes with --assumptions (a posterior has its open "
            "units)",
            column="--pipeline",
            value="" if pipeline is None else str(pipeline),
        )
    plan = load_plan(plan_path)
    # Imported here: the readers pull in heavy modules (ArviZ, the records loader).
    if posterior is not None:
        from simengine.io.posterior import read_parameters

        src = Path(posterior)
        params = read_parameters(src)
        kind = "posterior"
    else:
        from simengine.config.assumptions import read_assumptions

        src = Path(assumptions)  # type: ignore[arg-type]
        params = read_assumptions(src, n_draws=n_draws, seed=seed, as_of=plan.as_of)
        kind = "assumptions"
        if pipeline is not None and model is not None:
            from simengine.snapshot import pipeline_from_records

            ou = pipeline_from_records(
                pipeline, model, params.as_of, params.segments, params.stages
            )
            params = dataclasses.replace(params, open_units=ou)
    if not src.is_file():
        raise InputError.single(src, f"the {kind} file does not exist")
    plan.check_segments(params.segments, params.entry_stages)
    if params.as_of != plan.as_of:
        raise InputError.single(
            plan.path or "<plan>",
            f"as_of differs from the {kind} file's as-of date {params.as_of.isoformat()}",
            column="as_of",
            value=plan.as_of.isoformat(),
        )
    hashes = {"plan": file_sha256(plan_path), kind: file_sha256(src)}
    if pipeline is not None and model is not None:
        hashes |= {"pipeline": file_sha256(pipeline), "model": file_sha256(model)}
    return params, plan, hashes


def open_unit_ids(records: str | Path, model: str | Path, as_of: dt.date) -> list[str]:
    """Ids of the units of a records file open at ``as_of``, in record order.

    The order of :func:`simengine.snapshot.open_units` (and so of
    :func:`simengine.config.assumptions.pipeline_from_records`): the per-deal
    outlook labels its rows with them.
    """
    from simengine.config.spec import load_spec
    from simengine.io.records import as_of_view, load_records

    spec = load_spec(model)
    view = as_of_view(load_records(records, spec), spec, as_of)
    is_open = view[spec.stage_columns[-1]].isna() & view["lost_at"].isna()
    return [str(i) for i in view.loc[is_open, "id"]]
