"""Compile the engine's kernels, or load them from Numba's cache, before real work.

:func:`warm_kernels` runs one block of a tiny problem whose arrays have the
real argument types, so every kernel a forecast calls is compiled (on a
first run on a machine) or loaded from the on-disk cache in this process,
and written to the cache for the next one.
Dask workers call it at start-up (:class:`simengine.engine.distributed.WarmupPlugin`);
the demo runs it in a separate process (``python -m simengine.engine.warm``)
while the fit keeps the other core busy, so a first run on a fresh machine
does not compile the engine on the critical path.
"""

from __future__ import annotations

import datetime as dt

import numpy as np

from simengine.config.plan import Plan
from simengine.params import FunnelParameters, OpenUnits

__all__ = ["tiny_problem", "warm_kernels"]


def tiny_problem() -> tuple[FunnelParameters, Plan]:
    """Return a two-stage, one-cell problem with an open unit (real argument types).

    Returns
    -------
    FunnelParameters, Plan
    """
    day = dt.date(2027, 1, 4)
    one = np.ones((1, 1, 1))
    params = FunnelParameters(
        stages=("lead", "won"),
        cells=("x",),
        segments=("x",),
        cell_segment=np.zeros(1, np.int64),
        pipeline_stage=0,
        as_of=day,
        conversion=0.5 * one,
        delay_mu=one.copy(),
        delay_sigma=0.5 * one,
        arrival_rate=one.copy(),
        arrival_dispersion=0.1 * one,
        arrival_trend=0.0 * one,
        deal_size_mu=np.ones((1, 1)),
        deal_size_sigma=np.full((1, 1), 0.5),
        open_units=OpenUnits(
            np.zeros(1, np.int64), np.zeros(1, np.int64), np.ones(1), np.full(1, np.nan)
        ),
    )
    plan = Plan(start=day, end=day + dt.timedelta(days=13), as_of=day, targets={"x": 1.0})
    return params, plan


def warm_kernels() -> None:
    """Compile (or load from Numba's cache) the engine's kernels with one tiny block."""
    from simengine.engine import plan_blocks, prepare, run_block

    params, plan = tiny_problem()
    run_block(prepare(params, plan), plan_blocks(8, 8)[0], 0)


if __name__ == "__main__":
    warm_kernels()
