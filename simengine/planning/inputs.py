"""Reading the inputs of the planning commands: a plan plus posterior or assumptions."""

from __future__ import annotations

from pathlib import Path

from simengine.config.plan import Plan, load_plan
from simengine.errors import InputError
from simengine.io.provenance import file_sha256
from simengine.params import FunnelParameters

__all__ = ["load_inputs"]


def load_inputs(
    plan_path: str | Path,
    *,
    posterior: str | Path | None = None,
    assumptions: str | Path | None = None,
    n_draws: int = 4000,
    seed: int = 0,
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

    Returns
    -------
    (FunnelParameters, Plan, dict)
        The parameters, the plan and the SHA-256 of each input file.

    Raises
    ------
    InputError
        Neither or both parameter sources, unreadable files, or a plan whose
        segments or planned stages do not fit the parameters.
    """
    if (posterior is None) == (assumptions is None):
        raise InputError.single(
            "<command line>",
            "give exactly one of --posterior or --assumptions",
            column="--posterior/--assumptions",
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
    return params, plan, hashes
