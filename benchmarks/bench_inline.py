"""Per-unit functions inlined into the hot loops vs called, and the NumPy reference.

The per-unit kernels call a few small functions once per unit (the play of
one new unit, a pipeline entry or exit, a week's mean, the count of units
stopping at their entry stage). Compiled as separate functions, each call
takes and releases a reference on every array of the named tuples it reads;
``simengine.engine._jit.jit_inline`` inlines them instead (bitwise the same
numbers). This benchmark compiles two copies of ``simengine.engine._kernels``
in one process (``engine_report.kernel_copy``, no cache): ``inlined`` (the
source as it is) and ``called`` (``jit_inline`` replaced by plain ``jit``),
and times one thread of each on the same paths, rounds interleaved, CPU time
(``time.thread_time``) per path of ``_path`` (one path's simulation; the
metrics are the same code in both and are left out). It checks that both
copies give bitwise the same path arrays, and times the NumPy reference
(:func:`simengine.engine.reference.reference_paths`, whole metrics) in the
same run, on the standard workload and, with ``--posterior``/``--plan``, on
a fitted posterior and plan (the demo's).

The machine may be shared: the ratios within one run are the comparable
numbers, not the absolute times.

Usage::

    nice -n 10 .venv/bin/python benchmarks/bench_inline.py [--paths 2000] \
        [--posterior DEMO/posterior.nc --plan DEMO/data/plan.toml]

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from typing import Any

import numpy as np
from engine_report import kernel_copy, standard_workload


def _cpu_us(fn: Any, n: int) -> float:
    t0 = time.thread_time()
    fn()
    return (time.thread_time() - t0) / n * 1e6


def _compare(mods: dict[str, Any], params: Any, plan: Any, a: argparse.Namespace) -> dict[str, Any]:
    from simengine.engine import _rng, prepare
    from simengine.engine.blocks import _args
    from simengine.engine.reference import reference_paths

    pr = prepare(params, plan)
    model, n_streams = _args(pr)
    root = _rng.root_seed(1)
    scratches = {
        k: m._scratch(model, n_streams, m.TAIL_CACHE_MAX_ENTRIES, False) for k, m in mods.items()
    }

    def play(k: str, n: int) -> None:
        m, sc = mods[k], scratches[k]
        for p in range(n):
            m._path(root, np.int64(p), np.int64(n), model, sc)

    for k in mods:  # compile
        play(k, 2)
    # bitwise the same paths: compare every scratch array after the same paths
    same = True
    for p in range(20):
        for k in mods:
            mods[k]._path(root, np.int64(p), np.int64(20), model, scratches[k])
        ref = scratches["called"]
        for f in ("revenue", "pipeline_value", "pipeline_count", "entered", "source_revenue"):
            same &= bool(np.array_equal(getattr(scratches["inlined"], f), getattr(ref, f)))
    times: dict[str, list[float]] = {k: [] for k in mods}
    for _ in range(a.rounds):
        for k in mods:
            times[k].append(_cpu_us(lambda k=k: play(k, a.paths), a.paths))
    reference_paths(params, plan, 2, 1)
    ref_us = min(
        _cpu_us(lambda: reference_paths(params, plan, a.reference_paths, 1), a.reference_paths)
        for _ in range(a.rounds)
    )
    inl, cal = min(times["inlined"]), min(times["called"])
    return {
        "bitwise_same_paths": same,
        "cpu_us_per_path_inlined": round(inl, 1),
        "cpu_us_per_path_called": round(cal, 1),
        "cpu_us_per_path_numpy_reference": round(ref_us, 1),
        "inlined_speedup": round(cal / inl, 3),
        "inlined_over_reference": round(ref_us / inl, 2),
        "called_over_reference": round(ref_us / cal, 2),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the comparison and print it as JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--paths", type=int, default=2_000)
    ap.add_argument("--reference-paths", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--posterior")
    ap.add_argument("--plan")
    a = ap.parse_args(argv)

    tmp = tempfile.mkdtemp()
    t0 = time.perf_counter()
    mods = {
        "inlined": kernel_copy(tmp, "k_inlined"),
        "called": kernel_copy(
            tmp,
            "k_called",
            (("jit_inline = functools.partial(jit, inline='always')\n", "jit_inline = jit\n"),),
        ),
    }
    res: dict[str, Any] = {"standard": _compare(mods, *standard_workload(), a)}
    if a.posterior and a.plan:
        from simengine.config.plan import load_plan
        from simengine.io.posterior import read_parameters

        res["posterior"] = _compare(mods, read_parameters(a.posterior), load_plan(a.plan), a)
    res["paths"] = a.paths
    res["seconds_total"] = round(time.perf_counter() - t0, 1)
    res["load_average_1min"] = round(os.getloadavg()[0], 2)
    print(json.dumps(res, indent=1))
    return res


if __name__ == "__main__":
    main()
