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

from engine_report import engine_rate, standard_workload


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--paths", default="20000,200000")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    draws = standard_workload()[0].n_draws  # the workload engine_rate runs
    for n in (int(x) for x in a.paths.split(",")):
        rate, _ = engine_rate(n, a.threads, block_size=2_500)
        print(
            f"{n} paths, {n / draws:.1f} paths a draw: {n / rate:.2f} s, "
            f"{rate:,.0f} paths/s ({a.threads} threads)",
            flush=True,
        )


if __name__ == "__main__":
    main()
