"""Engine speed (pytest-benchmark) on the standard workload (see engine_report.py).

Run: .venv/bin/pytest benchmarks/bench_engine.py --benchmark-only \
         --benchmark-columns=min,mean,rounds
Each benchmark stores paths/s in ``extra_info``. The PyMC comparison is a
*static variant* of the same generative model (counts only: weekly Poisson
arrivals over the period, the binomial chain to wins, revenue from the wins'
mean amount; no delays, no open units, no per-unit amounts), sampled with
``pm.sample_posterior_predictive`` -- a much lighter model than the engine's,
so the ratio flatters PyMC.
"""

from __future__ import annotations

import numpy as np
import pytest
from engine_report import draw_bound_us, draw_costs_ns, draws_per_path, standard_workload

from simengine.engine import prepare
from simengine.engine.blocks import Block, run_block
from simengine.engine.reference import reference_paths
from simengine.engine.simulate import run_blocks

ENGINE_PATHS = 20_000
REFERENCE_PATHS = 500


@pytest.fixture(scope="module")
def prepared():
    params, plan = standard_workload()
    pr = prepare(params, plan)
    run_block(pr, Block(0, 0, 2), 1)  # load the compiled kernels
    return pr


@pytest.mark.parametrize("threads", [1, 2])
def test_engine(benchmark, prepared, threads: int) -> None:
    benchmark.pedantic(
        run_blocks, args=(prepared, ENGINE_PATHS, 1, 2_500, threads), rounds=2, iterations=1
    )
    benchmark.extra_info["paths"] = ENGINE_PATHS
    benchmark.extra_info["paths_per_s"] = ENGINE_PATHS / benchmark.stats.stats.min


def test_numpy_reference(benchmark, prepared) -> None:
    args = (prepared.params, prepared.plan, REFERENCE_PATHS, 1)
    benchmark.pedantic(reference_paths, args=args, rounds=2, iterations=1)
    benchmark.extra_info["paths"] = REFERENCE_PATHS
    benchmark.extra_info["paths_per_s"] = REFERENCE_PATHS / benchmark.stats.stats.min


def test_draw_bound(benchmark) -> None:
    """Not a speed of the engine: the cost of the draws one path needs (1 thread).

    Draws are counted on 500 paths of a counting copy of the kernels; the
    benchmark times the per-variate cost measurement.
    """
    draws = draws_per_path(500)
    costs = benchmark.pedantic(
        draw_costs_ns, args=(draws,), kwargs={"n": 300_000}, rounds=1, iterations=1
    )
    benchmark.extra_info["ns_per_draw"] = costs
    benchmark.extra_info["draws_per_path"] = draws
    benchmark.extra_info["draws_per_path_total"] = sum(draws["calls"].values())
    benchmark.extra_info["draw_bound_us_per_path"] = draw_bound_us(draws, costs)


def test_pymc_static_variant(benchmark) -> None:
    import arviz as az
    import pymc as pm

    params, plan = standard_workload()
    weeks = plan.period_days / 7
    coords = {"cell": list(params.cells), "step": list(params.steps)}
    post = az.from_dict(
        posterior={
            "rate_mql": params.arrival_rate[None, :, :, 0],
            "rate_opp": params.arrival_rate[None, :, :, 2],
            "conversion": params.conversion[None],
            "deal_mean": np.exp(params.deal_size_mu + params.deal_size_sigma**2 / 2)[None],
        },
        coords=coords,
        dims={
            "rate_mql": ["cell"],
            "rate_opp": ["cell"],
            "conversion": ["cell", "step"],
            "deal_mean": ["cell"],
        },
    )
    with pm.Model(coords=coords) as model:
        rate_mql = pm.HalfNormal("rate_mql", 100.0, dims="cell")
        rate_opp = pm.HalfNormal("rate_opp", 10.0, dims="cell")
        conversion = pm.Beta("conversion", 1.0, 1.0, dims=("cell", "step"))
        deal_mean = pm.HalfNormal("deal_mean", 1e5, dims="cell")
        mql = pm.Poisson("mql", rate_mql * weeks, dims="cell")
        sql = pm.Binomial("sql", mql, conversion[:, 0], dims="cell")
        direct = pm.Poisson("direct", rate_opp * weeks, dims="cell")
        opp = pm.Binomial("opp", sql + direct, conversion[:, 1], dims="cell")
        won = pm.Binomial("won", opp, conversion[:, 2], dims="cell")
        pm.Deterministic("revenue", won * deal_mean, dims="cell")

    def run():
        with model:
            return pm.sample_posterior_predictive(
                post,
                var_names=["mql", "sql", "direct", "opp", "won", "revenue"],
                random_seed=1,
                progressbar=False,
            )

    benchmark.pedantic(run, rounds=2, iterations=1)
    n = params.n_draws
    benchmark.extra_info["paths"] = n
    benchmark.extra_info["paths_per_s"] = n / benchmark.stats.stats.min
