"""Peak memory (ru_maxrss) of ``simulate`` on the standard workload.

Usage: .venv/bin/python benchmarks/engine_memory.py --paths 10000000 [--threads 2]

Memory is fixed by design: each in-flight block holds one fixed-size
BlockSummary (histograms over the grid), at most 2 x threads blocks are in
flight, and nothing per path is kept. Run at two sizes to see that the peak
does not grow with the number of paths.
"""

from __future__ import annotations

import argparse
import json
import resource
import time

from engine_report import standard_workload

from simengine.engine import BlockSummary, prepare, simulate


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--paths", type=int, default=10_000_000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--block-size", type=int, default=50_000)
    a = ap.parse_args()
    params, plan = standard_workload()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    summary_mb = BlockSummary.zeros(prepare(params, plan)).nbytes / 2**20
    t0 = time.perf_counter()
    fc = simulate(params, plan, paths=a.paths, seed=1, block_size=a.block_size, threads=a.threads)
    secs = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "paths": a.paths,
                "threads": a.threads,
                "block_size": a.block_size,
                "seconds": round(secs, 1),
                "paths_per_s": round(a.paths / secs),
                "block_summary_mib": round(summary_mb, 1),
                "max_rss_before_mib": round(before, 1),
                "max_rss_peak_mib": round(peak, 1),
                "p_hit_total": float(
                    fc.dataset["summary"].sel(segment="total", metric="attainment", stat="prob_hit")
                ),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
