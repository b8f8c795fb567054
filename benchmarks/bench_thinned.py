"""Speed of the thinned path model vs the per-unit model and the NumPy reference.

One process, one thread each, the standard workload
(:func:`engine_report.standard_workload`: 6 cells, ~6,000 MQLs and ~250 wins a
path, 13-week period, 600 open units, 4,000 draws), compiled code loaded
before timing. Every contender returns per-path metrics, every output
(``thinned_paths``, ``run_paths``, ``reference_paths``), so the comparison is
like for like; ``run_block`` (the per-unit model reduced into the summary
sketches, what ``simulate`` runs) is shown too.

Usage: .venv/bin/python benchmarks/bench_thinned.py [--paths 20000] [--reference-paths 300]
Prints one JSON object: paths per second (wall, min of ``--rounds``) per contender.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable

from engine_report import standard_workload


def _best(fn: Callable[[], object], n: int, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return n / min(times)


def main(argv: list[str] | None = None) -> dict[str, float]:
    """Run the comparison and print it as JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--paths", type=int, default=20_000)
    ap.add_argument("--engine-paths", type=int, default=5_000)
    ap.add_argument("--reference-paths", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=2)
    a = ap.parse_args(argv)

    from simengine.engine import prepare, run_paths
    from simengine.engine.blocks import Block, run_block
    from simengine.engine.reference import reference_paths
    from simengine.engine.thinned import thinned_paths

    params, plan = standard_workload()
    pr = prepare(params, plan)
    thinned_paths(pr, 0, 2, 1)  # load / compile
    run_paths(pr, 0, 2, 1)
    run_block(pr, Block(0, 0, 2), 1)
    reference_paths(params, plan, 5, 0)
    res = {
        "thinned_paths_per_s": _best(lambda: thinned_paths(pr, 0, a.paths, 1), a.paths, a.rounds),
        "per_unit_run_paths_per_s": _best(
            lambda: run_paths(pr, 0, a.engine_paths, 1), a.engine_paths, a.rounds
        ),
        "per_unit_run_block_per_s": _best(
            lambda: run_block(pr, Block(0, 0, a.engine_paths), 1), a.engine_paths, a.rounds
        ),
        "reference_paths_per_s": _best(
            lambda: reference_paths(params, plan, a.reference_paths, 1),
            a.reference_paths,
            a.rounds,
        ),
    }
    res["thinned_over_per_unit"] = res["thinned_paths_per_s"] / res["per_unit_run_paths_per_s"]
    res["thinned_over_reference"] = res["thinned_paths_per_s"] / res["reference_paths_per_s"]
    res["load_average_1min"] = os.getloadavg()[0]
    print(json.dumps({k: round(v, 2) for k, v in res.items()}, indent=1))
    return res


if __name__ == "__main__":
    main()
