"""Where a path's time goes: new units against the open units of each stage.

One block of ``--paths`` paths through :func:`~simengine.engine.blocks.run_block`
(as ``simulate`` runs it), one thread, CPU microseconds a path
(``time.thread_time``), for the workload as it is and for copies of its
prepared arrays with parts removed: without new units (arrival rates 0),
without anything (no new units, no open units: the per-path set-up, streams
and metrics), and with only the open units of one stage (no new units). The
differences give each part's share, which is what a faster path model must
attack first. Standard workload, and with ``--posterior``/``--plan`` a
fitted posterior and plan (the demo's).

The machine may be shared: the shares within one run are the comparable
numbers, not the absolute times.

Usage::

    nice -n 10 .venv/bin/python benchmarks/bench_profile.py [--paths 4000] \
        [--posterior DEMO/posterior.nc --plan DEMO/data/plan.toml]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from typing import Any

import numpy as np
from engine_report import standard_workload


def _open_subset(pr: Any, keep: np.ndarray) -> Any:
    """``pr`` with only the open units ``keep`` (runs rebuilt) and no new units."""
    idx = np.flatnonzero(keep)
    cell, stage = pr.open_cell[idx], pr.open_stage[idx]
    age, amount = pr.open_age[idx], pr.open_amount[idx]
    if idx.size:
        key = np.stack([cell, stage, age.astype(np.int64)], 1)
        starts = np.r_[True, np.any(key[1:] != key[:-1], axis=1)]
        group = np.r_[np.flatnonzero(starts), idx.size].astype(np.int64)
    else:
        group = np.zeros(1, np.int64)
    return dataclasses.replace(
        pr,
        open_cell=cell,
        open_stage=stage,
        open_age=age,
        open_amount=amount,
        open_group=group,
        arrival_rate=np.zeros_like(pr.arrival_rate),
    )


def _cpu_us(pr: Any, paths: int) -> float:
    from simengine.engine.blocks import Block, run_block

    run_block(pr, Block(0, 0, 2), 1)  # load the compiled kernels
    t0 = time.thread_time()
    run_block(pr, Block(0, 0, paths), 1)
    return round((time.thread_time() - t0) / paths * 1e6, 1)


def profile(params: Any, plan: Any, paths: int) -> dict[str, Any]:
    """CPU us a path of the whole workload and of its parts (see the module docstring)."""
    from simengine.engine import prepare

    pr = prepare(params, plan)
    n_open = pr.open_stage.shape[0]
    res: dict[str, Any] = {
        "draws": int(pr.conversion.shape[0]),
        "sim_days": pr.sim_days,
        "open_units_per_stage": np.bincount(pr.open_stage, minlength=pr.n_stages).tolist(),
        "full": _cpu_us(pr, paths),
        "without_new_units": _cpu_us(
            dataclasses.replace(pr, arrival_rate=np.zeros_like(pr.arrival_rate)), paths
        ),
        "without_new_or_open_units": _cpu_us(_open_subset(pr, np.zeros(n_open, bool)), paths),
    }
    for s in range(pr.n_stages - 1):
        res[f"open_units_of_stage_{s}_only"] = _cpu_us(_open_subset(pr, pr.open_stage == s), paths)
    base = res["without_new_or_open_units"]
    res["share_new_units"] = round((res["full"] - res["without_new_units"]) / res["full"], 3)
    res["share_open_units"] = round((res["without_new_units"] - base) / res["full"], 3)
    return res


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the profile and print it as JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--paths", type=int, default=4_000)
    ap.add_argument("--posterior")
    ap.add_argument("--plan")
    a = ap.parse_args(argv)
    res: dict[str, Any] = {"standard": profile(*standard_workload(), a.paths)}
    if a.posterior and a.plan:
        from simengine.config.plan import load_plan
        from simengine.io.posterior import read_parameters

        res["posterior"] = profile(read_parameters(a.posterior), load_plan(a.plan), a.paths)
    res["paths"] = a.paths
    res["load_average_1min"] = round(os.getloadavg()[0], 2)
    print(json.dumps(res, indent=1))
    return res


if __name__ == "__main__":
    main()
