"""Engine cost on a real posterior and plan (e.g. the demo's), and where it goes.

Usage::

    .venv/bin/python benchmarks/engine_posterior.py --posterior demo-output/posterior.nc \
        --plan demo-output/data/plan.toml [--paths 20000]

Prints CPU microseconds per path on one thread (``time.thread_time``) of one
block of ``--paths`` paths through :func:`~simengine.engine.blocks.run_block`
(as ``simulate`` runs them), then of the same block with the open units
removed and with the new units removed (arrival rates 0), so the two parts'
shares can be read off; and the SHA-256 of the block's summary, to check that
a change meant to keep the numbers bitwise did. A block should cover every
parameter draw several times (the kernels cache per-draw work), as the
default block of 50,000 paths does for 4,000 draws.

With ``--count-draws N`` it also counts the variate calls a path makes, with
and without the open units, on ``N`` paths of a counting copy of the kernels
(``engine_report.py``'s).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import time

import numpy as np

from simengine.config.plan import load_plan
from simengine.engine import BlockSummary, prepare
from simengine.engine.blocks import SUMMARY_ARRAYS, Block, run_block
from simengine.io.posterior import read_parameters


def summary_sha256(s: BlockSummary) -> str:
    """SHA-256 over every array of a block summary."""
    h = hashlib.sha256()
    for f in SUMMARY_ARRAYS:
        h.update(getattr(s, f).tobytes())
    return h.hexdigest()


def cpu_us_per_path(prepared, paths: int, seed: int = 1) -> tuple[float, BlockSummary]:
    """One block of ``paths`` paths on this thread: (CPU us a path, its summary)."""
    run_block(prepared, Block(0, 0, 2), seed)  # load the compiled kernels
    t0 = time.thread_time()
    out = run_block(prepared, Block(0, 0, paths), seed)
    return (time.thread_time() - t0) / paths * 1e6, out


def count_draws(prepared, paths: int) -> dict[str, float]:
    """Variate calls per path, counted on ``paths`` paths (``engine_report.draws_per_path``)."""
    import engine_report as er

    calls = er.draws_per_path(paths, prepared=prepared)["calls"]
    return {v: round(float(n), 1) for v, n in calls.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--posterior", required=True)
    ap.add_argument("--plan", required=True)
    ap.add_argument("--paths", type=int, default=20_000)
    ap.add_argument("--count-draws", type=int, default=0, metavar="N")
    a = ap.parse_args()
    params = read_parameters(a.posterior)
    pr = prepare(params, load_plan(a.plan))
    full, summary = cpu_us_per_path(pr, a.paths)
    no_open = dataclasses.replace(pr, open_group=np.zeros(1, np.int64))
    no_new = dataclasses.replace(pr, arrival_rate=np.zeros_like(pr.arrival_rate))
    res = {
        "paths": a.paths,
        "draws": int(pr.conversion.shape[0]),
        "open_units": int(pr.open_cell.shape[0]),
        "open_runs": int(pr.open_group.shape[0] - 1),
        "sim_days": pr.sim_days,
        "cpu_us_per_path": round(full, 1),
        "cpu_us_per_path_without_open_units": round(cpu_us_per_path(no_open, a.paths)[0], 1),
        "cpu_us_per_path_without_new_units": round(cpu_us_per_path(no_new, a.paths)[0], 1),
        "summary_sha256": summary_sha256(summary)[:16],
    }
    if a.count_draws:
        res["draws_per_path"] = count_draws(pr, a.count_draws)
        res["draws_per_path_without_open_units"] = count_draws(no_open, a.count_draws)
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
