"""Small parameter sets and plans for the planning tests (imported by tests and conftest)."""

from __future__ import annotations

import datetime as dt

import numpy as np

from simengine.config.plan import Plan
from simengine.params import FunnelParameters

STAGES = ("mql", "sql", "opportunity", "won")
CELLS = ("smb/web", "smb/event", "mid/web", "ent/web")
SEGMENTS = ("smb", "mid", "ent")


def make_params(n_draws: int = 8, seed: int = 0) -> FunnelParameters:
    """Four cells in three segments, draws varying a little around fixed rates."""
    rng = np.random.default_rng(seed)
    d, c, s = n_draws, len(CELLS), len(STAGES) - 1
    conv = np.clip(np.array([0.3, 0.6, 0.25]) + 0.02 * rng.standard_normal((d, c, s)), 0.01, 0.99)
    rate = np.zeros((d, c, s))
    rate[:, :, 0] = np.array([40.0, 20.0, 30.0, 10.0]) * rng.uniform(0.9, 1.1, (d, c))
    rate[:, 3, 2] = 2.0  # ent gets sales-sourced opportunities
    return FunnelParameters(
        stages=STAGES,
        cells=CELLS,
        segments=SEGMENTS,
        cell_segment=np.array([0, 0, 1, 2], np.int64),
        pipeline_stage=2,
        as_of=dt.date(2027, 1, 4),
        conversion=conv,
        delay_mu=np.log(np.full((d, c, s), 10.0)) + 0.1 * rng.standard_normal((d, c, s)),
        delay_sigma=np.full((d, c, s), 0.5),
        arrival_rate=rate,
        arrival_dispersion=np.full((d, c, s), 0.1),
        arrival_trend=np.full((d, c, s), 0.01),
        deal_size_mu=np.log(np.array([10e3, 10e3, 30e3, 250e3]))[None, :]
        + 0.05 * rng.standard_normal((d, c)),
        deal_size_sigma=np.full((d, c), 0.4),
    )


def make_plan(new_units: dict[str, dict[str, float]] | None = None) -> Plan:
    return Plan(
        start=dt.date(2027, 1, 4),
        end=dt.date(2027, 4, 4),
        as_of=dt.date(2027, 1, 4),
        targets={"smb": 150_000.0, "mid": 300_000.0, "ent": 750_000.0},
        new_units=new_units or {},
    )


def make_small(n_draws: int = 6, seed: int = 1) -> tuple[FunnelParameters, Plan]:
    """Two segments of one cell, three stages, targets near the median (P(hit) ~ 1/2)."""
    rng = np.random.default_rng(seed)
    d = n_draws
    conv = np.clip(np.array([0.5, 0.3]) + 0.03 * rng.standard_normal((d, 2, 2)), 0.05, 0.95)
    rate = np.zeros((d, 2, 2))
    rate[:, :, 0] = np.array([30.0, 10.0]) * rng.uniform(0.9, 1.1, (d, 2))
    params = FunnelParameters(
        stages=("mql", "opportunity", "won"),
        cells=("smb", "ent"),
        segments=("smb", "ent"),
        cell_segment=np.array([0, 1], np.int64),
        pipeline_stage=1,
        as_of=dt.date(2027, 1, 4),
        conversion=conv,
        delay_mu=np.log(np.full((d, 2, 2), 7.0)) + 0.1 * rng.standard_normal((d, 2, 2)),
        delay_sigma=np.full((d, 2, 2), 0.5),
        arrival_rate=rate,
        arrival_dispersion=np.full((d, 2, 2), 0.05),
        arrival_trend=np.zeros((d, 2, 2)),
        deal_size_mu=np.log(np.array([10e3, 100e3]))[None, :] + 0.05 * rng.standard_normal((d, 2)),
        deal_size_sigma=np.full((d, 2), 0.3),
    )
    plan = Plan(
        start=dt.date(2027, 1, 4),
        end=dt.date(2027, 4, 4),
        as_of=dt.date(2027, 1, 4),
        targets={"smb": 550_000.0, "ent": 1_750_000.0},
    )
    return params, plan


ASSUMPTIONS = """
stages = ["mql", "sql", "opportunity", "won"]
pipeline_stage = "opportunity"
[segments.smb]
new_per_week = { mql = 100.0 }
dispersion = 0.1
conversion = { sql = [0.30, 0.02], opportunity = [0.65, 0.03], won = [0.22, 0.02] }
delay_days = { sql = [5.0, 0.5], opportunity = [7.0, 0.5], won = [20.0, 0.6] }
deal_size = [10000.0, 0.4]
[segments.ent]
new_per_week = { mql = 20.0, opportunity = 1.0 }
conversion = { sql = [0.30, 0.02], opportunity = [0.65, 0.03], won = [0.22, 0.02] }
delay_days = { sql = [5.0, 0.5], opportunity = [10.0, 0.5], won = [30.0, 0.6] }
deal_size = [100000.0, 0.4]
"""

PLAN = """
start = 2027-01-04
end = 2027-04-04
as_of = 2027-01-04
[targets]
smb = 400000
ent = 1500000
[new_units]
smb = { mql = 1000 }
"""


def write_inputs(tmp_path):
    a = tmp_path / "assumptions.toml"
    a.write_text(ASSUMPTIONS)
    p = tmp_path / "plan.toml"
    p.write_text(PLAN)
    return a, p


def write_posterior_nc(params: FunnelParameters, path) -> None:
    """Write parameters as a posterior file per the contract (one chain, no open units)."""
    import json

    import arviz as az
    import xarray as xr

    steps = list(params.stages[1:])
    entry = list(params.stages[:-1])

    def da(x, dims):
        return (("chain", "draw", *dims), x[None, ...])

    post = xr.Dataset(
        {
            "conversion": da(params.conversion, ("cell", "step")),
            "delay_mu": da(params.delay_mu, ("cell", "step")),
            "delay_sigma": da(params.delay_sigma, ("cell", "step")),
            "arrival_rate": da(params.arrival_rate, ("cell", "entry_stage")),
            "arrival_dispersion": da(params.arrival_dispersion, ("cell", "entry_stage")),
            "arrival_trend": da(params.arrival_trend, ("cell", "entry_stage")),
            "deal_size_mu": da(params.deal_size_mu, ("cell",)),
            "deal_size_sigma": da(params.deal_size_sigma, ("cell",)),
        },
        coords={
            "chain": [0],
            "draw": np.arange(params.n_draws),
            "cell": list(params.cells),
            "step": steps,
            "entry_stage": entry,
        },
        attrs={
            "simengine_stages": json.dumps(list(params.stages)),
            "simengine_as_of": params.as_of.isoformat(),
            "simengine_pipeline_stage": params.stages[params.pipeline_stage],
        },
    )
    az.InferenceData(posterior=post).to_netcdf(str(path), engine="h5netcdf")
