"""Seeded engine workloads built in code, shared by tests and benchmarks.

A workload here is the one
definition used by ``tests/`` and ``benchmarks/`` alike, so a recorded
benchmark number and the tests that exercise the same problem keep meaning
the same parameters.
"""

from __future__ import annotations

import datetime as dt

import numpy as np

from simengine.config.plan import Plan
from simengine.params import FunnelParameters, OpenUnits

__all__ = ["LIGHT_AS_OF", "light_workload"]

#: As-of date (and period start) of :func:`light_workload`.
LIGHT_AS_OF = dt.date(2027, 1, 4)


def light_workload(seed: int = 11) -> tuple[FunnelParameters, Plan]:
    """Return a light but complete funnel: a small team's, with every engine feature.

    2 segments x 2 channels (4 cells), 4 stages (``mql -> sql ->
    opportunity -> won``), 16 parameter draws, an 8-week period starting at
    the as-of date (horizon 70 days), ~15 new MQLs per cell per period,
    sales-sourced opportunities, and 30 open units (half with a known
    amount). Used by ``tests/engine/test_distributed.py`` and by
    ``benchmarks/bench_distributed.py`` (its ``light`` workload, ~14k paths/s
    per core); the default seed gives the parameters its recorded numbers
    were measured with.

    Parameters
    ----------
    seed : int
        Seed of the NumPy generator that draws the parameters.

    Returns
    -------
    params : FunnelParameters
        ``conversion``, delays, arrival rates: ``(16, 4, 3)``; deal sizes
        ``(16, 4)``.
    plan : Plan
        ``2027-01-04 .. 2027-02-28``, targets ``smb`` 40,000 and ``mid``
        150,000; plan text ``"light workload"`` (provenance only).
    """
    rng = np.random.default_rng(seed)
    stages = ("mql", "sql", "opportunity", "won")
    cells = ("smb/ads", "smb/webinar", "mid/ads", "mid/webinar")
    d, c, s = 16, len(cells), len(stages) - 1
    rate = np.zeros((d, c, s))
    rate[:, :, 0] = rng.uniform(2.0, 5.0, (d, c))  # MQLs per week
    rate[:, :, 2] = rng.uniform(0.2, 0.8, (d, c))  # sales-sourced opportunities
    n_open = 30
    params = FunnelParameters(
        stages=stages,
        cells=cells,
        segments=("smb", "mid"),
        cell_segment=np.array([0, 0, 1, 1], np.int64),
        pipeline_stage=2,
        as_of=LIGHT_AS_OF,
        conversion=rng.uniform(0.25, 0.6, (d, c, s)),
        delay_mu=rng.normal(2.3, 0.2, (d, c, s)),
        delay_sigma=rng.uniform(0.4, 0.8, (d, c, s)),
        arrival_rate=rate,
        arrival_dispersion=np.full((d, c, s), 0.2),
        arrival_trend=np.zeros((d, c, s)),
        deal_size_mu=rng.normal(np.log([4e3, 4e3, 2e4, 2e4]), 0.05, (d, c)),
        deal_size_sigma=np.full((d, c), 0.6),
        open_units=OpenUnits(
            rng.integers(0, c, n_open).astype(np.int64),
            rng.integers(0, s, n_open).astype(np.int64),
            rng.uniform(0.0, 40.0, n_open),
            np.where(rng.random(n_open) < 0.5, rng.lognormal(9.0, 0.5, n_open), np.nan),
        ),
    )
    plan = Plan(
        start=LIGHT_AS_OF,
        end=LIGHT_AS_OF + dt.timedelta(days=55),
        as_of=LIGHT_AS_OF,
        targets={"smb": 4e4, "mid": 1.5e5},
        horizon_days=70,
        text="light workload",
    )
    return params, plan
