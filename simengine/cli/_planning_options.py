"""Options shared by the planning commands (``stress``, ``sensitivity``, ``plan``).

Each option is one ``Annotated`` type, declared once here; a command lists
the ones it takes with its own default. :func:`planning_inputs` is the
commands' common start: refuse an existing ``--out``, check ``--cluster``,
read the plan and one parameter source. :func:`block_map_for` yields where
the engine's blocks run (this process, or Dask for ``--cluster``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from simengine.errors import InputError

if TYPE_CHECKING:
    from simengine.config.plan import Plan
    from simengine.engine.simulate import BlockMap
    from simengine.params import FunnelParameters

__all__ = [
    "AssumptionsOpt",
    "BatchesOpt",
    "ClusterOpt",
    "DrawsOpt",
    "ForceOpt",
    "MaybePlanOpt",
    "ModelOpt",
    "PipelineOpt",
    "PlanOpt",
    "PosteriorOpt",
    "SeedOpt",
    "ThreadsOpt",
    "block_map_for",
    "planning_inputs",
]

_PLAN = typer.Option("--plan", help="Plan TOML (period, targets, new units).")
PlanOpt = Annotated[Path, _PLAN]
MaybePlanOpt = Annotated[Path | None, _PLAN]
PosteriorOpt = Annotated[
    Path | None, typer.Option("--posterior", help="Posterior netCDF from `fit`.")
]
AssumptionsOpt = Annotated[
    Path | None, typer.Option("--assumptions", help="Planner's assumptions TOML.")
]
PipelineOpt = Annotated[
    Path | None,
    typer.Option(
        "--pipeline",
        help="Records file whose open units join the assumptions (as `simulate` takes it).",
    ),
]
ModelOpt = Annotated[
    Path | None, typer.Option("--model", "-m", help="Funnel spec for --pipeline.")
]
SeedOpt = Annotated[
    int,
    typer.Option("--seed", min=0, help="The seed every run shares (common random numbers)."),
]
BatchesOpt = Annotated[
    int, typer.Option("--batches", min=2, help="Blocks per run for batch-means errors.")
]
DrawsOpt = Annotated[int, typer.Option("--draws", min=1, help="Draws from an assumptions file.")]
ThreadsOpt = Annotated[
    int | None,
    typer.Option("--threads", min=1, help="Worker threads in-process (default: all cores)."),
]
FitDrawsOpt = Annotated[
    int | None, typer.Option("--draws", min=1, help="Override the spec's draws per chain.")
]
TuneOpt = Annotated[
    int | None, typer.Option("--tune", min=1, help="Override the spec's tuning steps per chain.")
]
ChainsOpt = Annotated[
    int | None, typer.Option("--chains", min=1, help="Override the spec's chains.")
]
ForceOpt = Annotated[bool, typer.Option("--force", help="Replace an existing --out.")]
ClusterOpt = Annotated[
    str | None,
    typer.Option(
        "--cluster",
        help="Run every simulation's blocks on Dask: local:N (N worker processes here) or "
        "a scheduler address (tcp://host:8786). Same seed, same bytes as in-process.",
    ),
]


def planning_inputs(
    plan_file: Path,
    posterior: Path | None,
    assumptions: Path | None,
    draws: int,
    seed: int,
    *,
    out: Path | None,
    force: bool,
    cluster: str | None,
    paths: int | None = None,
    batches: int | None = None,
    pipeline: Path | None = None,
    model: Path | None = None,
) -> tuple[FunnelParameters, Plan]:
    """Check the options, then read the plan and its parameters.

    Raises
    ------
    InputError
        An existing ``--out`` without ``--force``, fewer ``--paths`` than
        ``--batches``, a malformed ``--cluster``, or any problem of
        :func:`simengine.planning.inputs.load_inputs`. Nothing is contacted
        or written.
    """
    if out is not None and out.exists() and not force:
        raise InputError.single(out, "output exists; pass --force to replace it")
    if paths is not None and batches is not None and paths < batches:
        raise InputError.single(
            "<command line>",
            f"needs at least --batches ({batches}) paths: one batch is one block of paths",
            column="--paths",
            value=paths,
        )
    if cluster is not None:
        from simengine.engine.distributed import parse_cluster

        parse_cluster(cluster)
    from simengine.planning.inputs import load_inputs

    params, plan, _ = load_inputs(
        plan_file,
        posterior=posterior,
        assumptions=assumptions,
        n_draws=draws,
        seed=seed,
        pipeline=pipeline,
        model=model,
    )
    return params, plan


@contextmanager
def block_map_for(cluster: str | None, *, connect_now: bool = False) -> Iterator[BlockMap | None]:
    """Yield where the blocks run: ``None`` (in-process) or a Dask map for ``--cluster``.

    The cluster is contacted when the first blocks run (after the inputs and
    scenarios are checked), or on entry with ``connect_now`` (a backtest,
    whose first blocks follow a fit); an unreachable scheduler is an
    :class:`~simengine.errors.InputError` after Dask's connect timeout.
    """
    if cluster is None:
        yield None
        return
    from simengine.engine.distributed import cluster_block_map

    with cluster_block_map(cluster, connect_now=connect_now) as block_map:
        yield block_map
