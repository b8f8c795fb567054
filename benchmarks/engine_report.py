"""Engine speed report: paths/s (1 and 2 threads), NumPy reference, draws per path
and the random-draw bound, warm start time.

Standard workload (the demo's size): 3 segments x 2 channels, 4 stages, a
13-week period with as-of = start, ~6,000 new MQLs and ~250 wins per period,
400 open units, 4,000 parameter draws.

Usage: .venv/bin/python benchmarks/engine_report.py [--paths 200000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import time

import numpy as np

from simengine.params import FunnelParameters, OpenUnits
from simengine.plan import Plan

AS_OF = dt.date(2027, 1, 4)
SEGMENTS = ("smb", "mid", "ent")
CHANNELS = ("webinar", "outbound")
STAGES = ("mql", "sql", "opportunity", "won")


def standard_workload(draws: int = 4000, seed: int = 0) -> tuple[FunnelParameters, Plan]:
    """The demo-sized workload as FunnelParameters + Plan (built in code, seeded)."""
    rng = np.random.default_rng(seed)
    cells = tuple(f"{s}/{c}" for s in SEGMENTS for c in CHANNELS)
    n_c, n_s = len(cells), 3
    # weekly MQLs per cell: 6,000 per 13 weeks in all
    mql = np.array([150.0, 80.0, 110.0, 60.0, 50.0, 12.0]) * 6000 / (13 * 462.0)
    opp_direct = np.array([2.0, 4.0, 2.0, 5.0, 2.0, 6.0])
    rate = np.zeros((draws, n_c, n_s))
    rate[:, :, 0] = mql * rng.lognormal(0, 0.05, (draws, n_c))
    rate[:, :, 2] = opp_direct * rng.lognormal(0, 0.1, (draws, n_c))
    base = np.array([0.30, 0.55, 0.33])
    conv = np.clip(base * rng.lognormal(0, 0.08, (draws, n_c, n_s)), 0, 1)
    delay_mu = np.log(np.array([6.0, 12.0, 28.0])) + rng.normal(0, 0.05, (draws, n_c, n_s))
    delay_sigma = np.full((draws, n_c, n_s), 0.6)
    deal = np.log(np.repeat([12_000.0, 30_000.0, 90_000.0], 2))
    n_open = 600
    open_units = OpenUnits(
        cell=rng.integers(0, n_c, n_open).astype(np.int64),
        stage=rng.choice(3, n_open, p=[0.25, 0.25, 0.5]).astype(np.int64),
        age_days=rng.integers(0, 60, n_open).astype(np.float64),
        amount=np.where(rng.random(n_open) < 0.6, rng.lognormal(10.2, 0.8, n_open), np.nan),
    )
    params = FunnelParameters(
        stages=STAGES,
        cells=cells,
        segments=SEGMENTS,
        cell_segment=np.repeat(np.arange(3), 2),
        pipeline_stage=2,
        as_of=AS_OF,
        conversion=conv,
        delay_mu=delay_mu,
        delay_sigma=delay_sigma,
        arrival_rate=rate,
        arrival_dispersion=np.full((draws, n_c, n_s), 0.05),
        arrival_trend=np.zeros((draws, n_c, n_s)),
        deal_size_mu=deal + rng.normal(0, 0.05, (draws, n_c)),
        deal_size_sigma=np.full((draws, n_c), 0.5),
        open_units=open_units,
        source="assumptions",
    )
    plan = Plan(
        start=AS_OF,
        end=AS_OF + dt.timedelta(days=90),
        as_of=AS_OF,
        targets={"smb": 1_500_000.0, "mid": 3_500_000.0, "ent": 6_000_000.0},
        text="standard workload",
    )
    return params, plan


# ----------------------------------------------------------------------------- draw bound
def draw_costs_ns(n: int = 2_000_000) -> dict[str, float]:
    """Nanoseconds per call of each RNG primitive the kernels use (one thread)."""
    import numba

    from simengine.engine import _rng

    @numba.njit(cache=False)
    def loop(kind: int, n: int, st: np.ndarray) -> float:  # pragma: no cover - compiled
        acc = 0.0
        for _ in range(n):
            if kind == 0:
                acc += _rng.uniform(st)
            elif kind == 1:
                acc += _rng.lognormal(st, 2.5, 0.6)
            elif kind == 2:
                acc += _rng.poisson(st, 100.0)
            elif kind == 3:
                acc += _rng.poisson(st, 0.5)
            elif kind == 4:
                acc += _rng.gamma(st, 20.0)
            else:
                acc += _rng.lognormal_truncated_below(st, 2.5, 0.6, 20.0)
        return acc

    st = np.zeros(4, np.uint64)
    _rng.seed_stream(_rng.root_seed(1), 0, 0, st)
    out = {}
    for k, name in enumerate(
        ["uniform", "lognormal", "poisson_100", "poisson_0.5", "gamma_20", "trunc_lognormal"]
    ):
        loop(k, 10, st)
        t = time.thread_time()
        loop(k, n, st)
        out[name] = (time.thread_time() - t) / n * 1e9
    return out


def draws_per_path(n_paths: int = 2000) -> dict[str, float]:
    """Expected random draws per path of the standard workload, by kind.

    Counted from the simulated paths (as-of = start and horizon = period end,
    so the period's entered counts are every event of the horizon). Events
    scheduled past the horizon still cost one delay draw and are not counted
    here, so the bound is a slight underestimate (conservative for the share).
    """
    from simengine.engine import prepare, run_paths

    params, plan = standard_workload()
    pr = prepare(params, plan)
    pm = run_paths(pr, 0, n_paths, seed=1)
    ent = pm.scalars[:, -1, 4:].mean(axis=0)  # total: mql, sql, opportunity, won
    ou = params.open_units
    active = int(pr.entry_active.sum())
    n_open = len(ou)
    open_sql = float(np.sum(ou.stage == 1))
    open_mql = float(np.sum(ou.stage == 0))
    open_pipe_no_amt = float(np.sum((ou.stage >= 2) & np.isnan(ou.amount)))
    # direct (sales-sourced) opportunities per period, from the rates
    direct_new = float(pr.arrival_rate[:, :, 2].sum(axis=1).mean() * plan.period_days / 7)
    return {
        "poisson (per week per active cell x entry stage)": float(
            active * ((plan.sim_days + 6) // 7)
        ),
        # each new unit gets a uniform day within its week
        "uniform (arrival day)": float(ent[0] + direct_new),
        "gamma (per week per active cell x entry stage)": float(
            active * ((plan.sim_days + 6) // 7)
        ),
        # Bernoulli uniforms of the cohort thinning: every unit at every stage it reaches
        # below the last (from new cohorts) + one per open unit and later step
        "uniform (Bernoulli thinning)": float(ent[0] + ent[1] + ent[2] - n_open),
        "lognormal (step delays)": float(ent[1] + ent[2] + ent[3] - n_open),
        "lognormal (leaving delays, pipeline)": float(ent[2] - ent[3]),
        "lognormal (amounts)": float(ent[2] - (n_open - open_sql - open_mql) + open_pipe_no_amt),
        "trunc_lognormal (open units)": float(n_open),
    }


def draw_bound_us(draws: dict[str, float], costs: dict[str, float]) -> float:
    """Microseconds per path if the path did nothing but its random draws."""
    kind = {
        "poisson (per week per active cell x entry stage)": costs["poisson_100"],
        "uniform (arrival day)": costs["uniform"],
        "gamma (per week per active cell x entry stage)": costs["gamma_20"],
        "uniform (Bernoulli thinning)": costs["uniform"],
        "lognormal (step delays)": costs["lognormal"],
        "lognormal (leaving delays, pipeline)": costs["lognormal"],
        "lognormal (amounts)": costs["lognormal"],
        "trunc_lognormal (open units)": costs["trunc_lognormal"],
    }
    return sum(draws[k] * kind[k] for k in draws) / 1000.0


def in_situ_lognormal_share(n_paths: int = 2000) -> dict[str, float]:
    """CPU us/path of the block kernel as shipped and with ``lognormal`` replaced.

    The variant swaps the RNG layer's lognormal (inversion: ndtri + exp) for
    ``exp(mu) * (0.5 + U)`` (one uniform, one exp) in a copy of the kernel
    module compiled without caching; the difference is what the lognormal
    draws cost inside the real kernel (latency-bound, unlike the tight-loop
    ``ns_per_draw``).
    """
    import importlib.util
    import tempfile
    from pathlib import Path

    import simengine.engine._kernels as kern
    from simengine.engine import BlockSummary, prepare
    from simengine.engine import _rng as rng
    from simengine.engine.blocks import _args

    src = Path(kern.__file__).read_text()
    nocache = (
        "import functools, numba\n"
        "jit = functools.partial(numba.njit, nogil=True, error_model='numpy')\n"
    )
    src = src.replace("from simengine.engine._jit import jit\n", nocache)
    cheap = src.replace(
        "lognormal = _rng.lognormal\n",
        "@jit\ndef lognormal(st, mu, sg):\n    return math.exp(mu) * (0.5 + uniform(st))\n",
    )
    params, plan = standard_workload()
    pr = prepare(params, plan)
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, text in (("shipped", src), ("cheap_lognormal", cheap)):
            f = Path(tmp) / f"k_{name}.py"
            f.write_text(text)
            spec = importlib.util.spec_from_file_location(f"k_{name}", f)
            assert spec is not None
            assert spec.loader is not None
            mod = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(mod)
            s = BlockSummary.zeros(pr)

            def run(n: int, mod=mod, s=s) -> None:
                mod.block_kernel(
                    rng.root_seed(1),
                    np.int64(0),
                    np.int64(n),
                    *_args(pr),
                    s.scal_hist,
                    s.welford,
                    s.hit,
                    s.within,
                    s.ttt_hist,
                    s.cum_hist,
                    s.cum_sum,
                    s.cum_comp,
                    s.wcov_hist,
                )

            run(3)
            t = time.thread_time()
            run(n_paths)
            out[f"{name}_cpu_us_per_path"] = (time.thread_time() - t) / n_paths * 1e6
    out["lognormal_share_of_path_time"] = 1 - (
        out["cheap_lognormal_cpu_us_per_path"] / out["shipped_cpu_us_per_path"]
    )
    return out


# ----------------------------------------------------------------------------- timings
def engine_rate(paths: int, threads: int, block_size: int = 10_000) -> tuple[float, float]:
    """(paths per second wall, CPU seconds per path) of run_blocks on the workload."""
    from simengine.engine import prepare
    from simengine.engine.blocks import Block, run_block
    from simengine.engine.simulate import run_blocks

    params, plan = standard_workload()
    pr = prepare(params, plan)
    run_block(pr, Block(0, 0, 2), 1)  # load compiled code
    c0, t0 = time.process_time(), time.perf_counter()
    run_blocks(pr, paths, 1, block_size, threads)
    wall = time.perf_counter() - t0
    return paths / wall, (time.process_time() - c0) / paths


def reference_rate(paths: int = 1000) -> float:
    """Paths per CPU second of the NumPy reference (one thread)."""
    from simengine.engine import prepare
    from simengine.engine.reference import reference_paths

    params, plan = standard_workload()
    pr = prepare(params, plan)
    reference_paths(pr, 20, 0)
    t0 = time.thread_time()
    reference_paths(pr, paths, 1)
    return paths / (time.thread_time() - t0)


WARM = """
import time
t0 = time.perf_counter()
import sys
sys.path.insert(0, {here!r})
from engine_report import standard_workload
from simengine.engine import prepare
from simengine.engine.blocks import Block, run_block
params, plan = standard_workload(draws=4000)
pr = prepare(params, plan)
run_block(pr, Block(0, 0, 1), 1)
print(time.perf_counter() - t0)
"""


def warm_start_s() -> float:
    """Seconds from interpreter start of a fresh process to its first finished block.

    Run twice; the second process finds Numba's on-disk cache (cache=True).
    """
    here = os.path.dirname(os.path.abspath(__file__))
    code = WARM.format(here=here)
    for _ in range(2):
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout
    return float(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--paths", type=int, default=100_000)
    ap.add_argument("--reference-paths", type=int, default=1_000)
    a = ap.parse_args()
    res: dict[str, object] = {"cpus": os.cpu_count(), "load_avg_1m": os.getloadavg()[0]}
    res["warm_start_s"] = warm_start_s()
    costs = draw_costs_ns()
    draws = draws_per_path()
    res["ns_per_draw"] = costs
    res["draws_per_path"] = draws
    res["draws_per_path_total"] = sum(draws.values())
    bound = draw_bound_us(draws, costs)
    res["draw_bound_us_per_path_1_thread"] = bound
    for threads in (1, 2):
        rate, cpu = engine_rate(a.paths, threads)
        res[f"engine_paths_per_s_{threads}_threads"] = rate
        res[f"engine_cpu_us_per_path_{threads}_threads"] = cpu * 1e6
    res["in_situ"] = in_situ_lognormal_share()
    res["share_of_draw_bound_(cpu)"] = bound / res["engine_cpu_us_per_path_1_threads"]  # type: ignore[operator]
    res["reference_paths_per_cpu_s"] = reference_rate(a.reference_paths)
    # per CPU second, one thread each: immune to other processes on a shared machine
    res["engine_over_reference_per_cpu_s"] = (
        1e6 / res["engine_cpu_us_per_path_1_threads"] / res["reference_paths_per_cpu_s"]  # type: ignore[operator]
    )
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
