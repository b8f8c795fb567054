"""Paths grouped by draw against the interleaved mapping, with the NumPy reference (issue 17).

Paths per second of whole runs through
:func:`~simengine.engine.simulate.run_blocks` (as ``simulate`` runs them:
blocks of ``--block-size`` paths on ``--threads`` threads), for the default
mapping (path ``i`` of ``n`` uses draw ``floor(i D / n)``, consecutive paths
sharing a draw) and the interleaved one of before (draw ``i mod D``,
``Prepared.grouped_draws = 0``), rounds alternated; and the NumPy reference
(:func:`~simengine.engine.reference.reference_paths`, one process thread,
vectorised) on ``--reference-paths`` paths in the same run. The two mappings
produce the same law (``benchmarks/thinned_agreement.py --compare
interleaved``); what differs is the work done once per draw: a block of
50,000 paths of a 1,000,000-path run over 4,000 draws meets 200 draws (250
paths each) grouped and all 4,000 (12-13 each) interleaved, and only the
grouped mapping builds the per-draw day grids of the open units
(``_kernels._fill_grid``), so the interleaved variant is the engine as it
was before them.

The machine may be shared: the ratios within one run are the comparable
numbers; the load average is printed with them.

Usage::

    nice -n 10 .venv/bin/python benchmarks/bench_draws.py [--paths 1000000] [--rounds 1] \
        [--posterior DEMO/posterior.nc --plan DEMO/data/plan.toml --posterior-paths 200000]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from typing import Any

from engine_report import standard_workload


def _wall(pr: Any, paths: int, block_size: int, threads: int) -> float:
    from simengine.engine.simulate import run_blocks

    t0 = time.perf_counter()
    run_blocks(pr, paths, 1, block_size, threads)
    return time.perf_counter() - t0


def measure(params: Any, plan: Any, a: argparse.Namespace, paths: int) -> dict[str, Any]:
    """Paths/s of each mapping (best of ``a.rounds``, ``paths`` paths) and of the reference."""
    from simengine.engine import prepare
    from simengine.engine.reference import reference_paths

    grouped = prepare(params, plan)
    variants = {"grouped": grouped, "interleaved": dataclasses.replace(grouped, grouped_draws=0)}
    for pr in variants.values():
        _wall(pr, 4, 2, 1)  # load the compiled kernels
    best = {k: float("inf") for k in variants}
    for r in range(a.rounds):
        order = list(variants) if r % 2 == 0 else list(variants)[::-1]
        for k in order:
            best[k] = min(best[k], _wall(variants[k], paths, a.block_size, a.threads))
    reference_paths(params, plan, 20, 1)
    t0 = time.perf_counter()
    reference_paths(params, plan, a.reference_paths, 1)
    ref = a.reference_paths / (time.perf_counter() - t0)
    out: dict[str, Any] = {"paths": paths, "draws": int(grouped.conversion.shape[0])}
    for k, t in best.items():
        out[f"{k}_paths_per_s"] = round(paths / t, 1)
    out["reference_paths_per_s"] = round(ref, 1)
    out["grouped_over_interleaved"] = round(best["interleaved"] / best["grouped"], 3)
    out["grouped_over_reference"] = round(out["grouped_paths_per_s"] / ref, 2)
    out["load_average_1min"] = round(os.getloadavg()[0], 2)
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the comparison and print it as JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--paths", type=int, default=1_000_000)
    ap.add_argument("--block-size", type=int, default=50_000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--reference-paths", type=int, default=500)
    ap.add_argument("--posterior")
    ap.add_argument("--plan")
    ap.add_argument("--posterior-paths", type=int, help="paths on the posterior (default --paths)")
    a = ap.parse_args(argv)
    res: dict[str, Any] = {"paths": a.paths, "threads": a.threads, "block_size": a.block_size}
    res["standard"] = measure(*standard_workload(), a, a.paths)
    if a.posterior and a.plan:
        from simengine.config.plan import load_plan
        from simengine.io.posterior import read_parameters

        n_post = a.posterior_paths or a.paths
        res["posterior"] = measure(read_parameters(a.posterior), load_plan(a.plan), a, n_post)
    print(json.dumps(res, indent=1))
    return res


if __name__ == "__main__":
    main()
