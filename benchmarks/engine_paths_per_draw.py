"""Engine paths/s on the standard workload at two run sizes: does per-draw work dominate?

Paths are grouped by posterior draw (4,000 draws), so a run of ``n`` paths
serves ``n / 4,000`` paths a draw and per-draw work (the open units' survival
grids) weighs ``4,000 / n`` a path. Timing the same blocks at 20,000 paths (5
a draw, ``bench_engine.py``'s size) and at a larger size shows how much of a
path's cost is per draw.

Run: ``.venv/bin/python benchmarks/engine_paths_per_draw.py [--paths 20000,200000]``
"""

from __future__ import annotations

import argparse
import time

from engine_report import standard_workload

from simengine.engine import prepare
from simengine.engine.blocks import Block, run_block
from simengine.engine.simulate import run_blocks


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--paths", default="20000,200000")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    params, plan = standard_workload()
    pr = prepare(params, plan)
    run_block(pr, Block(0, 0, 2), 1)  # load the compiled kernels
    for n in (int(x) for x in a.paths.split(",")):
        t0 = time.perf_counter()
        run_blocks(pr, n, 1, 2_500, a.threads)
        dt = time.perf_counter() - t0
        print(
            f"{n} paths, {n / params.n_draws:.1f} paths a draw: {dt:.2f} s, "
            f"{n / dt:,.0f} paths/s ({a.threads} threads)",
            flush=True,
        )


if __name__ == "__main__":
    main()
