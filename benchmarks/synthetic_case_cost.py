"""Where one case of the synthetic calibration test spends its time.

Runs :func:`simengine.backtest.synthetic.run_synthetic` on the given seeds,
one after the other in this process, with the settings of
``tests/backtest/test_synthetic.py::test_synthetic_truth_calibration``
(``models/demo.toml``, 52 weeks of history, the sampler settings
:data:`simengine.backtest.synthetic.CALIBRATION_FIT`, 20,000 engine
paths), and prints per seed the wall time of each stage: data generation
and set-up, graph hashing and nutpie compilation (the compiled-model
cache's misses), sampling (with the gate's retry), the
convergence gate, the posterior predictive checks, the posterior file, the
engine and the baselines, plus the case's CPU time (the machine's load
inflates the wall times, not the CPU time), the cache counters and each
fit's gate.
The stages are timed by wrapping the library's functions in this process;
nothing else changes. The first seed pays the compilations (and the
engine's Numba load or compile); later seeds show the warm cost.

Usage (figures quoted in docs/validation-tests.md)::

    nice -n 10 .venv/bin/python benchmarks/synthetic_case_cost.py 1,2 /tmp/synth-cost
"""

from __future__ import annotations

import collections
import functools
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

T: collections.defaultdict[str, float] = collections.defaultdict(float)


def timed(label: str, f: Callable[..., Any]) -> Callable[..., Any]:
    """``f``, adding its wall time to ``T[label]``."""

    @functools.wraps(f)
    def g(*a: Any, **k: Any) -> Any:
        t = time.perf_counter()
        try:
            return f(*a, **k)
        finally:
            T[label] += time.perf_counter() - t

    return g


def wrap(mod: Any, name: str, label: str) -> None:
    """Replace ``mod.name`` by its timed version."""
    setattr(mod, name, timed(label, getattr(mod, name)))


def main(argv: list[str]) -> None:
    """Time the cases of the seeds ``argv[0]`` (e.g. ``1,2``) in folder ``argv[1]``."""
    t0 = time.perf_counter()
    import nutpie
    import xarray as xr

    import simengine.backtest.run
    import simengine.backtest.synthetic
    import simengine.engine
    import simengine.engine.simulate
    import simengine.fitting._compiled as compiled
    import simengine.fitting.fit
    import simengine.io.posterior
    from simengine._quiet import ignore_pytensor_blas_notice
    from simengine.config.spec import load_spec

    ignore_pytensor_blas_notice()
    fitm = sys.modules["simengine.fitting.fit"]
    sim = sys.modules["simengine.engine.simulate"]
    post = sys.modules["simengine.io.posterior"]
    run = sys.modules["simengine.backtest.run"]
    syn = sys.modules["simengine.backtest.synthetic"]
    T["imports"] = time.perf_counter() - t0

    wrap(syn, "synthetic_case", "generate the synthetic CRM")
    wrap(fitm, "fit_data", "fit set-up (fit_data)")
    wrap(fitm, "_build_part", "build the PyMC models")
    wrap(compiled, "graph_signature", "graph hash (compiled-model cache key)")
    wrap(nutpie, "compile_pymc_model", "nutpie compile (cache misses)")
    wrap(fitm, "_run_sampler", "sampling (nutpie, incl. the gate's retry)")
    wrap(fitm, "check_convergence", "convergence gate")
    wrap(fitm, "_check_part", "posterior predictive checks")
    wrap(post, "write_posterior", "write posterior.nc")
    wrap(post, "read_parameters", "read posterior.nc")
    wrap(simengine.engine, "prepare", "engine prepare")
    wrap(sim, "run_blocks", "engine run_blocks (20,000 paths)")
    for name in list(run.BASELINES):
        run.BASELINES[name] = timed("baselines (3)", run.BASELINES[name])
    wrap(run, "score_origin", "whole case but generation (score_origin)")

    seeds = [int(s) for s in argv[0].split(",")]
    out = Path(argv[1])
    spec = load_spec(Path("models/demo.toml"))
    cfg = run.BacktestConfig(period_days=syn.PERIOD_DAYS, paths=20_000, seed=0)
    fc = run.simengine_forecaster(cfg, fit_overrides=syn.CALIBRATION_FIT)
    print(f"imports {T['imports']:.1f} s; fit settings {syn.CALIBRATION_FIT}")
    for s in seeds:
        before = dict(T)
        t, cpu = time.perf_counter(), time.process_time()
        syn.run_synthetic([s], spec, out, cfg, fc, history_weeks=52)
        wall = time.perf_counter() - t
        cpu = time.process_time() - cpu
        info = fitm.compiled_cache_info()
        print(
            f"\nseed {s}: wall {wall:.1f} s, CPU {cpu:.1f} s (this process, all threads; "
            f"compiled-model cache so far: {info})"
        )
        for k in T:
            d = T[k] - before.get(k, 0.0)
            if k != "imports" and d > 0.05:
                print(f"  {k:44s} {d:7.1f} s")
        path = next((out / f"seed-{s}" / "origins").glob("*/posterior.nc"))
        with xr.open_dataset(path, group="posterior", engine="h5netcdf") as ds:
            attempts = json.loads(ds.attrs["simengine_fit_attempts"])
            ok = ds.attrs.get("simengine_converged")
        passed = {p: [a["passed"] for a in v] for p, v in attempts.items()}
        print(f"  gate passed: {ok}; attempts passed per part: {passed}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
